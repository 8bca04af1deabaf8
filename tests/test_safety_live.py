"""Safety in the room over the real signaling hub (real aiohttp server, real SQLite file,
signaling clients that join with real join tokens):

* a member's private alert (`help_alert`) reaches exactly the facilitators present, with the
  member's pseudonym; the sender is told; another member receives nothing at all;
* refusals: too soon (one per 30 s), too long, a room that is no meeting, a member flagging a
  concern; the connection stays;
* sealed at rest: the alert's words are in neither the database file nor its WAL;
* no facilitator present: stored, the member is told it waits; a facilitator joining later
  gets it;
* a 1:1 therapy session: the patient's alert reaches their therapist only;
* the notes indicator: everyone hears `notes_state` change, with the state only.
"""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient

from groups import group_notes, safety
from media import signaling as sig
from therapy import accounts, care, rooms
from therapy.accounts import Role
from therapy.audit import Actor
from therapy.storage import open_database
from web import appkeys

from .conftest import Browserish
from .moderation_support import PASSWORD, Peer, build_meeting
from .test_voice_e2e import wait_for
from .voice_support import VoiceServer

pytestmark = pytest.mark.slow

WORDS = "zebra-lantern I am not okay right now"
SAFETY_TYPES = (sig.SafetyAlert, sig.HelpAlertSent)


async def settled(peer: Peer) -> int:
    """Everything the server queued for ``peer`` before now has arrived: a ping's pong."""
    since = len(peer.messages)
    await peer.send(sig.Ping())
    await peer.wait(lambda m: isinstance(m, sig.Pong), since=since)
    return len(peer.messages)


def carries(message: sig.Message, *needles: str) -> bool:
    text = message.to_json()
    return any(n in text for n in needles)


def raw_bytes(app) -> bytes:
    path = app[appkeys.DATA_DIR].db_path
    out = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return out + (wal.read_bytes() if wal.exists() else b"")


def audits(world, action: str) -> list[dict]:
    return world.write(lambda db: [dict(r) for r in db.query(
        "SELECT * FROM audit_log WHERE action = ? ORDER BY id", [action])])


