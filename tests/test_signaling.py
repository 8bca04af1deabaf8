"""The signaling endpoint under bad input: every bad message gets an error and closes only
its own connection, while a real call in the same room goes on."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media import signaling as sig
from media.e2ee import IdentityKeys
from media.voice_client import VoiceClient
from web import appkeys

from .test_voice_e2e import wait_for
from .voice_support import VoiceServer, tone

pytestmark = pytest.mark.slow


async def raw_exchange(server: VoiceServer, messages: list, *, origin: str | None = None,
                       timeout: float = 5.0) -> list[dict]:
    """Send raw frames on a fresh connection; return what came back until it closed."""
    headers = {"Origin": origin} if origin else {}
    got = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(server.base_url + "/ws/signal", headers=headers) as ws:
            for m in messages:
                if isinstance(m, bytes):
                    await ws.send_bytes(m)
                else:
                    await ws.send_str(m if isinstance(m, str) else json.dumps(m))
            while True:
                msg = await ws.receive(timeout=timeout)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                got.append(json.loads(msg.data))
    return got


def join_msg(url: str, identity: IdentityKeys | None = None) -> dict:
    j = sig.parse_join_url(url)
    return sig.Join(j.room_id, j.token, (identity or IdentityKeys.generate()).card().to_dict()).to_dict()


@pytest.fixture
async def call(tmp_path):
    """Two real clients in a call, plus spare join URLs for the same room."""
    async with VoiceServer(tmp_path / "data") as server:
        urls = server.invite(6)
        a = VoiceClient(urls[0], IdentityKeys.generate(), send_pcm=tone(500, 60))
        b = VoiceClient(urls[1], IdentityKeys.generate(), send_pcm=tone(1200, 60))
        await a.start()
        await b.start()
        await wait_for(lambda: a.summary.frames_received > 20 and b.summary.frames_received > 20)
        yield server, a, b, urls[2:]
        await a.close()
        await b.close()


async def still_flowing(a: VoiceClient, b: VoiceClient) -> None:
    na, nb = a.summary.frames_received, b.summary.frames_received
    await wait_for(lambda: a.summary.frames_received > na + 10 and b.summary.frames_received > nb + 10)
    assert not a.ended.is_set() and not b.ended.is_set()


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        (["not json"], "malformed"),
        (["[1,2]"], "malformed"),
        ([{"type": "teleport"}], "unknown_type"),
        ([{"type": "join"}], "invalid_message"),
        ([{"type": "join", "room_id": "r-0000000000000000", "token": "x" * 40, "identity": {}}],
         "invalid_identity"),
        ([{"type": "offer", "sdp": "v=0"}], "out_of_order"),
        ([{"type": "keys", "keys": []}], "out_of_order"),
        (["x" * (sig.MAX_MESSAGE_BYTES + 10)], "too_large"),
        ([b"\x00\x01binary"], "malformed"),
    ],
)
async def test_bad_first_messages_get_an_error_and_a_close(call, messages, code):
    server, a, b, _ = call
    got = await raw_exchange(server, messages)
    assert got and got[-1]["type"] == "error" and got[-1]["code"] == code and got[-1]["fatal"]
    await still_flowing(a, b)


async def test_bad_token_and_wrong_room(call):
    server, a, b, spare = call
    j = sig.parse_join_url(spare[0])
    bad = sig.Join(j.room_id, "A" * 43, IdentityKeys.generate().card().to_dict()).to_dict()
    got = await raw_exchange(server, [bad])
    assert got[-1]["code"] == "invalid_token"
    other = sig.Join("r-" + "1" * 16, j.token, IdentityKeys.generate().card().to_dict()).to_dict()
    got = await raw_exchange(server, [other])
    assert got[-1]["code"] == "invalid_token"
    await still_flowing(a, b)


async def test_out_of_order_and_oversized_after_join(call):
    server, a, b, spare = call
    identity = IdentityKeys.generate()
    got = await raw_exchange(server, [join_msg(spare[0], identity), join_msg(spare[0], identity)])
    assert got[0]["type"] == "joined"
    assert got[-1]["type"] == "error" and got[-1]["code"] == "out_of_order"
    got = await raw_exchange(server, [join_msg(spare[1]), {"type": "offer", "sdp": "v=0\r\n"},
                                      {"type": "offer", "sdp": "v=0\r\n"}])
    assert got[-1]["type"] == "error"
    got = await raw_exchange(server, [join_msg(spare[2]), {"type": "keys", "keys": [
        {"to": "p-abcdef", "blob": {"x": "y" * 5000}}]}])
    assert got[-1]["code"] == "too_large"
    await still_flowing(a, b)


async def test_a_token_is_bound_to_the_identity_that_first_used_it(call):
    server, a, b, spare = call
    first = IdentityKeys.generate()
    got = await raw_exchange(server, [join_msg(spare[0], first), {"type": "leave"}])
    assert got[0]["type"] == "joined"
    got = await raw_exchange(server, [join_msg(spare[0], IdentityKeys.generate())])
    assert got[-1]["code"] == "token_used"
    got = await raw_exchange(server, [join_msg(spare[0], first), {"type": "leave"}])
    assert got[0]["type"] == "joined"  # the same device may come back


async def test_members_cannot_use_host_actions(call):
    server, a, b, _ = call
    b_pid = b.participant_id
    await b._send(sig.Remove(a.participant_id))  # b is a member, a the host
    await b._send(sig.Mute(a.participant_id, True))
    await asyncio.sleep(0.3)
    assert a.participant_id in b.members and not b.members[a.participant_id].muted
    await still_flowing(a, b)
    assert b.participant_id == b_pid


async def test_host_mute_is_enforced_by_the_server(call):
    server, a, b, _ = call
    await a._send(sig.Mute(b.participant_id, True))
    await wait_for(lambda: b.members[a.participant_id] is not None and
                   a.members[b.participant_id].muted)
    await asyncio.sleep(0.3)
    n = a.summary.frames_received
    await asyncio.sleep(1.0)
    assert a.summary.frames_received == n  # nothing of b reaches a
    await a._send(sig.Mute(b.participant_id, False))
    await wait_for(lambda: a.summary.frames_received > n + 10)


async def test_cross_origin_websocket_is_refused(call):
    server, a, b, spare = call
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await raw_exchange(server, [join_msg(spare[0])], origin="https://evil.example")
    assert err.value.status == 403
    got = await raw_exchange(server, [join_msg(spare[1]), {"type": "leave"}],
                             origin=server.base_url)
    assert got[0]["type"] == "joined"


async def test_a_vanished_participant_is_cleaned_up_within_seconds(call):
    server, a, b, spare = call
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(server.base_url + "/ws/signal", autoping=False)
    await ws.send_str(json.dumps(join_msg(spare[0])))
    joined = json.loads((await ws.receive()).data)
    pid = joined["participant_id"]
    await wait_for(lambda: pid in a.members)
    # stop answering anything (no pong, no close): as if the network dropped
    ws._response.connection.transport.pause_reading()
    started = asyncio.get_running_loop().time()
    await wait_for(lambda: pid not in a.members, timeout=20)
    took = asyncio.get_running_loop().time() - started
    assert took < 15
    ws._response.connection.transport.abort()
    await session.close()
    await still_flowing(a, b)


frames = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    st.dictionaries(st.sampled_from(["type", "sdp", "keys", "room_id", "token", "identity",
                                     "participant_id", "muted", "to", "blob"]),
                    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=50),
                              st.sampled_from(list(sig.CLIENT_MESSAGES)),
                              st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=5),
                                                       max_size=2), max_size=3)),
                    max_size=5),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames, min_size=1, max_size=4))
async def test_random_messages_never_harm_the_running_call(call, batch):
    server, a, b, _ = call
    try:
        got = await raw_exchange(server, batch, timeout=3)
    except TimeoutError:
        got = None  # e.g. only a valid-looking 'ping' before join: the join timer closes it
    if got:
        assert got[-1]["type"] in ("error", "joined", "pong")
        if got[-1]["type"] == "error":
            assert got[-1]["code"] and got[-1]["message"]
    assert not a.ended.is_set() and not b.ended.is_set()
    n = a.summary.frames_received
    await wait_for(lambda: a.summary.frames_received > n + 3)


async def test_host_ends_the_session_for_everyone(call):
    server, a, b, spare = call
    await a._send(sig.EndRoom())
    await wait_for(lambda: a.ended.is_set() and b.ended.is_set())
    assert a.summary.ended == b.summary.ended == "room_closed"
    got = await raw_exchange(server, [join_msg(spare[0])])
    assert got[-1]["code"] == "room_closed"


async def test_a_room_closed_elsewhere_disconnects_everyone(call):
    """The practice's 'end session' closes the room in the records, then asks the hub."""
    server, a, b, _ = call
    from therapy import rooms
    from therapy.audit import Actor

    room_id = a.join.room_id
    await server.app[appkeys.STORE].write(
        lambda db: rooms.close_room(db, room_id, actor=Actor.system()))
    await server.hub.disconnect_room(room_id)
    await wait_for(lambda: a.ended.is_set() and b.ended.is_set())
    assert b.summary.ended == "room_closed"
