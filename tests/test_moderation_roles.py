"""Moderation roles come from the group's data on the server: every facilitator-only message
sent by a member is refused with an error and changes nothing (parametrised over every such
message type), and the same message from a facilitator works. Signaling-only peers against
the real app."""

from __future__ import annotations

import copy

import pytest
import pytest_asyncio

from media import signaling as sig

from .moderation_support import Peer, build_meeting
from .voice_support import VoiceServer

pytestmark = pytest.mark.asyncio(loop_scope="module")


def build(cls, target: str):
    return {
        sig.HandLower: lambda: sig.HandLower(target),
        sig.HandsLowerAll: lambda: sig.HandsLowerAll(),
        sig.HandFront: lambda: sig.HandFront(target),
        sig.Piece: lambda: sig.Piece(True, 180),
        sig.PiecePass: lambda: sig.PiecePass(target),
        sig.MuteAll: lambda: sig.MuteAll(),
        sig.Allow: lambda: sig.Allow(target),
        sig.SendToLobby: lambda: sig.SendToLobby(target),
        sig.Ban: lambda: sig.Ban(target, "group"),
        sig.Lock: lambda: sig.Lock(True),
        sig.Pause: lambda: sig.Pause(True),
        sig.Mute: lambda: sig.Mute(target, True),
        sig.Remove: lambda: sig.Remove(target),
        sig.EndRoom: lambda: sig.EndRoom(),
        sig.SideRoomInvite: lambda: sig.SideRoomInvite(target),
    }[cls]()


REFUSED = sig.FACILITATOR_MESSAGES + (sig.Mute, sig.Remove, sig.EndRoom, sig.SideRoomInvite)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def meeting(tmp_path_factory):
    async with VoiceServer(tmp_path_factory.mktemp("roles") / "data") as server:
        world = build_meeting(server.app, server.base_url, members=2)
        peers = {}
        for who in ("Sage", "M1", "M2"):
            peers[who] = await Peer(world.link(who)).start()
        # a raised hand, so hand_lower / hand_front have something to act on
        await peers["M2"].send(sig.Hand(True))
        await peers["Sage"].wait(lambda m: isinstance(m, sig.Moderation) and m.state["queue"])
        yield server, world, peers
        for p in peers.values():
            await p.close()


@pytest.mark.parametrize("cls", REFUSED, ids=lambda c: c.type)
async def test_member_is_refused_every_facilitator_message(meeting, cls):
    server, world, peers = meeting
    member, target = peers["M1"], peers["M2"]
    room = server.hub.rooms[world.room_id]
    before = copy.deepcopy(room.meeting)
    seen = {who: len(p.messages) for who, p in peers.items()}
    await member.send(build(cls, target.participant_id))
    err = await member.wait(lambda m: isinstance(m, sig.Error), since=seen["M1"])
    assert err.code == "forbidden" and err.fatal is False
    await member.send(sig.Ping())
    await member.wait(lambda m: isinstance(m, sig.Pong), since=seen["M1"])
    assert room.meeting == before
    assert set(room.members) == {p.participant_id for p in peers.values()}
    for who, p in peers.items():  # nobody was told anything changed
        assert not [m for m in p.messages[seen[who]:]
                    if isinstance(m, sig.Moderation | sig.Muted | sig.MemberLeft | sig.Ended
                                      | sig.SideRoom)]
    # the server's state for the DB side did not change either
    db = world.db()
    try:
        row = db.execute("SELECT locked FROM group_meetings WHERE room_id = ?",
                         [world.room_id]).fetchone()
        status = db.execute("SELECT status FROM group_members WHERE id = ?",
                            [world.member_ids["M2"]]).fetchone()
    finally:
        db.close()
    assert row[0] == 0 and status[0] == "active"


async def test_members_own_hand_and_facilitator_queue_controls(meeting):
    server, world, peers = meeting
    sage, m1, m2 = peers["Sage"], peers["M1"], peers["M2"]

    def queue():
        return [q["participant_id"] for q in sage.last_state()["queue"]]

    async def settle(cond):  # the latest state the facilitator saw satisfies cond
        await sage.wait(lambda m: cond(sage.last_state()))

    await m1.send(sig.Hand(True))
    await settle(lambda s: len(s["queue"]) == 2)
    assert queue() == [m2.participant_id, m1.participant_id]  # in order of raising
    await sage.send(sig.HandFront(m1.participant_id))
    await settle(lambda s: [q["participant_id"] for q in s["queue"]][:1] == [m1.participant_id])
    await sage.send(sig.HandLower(m1.participant_id))
    await settle(lambda s: [q["participant_id"] for q in s["queue"]] == [m2.participant_id])
    # a member's reconnect on a fresh link keeps their place
    await m1.send(sig.Hand(True))
    await settle(lambda s: len(s["queue"]) == 2)
    await m2.close()
    peers["M2"] = m2 = await Peer(world.link("M2")).start()
    await settle(lambda s: [q["participant_id"] for q in s["queue"]]
                 == [m2.participant_id, m1.participant_id])
    assert m2.last_state()["queue"][0]["participant_id"] == m2.participant_id
    await m2.send(sig.Hand(False))  # lowers their own
    await settle(lambda s: [q["participant_id"] for q in s["queue"]] == [m1.participant_id])
    await sage.send(sig.HandsLowerAll())
    await settle(lambda s: s["queue"] == [])


async def test_moderation_messages_outside_a_group_meeting_are_refused(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        host_url, member_url = server.invite(2)
        host, member = await Peer(host_url).start(), await Peer(member_url).start()
        await host.send(sig.MuteAll())
        err = await host.wait(lambda m: isinstance(m, sig.Error))
        assert err.code == "not_group_meeting" and not err.fatal
        # self-mute is visible to everyone in every room, therapy rooms too
        await member.send(sig.SelfMute(True))
        got = await host.wait(lambda m: isinstance(m, sig.SelfMuted))
        assert got.participant_id == member.participant_id and got.muted
        await host.close()
        await member.close()