async def test_a_members_alert_reaches_exactly_the_facilitators(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        world = build_meeting(server.app, server.base_url, members=2)
        peers = {who: await Peer(world.link(who)).start() for who in ("Sage", "Cedar", "M1", "M2")}
        sage, cedar, m1, m2 = (peers[w] for w in ("Sage", "Cedar", "M1", "M2"))
        try:
            await wait_for(lambda: sum(isinstance(m, sig.MemberJoined)
                                       for m in sage.messages) >= 3)
            before_m2 = await settled(m2)
            await m1.send(sig.HelpAlert(WORDS))
            ack = await m1.wait(lambda m: isinstance(m, sig.HelpAlertSent | sig.Error))
            assert isinstance(ack, sig.HelpAlertSent), ack
            assert ack.told == "facilitators" and "facilitators have been told" in ack.message
            for fac in (sage, cedar):
                got = await fac.wait(lambda m: isinstance(m, sig.SafetyAlert))
                assert (got.alert_id, got.kind, got.pseudonym, got.message) == (
                    ack.alert_id, "alert", "M1", WORDS)
                assert got.participant_id == m1.participant_id and got.live
                assert got.group_id == world.group_id and got.created_at == ack.created_at
                # the pseudonym, never the account's name
                assert not carries(got, "Mod-M1", "mod-m1")
            after_m2 = await settled(m2)
            # M2 received nothing at all meanwhile: no alert, no broadcast, no moderation event
            assert m2.messages[before_m2:after_m2 - 1] == [], m2.messages[before_m2:]
            assert not any(isinstance(m, SAFETY_TYPES) or carries(m, WORDS, "help_alert")
                           for m in m2.messages)
            # M1 itself gets only the acknowledgement
            assert not any(isinstance(m, sig.SafetyAlert) for m in m1.messages)

            # stored, audited like the HTTP path, and the live delivery too
            sent = audits(world, "safety.alert")
            assert [a["target_id"] for a in sent] == [str(ack.alert_id)]
            assert sent[0]["actor_user_id"] == world.users["M1"].id
            delivered = audits(world, "safety.alert_delivered")
            assert len(delivered) == 1
            assert json.loads(delivered[0]["detail"])["to"] == sorted(
                [world.member_ids["Sage"], world.member_ids["Cedar"]])
            # sealed at rest: the words are in neither the database nor the WAL
            assert WORDS.encode() not in raw_bytes(server.app)
            assert b"zebra-lantern" not in raw_bytes(server.app)

            # one per 30 s: refused, not fatal, nothing sent to anyone
            since = len(sage.messages)
            await m1.send(sig.HelpAlert("again"))
            err = await m1.wait(lambda m: isinstance(m, sig.Error), since=0)
            assert err.code == "alert_too_soon" and not err.fatal
            await settled(m1)  # still connected
            # too long: refused, not fatal
            await m2.send(sig.HelpAlert("x" * (sig.ALERT_MESSAGE_MAX + 1)))
            err2 = await m2.wait(lambda m: isinstance(m, sig.Error))
            assert err2.code == "message_too_long" and not err2.fatal
            await settled(m2)
            # a member cannot flag a concern
            await m2.send(sig.ConcernFlag(m1.participant_id, "hm"))
            err3 = await m2.wait(lambda m: isinstance(m, sig.Error) and m.code == "forbidden")
            assert not err3.fatal
            await settled(sage)
            assert not any(isinstance(m, sig.SafetyAlert) for m in sage.messages[since:])
            assert len(audits(world, "safety.alert")) == 1

            # a facilitator flags a concern from the room: the facilitators only
            before_m1, before_m2 = await settled(m1), await settled(m2)
            await sage.send(sig.ConcernFlag(m2.participant_id, "seems withdrawn tonight"))
            for fac in (sage, cedar):
                c = await fac.wait(lambda m: isinstance(m, sig.SafetyAlert) and m.kind == "concern")
                assert (c.pseudonym, c.raised_by, c.participant_id) == (
                    "M2", "Sage", m2.participant_id)
            assert len(audits(world, "safety.concern")) == 1
            after_m1, after_m2 = await settled(m1), await settled(m2)
            assert m1.messages[before_m1:after_m1 - 1] == []
            assert m2.messages[before_m2:after_m2 - 1] == []
            assert b"seems withdrawn" not in raw_bytes(server.app)
        finally:
            for p in peers.values():
                await p.close()


async def test_with_no_facilitator_the_alert_waits_and_a_later_facilitator_gets_it(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        world = build_meeting(server.app, server.base_url, members=1)
        sage = await Peer(world.link("Sage")).start()
        m1 = await Peer(world.link("M1")).start()
        cedar = None
        try:
            await sage.close()
            await m1.wait(lambda m: isinstance(m, sig.Notice) and m.code == "no_facilitator")
            await m1.send(sig.HelpAlert(WORDS))
            ack = await m1.wait(lambda m: isinstance(m, sig.HelpAlertSent))
            assert ack.told == "later" and "safety page" in ack.message
            assert audits(world, "safety.alert_delivered") == []
            cedar = await Peer(world.link("Cedar")).start()
            got = await cedar.wait(lambda m: isinstance(m, sig.SafetyAlert))
            assert (got.alert_id, got.pseudonym, got.live) == (ack.alert_id, "M1", False)
            assert got.participant_id == m1.participant_id
            assert got.message is None  # the words are read (and audited) on the safety page
            # handled: a facilitator joining after that is not told again
            world.write(lambda db: safety.set_alert_status(
                db, world.users["Cedar"], world.group_id, ack.alert_id, "handled",
                actor=Actor.system()))
            again = await Peer(world.link("Sage")).start()
            try:
                await settled(again)
                assert not any(isinstance(m, sig.SafetyAlert) for m in again.messages)
            finally:
                await again.close()
        finally:
            for p in (m1, cedar):
                if p is not None:
                    await p.close()


async def test_outside_a_meeting_or_session_the_alert_is_refused(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        host_url, guest_url = server.invite(2)
        host = await Peer(host_url).start()
        guest = await Peer(guest_url).start()
        try:
            await guest.send(sig.HelpAlert("hello"))
            err = await guest.wait(lambda m: isinstance(m, sig.Error))
            assert err.code == "not_in_meeting" and not err.fatal
            await settled(guest)
            await settled(host)
            assert not any(isinstance(m, SAFETY_TYPES) for m in host.messages + guest.messages)
            await host.send(sig.ConcernFlag(guest.participant_id, None))
            err = await host.wait(lambda m: isinstance(m, sig.Error))
            assert err.code == "forbidden"
        finally:
            await host.close()
            await guest.close()


async def test_a_patients_alert_in_a_session_reaches_their_therapist_only(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        db = open_database(server.app[appkeys.DATA_DIR].db_path)
        cost = server.app[appkeys.CONFIG].scrypt_cost
        try:
            def user(name, role):
                return accounts.create_user(db, name, PASSWORD, role, name.title(), "UTC",
                                            cost=cost)
            ther, other, pat = (user("t-ann", Role.THERAPIST), user("t-bob", Role.THERAPIST),
                                user("p-sam", Role.PATIENT))
            care.link(db, ther.id, pat.id, actor=Actor.system())
            room_id = rooms.create_room(db, "therapy", created_by=ther.id)
            urls = [rooms.join_url(server.base_url, room_id, rooms.issue_token(
                db, room_id, u.display_name, room_role=r, user_id=u.id))
                for u, r in ((ther, "host"), (other, "host"), (pat, "member"))]
        finally:
            db.close()
        ann, bob, sam = [await Peer(u).start() for u in urls]
        try:
            await sam.send(sig.HelpAlert(WORDS))
            ack = await sam.wait(lambda m: isinstance(m, sig.HelpAlertSent | sig.Error))
            assert isinstance(ack, sig.HelpAlertSent) and ack.told == "therapist", ack
            got = await ann.wait(lambda m: isinstance(m, sig.SafetyAlert))
            assert (got.alert_id, got.message, got.group_id) == (ack.alert_id, WORDS, None)
            await settled(bob)
            assert not any(isinstance(m, SAFETY_TYPES) or carries(m, WORDS)
                           for m in bob.messages)
            rows = open_database(server.app[appkeys.DATA_DIR].db_path).execute(
                "SELECT action FROM audit_log WHERE target_table = 'care_alerts'").fetchall()
            assert [r[0] for r in rows] == ["care_alert.send", "care_alert.delivered"]
            assert WORDS.encode() not in raw_bytes(server.app)
        finally:
            for p in (ann, bob, sam):
                await p.close()


async def test_everyone_hears_the_notes_state_and_only_the_state(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        world = build_meeting(server.app, server.base_url, members=2, co=False)
        doc = group_notes.document()
        for who in ("Sage", "M1"):
            world.write(lambda db, w=who: group_notes.give_consent(
                db, world.users[w], world.group_id, doc.version, doc.sha256,
                actor=Actor.system()))
        sage = await Peer(world.link("Sage")).start()
        m1 = await Peer(world.link("M1")).start()
        m2 = None
        http = TestClient(server.server)
        await http.start_server()
        try:
            def states(p):
                return [m.state for m in p.messages if isinstance(m, sig.NotesState)]

            await wait_for(lambda: states(m1) == ["off"] and states(sage) == ["off"])
            fac = Browserish(http)
            assert (await fac.login("mod-lead", PASSWORD)).status == 200
            note_text = "quokka-notes: M1 spoke about work"
            r = await fac.post(f"/api/groups/{world.group_id}/meetings/{world.key}/notes",
                               {"text": note_text})
            assert r.status == 201, await r.text()
            nid = (await r.json())["note"]["id"]
            await wait_for(lambda: states(m1) == ["off", "on"] and states(sage)[-1] == "on")

            # someone without consent joins: paused for everyone, at once
            m2 = await Peer(world.link("M2")).start()
            await wait_for(lambda: states(m1)[-1] == "paused" and states(m2) == ["paused"])
            # they leave: on again
            await m2.close()
            m2 = None
            await wait_for(lambda: states(m1)[-1] == "on")
            # the facilitator finishes the note: off
            r = await fac.send("PATCH", f"/api/groups/{world.group_id}/notes/{nid}",
                               {"close": True})
            assert r.status == 200, await r.text()
            await wait_for(lambda: states(m1)[-1] == "off")
            assert states(m1) == ["off", "on", "paused", "on", "off"]
            for p in (sage, m1):
                for m in p.messages:
                    if isinstance(m, sig.NotesState):
                        assert m.to_dict() == {"type": "notes_state", "state": m.state}
                    assert not carries(m, "quokka", note_text)
        finally:
            await http.close()
            for p in (sage, m1, m2):
                if p is not None:
                    await p.close()
