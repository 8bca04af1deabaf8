"""Fault 4 of issue 11: nobody in a voice room can call themselves anything.

The name comes from the join token: the account in a therapy session, the pseudonym in a
group. Only an instant room takes a free name, and never one that reads like a host's.
Checked on the real signaling endpoint (in-process Haven server, real WebSockets).
"""

from __future__ import annotations

import contextlib
import json
import string

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from media import signaling as sig
from media.e2ee import IdentityKeys
from therapy import rooms
from therapy.storage import open_database
from web import appkeys

from .voice_support import VoiceServer


class Member:
    """One signaling connection, joined (or refused)."""

    def __init__(self, server: VoiceServer, session: aiohttp.ClientSession):
        self.server, self.session = server, session
        self.ws = None
        self.seen: list[dict] = []

    async def join(self, url: str, name: str | None = None) -> dict:
        j = sig.parse_join_url(url)
        self.ws = await self.session.ws_connect(self.server.base_url + "/ws/signal")
        await self.ws.send_str(sig.Join(j.room_id, j.token, IdentityKeys.generate().card()
                                        .to_dict(), name).to_json())
        return await self.next_of("joined", "error")

    async def next_of(self, *types: str) -> dict:
        while True:
            msg = await self.ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            data = json.loads(msg.data)
            self.seen.append(data)
            if data["type"] in types:
                return data


@pytest.fixture
async def voice(tmp_path):
    async with VoiceServer(tmp_path / "data") as server, aiohttp.ClientSession() as session:
        made: list[Member] = []

        def member() -> Member:
            made.append(Member(server, session))
            return made[-1]

        yield server, member
        for m in made:
            if m.ws is not None:
                with contextlib.suppress(Exception):
                    await m.ws.close()


def tokens(server: VoiceServer, kind: str, people: list[tuple[str, str]]) -> list[str]:
    """A room of ``kind`` and one join URL per (token name, room role)."""
    db = open_database(server.app[appkeys.DATA_DIR].db_path)
    try:
        room_id = (rooms.adhoc_room(db, "instant") if kind == "adhoc"
                   else rooms.create_room(db, kind))
        return [rooms.join_url(server.base_url, room_id,
                               rooms.issue_token(db, room_id, name, room_role=role, user_id=i))
                for i, (name, role) in enumerate(people, start=1)]
    finally:
        db.close()


async def test_therapy_session_names_come_from_the_accounts(voice):
    server, member = voice
    host_url, patient_url = tokens(server, "appointment", [("Dr Robin Reyes", "host"),
                                                           ("Sam Patient", "member")])
    therapist, patient = member(), member()
    assert (await therapist.join(host_url, "Dr Robin Reyes"))["display_name"] == "Dr Robin Reyes"
    joined = await patient.join(patient_url, "Dr Robin Reyes")  # an impersonation attempt
    assert joined["type"] == "joined" and joined["display_name"] == "Sam Patient"
    seen = await therapist.next_of("member_joined")
    assert seen["member"]["display_name"] == "Sam Patient"


async def test_group_names_are_the_pseudonyms(voice):
    server, member = voice
    lead_url, member_url = tokens(server, "group", [("Facilitator Kim", "host"),
                                                    ("Quiet Fox", "member")])
    lead, fox = member(), member()
    await lead.join(lead_url)
    joined = await fox.join(member_url, "Facilitator Kim")
    assert joined["display_name"] == "Quiet Fox"
    assert (await lead.next_of("member_joined"))["member"]["display_name"] == "Quiet Fox"


async def test_instant_rooms_take_a_free_name_but_never_a_hosts(voice):
    server, member = voice
    urls = tokens(server, "adhoc", [("Host", "host")] + [(f"Guest {i}", "member")
                                                         for i in range(1, 7)])
    host = member()
    assert (await host.join(urls[0], "Dr. Robin"))["display_name"] == "Dr. Robin"
    for i, name in enumerate(["dr robin", "DR.  ROBIN", "Dr Robin", "host", "ＨＯＳＴ"],
                             start=1):
        refused = await member().join(urls[i], name)
        assert refused["type"] == "error" and refused["code"] == "name_taken", name
        assert refused["fatal"] is True
    ok = await member().join(urls[6], "Robin's friend")
    assert ok["type"] == "joined" and ok["display_name"] == "Robin's friend"
    # A refused guest may come back with another name (the token is theirs still).
    again = await member().join(urls[1], "Alex")
    assert again["type"] == "joined" and again["display_name"] == "Alex"


async def test_a_hosts_token_name_is_taken_before_the_host_arrives(voice):
    server, member = voice
    urls = tokens(server, "adhoc", [("Dr Robin", "host"), ("Guest", "member")])
    refused = await member().join(urls[1], "dr robin")
    assert refused["code"] == "name_taken"
    assert (await member().join(urls[1]))["display_name"] == "Guest"


NAMES = st.text(alphabet=string.ascii_letters + string.digits + " .,'-", min_size=1,
                max_size=24)


@given(NAMES)
def test_name_key_ignores_case_width_spaces_and_punctuation(name):
    key = rooms.name_key(name)
    assert rooms.name_key(name.upper()) == rooms.name_key(name.lower())
    assert rooms.name_key(" ".join(name)) == key
    assert rooms.name_key(f"  {name}. ") == key
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name)
    assert rooms.name_key(wide) == key  # fullwidth forms read the same


@given(NAMES, NAMES)
def test_names_with_other_letters_stay_apart(a, b):
    letters = lambda s: "".join(c.lower() for c in s if c.isalnum())  # noqa: E731
    assert (rooms.name_key(a) == rooms.name_key(b)) == (letters(a) == letters(b))


async def test_a_client_vanishing_mid_ping_is_a_disconnect_not_an_error(voice, caplog):
    """Found by bench/soak.py: the server answers a client's WebSocket ping inside
    receive(); when the client is already gone that raised ConnectionResetError, logged as
    'signaling connection failed' at error level. A vanished client is an ordinary leave."""
    import asyncio
    import logging

    from aiohttp import WSMsgType

    server, member = voice
    urls = tokens(server, "adhoc", [("Host", "host"), ("Guest", "member")])
    host, guest = member(), member()
    await host.join(urls[0])
    assert (await guest.join(urls[1]))["type"] == "joined"
    caplog.set_level(logging.INFO)
    transport = guest.ws._response.connection.transport
    for _ in range(50):  # pings, then the connection dies without a close frame
        await guest.ws._writer.send_frame(b"p", WSMsgType.PING)
    transport.abort()
    left = await host.next_of("member_left")
    assert left["reason"] in ("left", "disconnected")
    await asyncio.sleep(0.2)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
