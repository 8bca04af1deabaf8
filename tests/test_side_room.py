"""A private side room (issue 13) through the real SFU, with real aiortc Python clients:
frames counted per sender at every receiver (tests/moderation_support.Ledger). The facilitator
and the member in the side room hear each other, the group hears neither (and they hear
nothing of the group), the side room's frames open under no key the group holds, keys are
not relayed across; after return the member hears the group again; a facilitator who drops
returns the member. Plus the key audience rules of media.e2ee.SenderKeyManager."""

from __future__ import annotations

import copy
import time

import pytest

from media import signaling as sig
from media.e2ee import IdentityKeys, Member, SenderKeyManager, unwrap_sender_key
from media.sframe import SFrameError

from .moderation_support import Peer, build_meeting
from .test_moderation_sfu import HEARD, Meeting
from .test_voice_e2e import wait_for
from .voice_support import VoiceServer

GROUP_ONLY = ("Cedar", "M2")


def _silent(win, senders, receivers) -> bool:
    return all(win[rx].get(tx, 0) == 0 for tx in senders for rx in receivers)


def _heard(win, senders, receivers) -> bool:
    return all(win[rx].get(tx, 0) > HEARD for tx in senders for rx in receivers if rx != tx)


@pytest.mark.slow
async def test_side_room_through_the_sfu(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        world = build_meeting(server.app, server.base_url, members=2)
        m = Meeting(world)
        for who, f in (("Sage", 300), ("Cedar", 500), ("M1", 700), ("M2", 900)):
            await m.add(who, f)
        try:
            await wait_for(lambda: all(len(g) > 150 for g in m.ledger.got.values()), 25)
            sage, m1 = m.clients["Sage"], m.clients["M1"]
            everyone = tuple(m.clients)
            assert _heard(await m.window(heard=everyone), everyone, everyone)

            # a member cannot invite; the facilitator invites M1, who is asked privately
            await m.clients["M2"]._send(sig.SideRoomInvite(m.pid("M1")))
            await wait_for(lambda: any(e.code == "forbidden" for e in m.messages("M2", sig.Error)))
            await sage._send(sig.SideRoomInvite(m.pid("M1")))
            await wait_for(lambda: m.messages("M1", sig.SideRoom))
            invite = m.messages("M1", sig.SideRoom)[-1]
            assert (invite.status, invite.facilitator, invite.facilitator_name) == (
                "invited", m.pid("Sage"), "Sage")
            gen = {w: c.manager.sender.key.generation for w, c in m.clients.items()}
            await m1._send(sig.SideRoomAccept())
            opened = lambda s: set(s["stepped_out"]) == {m.pid("Sage"), m.pid("M1")}  # noqa: E731
            for who in everyone:
                await m.applied(who, opened)
            # every side re-keys: a new generation each, for its own space only
            await wait_for(lambda: all(c.manager.sender.key.generation > gen[w]
                                       for w, c in m.clients.items()))
            assert {x.participant_id for x in sage.manager.audience} == {m.pid("M1")}
            assert {x.participant_id for x in m.clients["M2"].manager.audience} == {
                m.pid("Cedar")}
            m.ledger.keep_payloads = True
            cut = time.monotonic()
            win = await m.window(heard=("Sage", "M1", "Cedar", "M2"))
            assert _heard(win, ("Sage", "M1"), ("Sage", "M1")), win
            assert _heard(win, GROUP_ONLY, GROUP_ONLY), win
            assert _silent(win, ("Sage", "M1"), GROUP_ONLY), win  # the group hears neither
            assert _silent(win, GROUP_ONLY, ("Sage", "M1")), win  # and they hear no one else
            # no key crosses: M2 addressing a key to M1 is not relayed
            keys_before = len(m.messages("M1", sig.KeyFrom))
            blob = m.clients["M2"].manager._wrap_for([
                x for x in m.clients["M2"].manager.members if x.participant_id == m.pid("M1")])
            await m.clients["M2"]._send(sig.Keys((sig.KeyDelivery(m.pid("M1"),
                                                                  blob[0].to_dict()),)))
            await m.clients["M2"]._send(sig.Ping())
            await wait_for(lambda: any(isinstance(x, sig.Pong) for x in m.messages("M2", sig.Pong)))
            await m.window(heard=("Sage", "M1"))
            assert len(m.messages("M1", sig.KeyFrom)) == keys_before
            # the side room's own keys: its frames open under no key the group holds
            side = [p for rx, t, p in m.ledger.payloads if t > cut and rx in ("Sage", "M1")]
            assert len(side) > 2 * HEARD
            for who in GROUP_ONLY:
                receiver = m.clients[who].manager.receiver
                opened_n = 0
                for p in side:
                    try:
                        receiver.decrypt(p)
                        opened_n += 1
                    except SFrameError:
                        pass
                assert opened_n == 0, f"{who} decrypted the side room"
            m.ledger.keep_payloads = False
            # the group saw who stepped out, never the invitation
            for who in GROUP_ONLY:
                assert not m.messages(who, sig.SideRoom)

            # the member returns: back with the group, hearing it and heard by it again
            await m1._send(sig.SideRoomReturn())
            for who in everyone:
                await m.applied(who, lambda s: s["stepped_out"] == [])
            win = await m.window(heard=everyone)
            assert _heard(win, everyone, everyone), win
            back = m.messages("Sage", sig.SideRoom)[-1]
            assert (back.status, back.by) == ("returned", m.pid("M1"))

            # again, and the facilitator drops: the member is returned to the group
            await sage._send(sig.SideRoomInvite(m.pid("M1")))
            await wait_for(lambda: m.messages("M1", sig.SideRoom)[-1].status == "invited")
            await m1._send(sig.SideRoomAccept())
            await m.applied("M1", opened)
            sage_pid = m.pid("Sage")
            await sage.close()
            del m.clients["Sage"]
            await m.applied("M1", lambda s: s["stepped_out"] == []
                            and sage_pid not in s["facilitators"])
            assert m.messages("M1", sig.SideRoom)[-1].status == "returned"
            rest = ("Cedar", "M1", "M2")
            win = await m.window(heard=rest)
            assert _heard(win, rest, rest), win
        finally:
            await m.close()


def _people(n: int):
    ids = [IdentityKeys.generate() for _ in range(n)]
    return ids, [Member(f"p-{i:06x}", i + 1, k.card()) for i, k in enumerate(ids)]


def test_audience_change_rekeys_away_and_ratchets_back():
    ids, people = _people(4)
    me = SenderKeyManager("r-" + "0" * 16, ids[0], people[0].participant_id, 1)
    me.start(people[1:])
    g0 = me.sender.key.generation
    # a side room with people[1]: a new generation, wrapped for them alone
    out = me.set_audience([people[1].participant_id])
    assert [b.recipient_participant_id for b in out] == [people[1].participant_id]
    assert me.sender.key.generation == g0 + 1
    assert me.set_audience([people[1].participant_id]) == []  # no change, no re-key
    # someone joins the meeting meanwhile: not keyed from the side room
    extra = Member("p-0000ff", 9, IdentityKeys.generate().card())
    assert me.member_joined(extra) == []
    # someone in the group leaves: no re-key needed, they never had this generation
    assert me.member_left(people[2].participant_id) == []
    # back in the group: a ratchet step (same generation), keys for those who came back
    back = [p.participant_id for p in (people[1], people[3], extra)]
    out = me.set_audience(back)
    assert me.sender.key.generation == g0 + 1 and me.sender.key.ratchet_step == 1
    assert {b.recipient_participant_id for b in out} == {people[3].participant_id,
                                                         extra.participant_id}
    blob = next(b for b in out if b.recipient_participant_id == people[3].participant_id)
    got = unwrap_sender_key(blob, room_id=me.room_id, recipient_identity=ids[3],
                            recipient_participant_id=people[3].participant_id,
                            sender=people[0])
    assert got.generation == g0 + 1 and got.ratchet_step == 1
    # unknown ids are ignored; the side member's leave while heard re-keys
    me.set_audience(back + ["p-abcdef"])
    out = me.member_left(people[1].participant_id)
    assert me.sender.key.generation == g0 + 2
    assert {b.recipient_participant_id for b in out} == {people[3].participant_id,
                                                         extra.participant_id}


async def test_side_room_refusals_and_privacy_over_signaling(tmp_path):
    """Signaling-only peers against the real app: each refusal has its code and changes
    nothing; an invitation, a decline and a withdrawal reach the two sides only."""
    async with VoiceServer(tmp_path / "data") as server:
        world = build_meeting(server.app, server.base_url, members=2)
        peers = {who: await Peer(world.link(who)).start() for who in ("Sage", "M1", "M2")}
        sage, m1, m2 = peers["Sage"], peers["M1"], peers["M2"]
        room = server.hub.rooms[world.room_id]

        async def refused(peer, message, code):
            since = len(peer.messages)
            before = copy.deepcopy(room.meeting)
            await peer.send(message)
            err = await peer.wait(lambda x: isinstance(x, sig.Error), since=since)
            assert (err.code, err.fatal) == (code, False), err
            assert room.meeting == before

        try:
            # no co-facilitator present: the lead cannot step out and leave the group alone
            await refused(sage, sig.SideRoomInvite(m1.participant_id), "no_cofacilitator")
            peers["Cedar"] = cedar = await Peer(world.link("Cedar")).start()
            await refused(sage, sig.SideRoomInvite(cedar.participant_id), "side_room_target")
            await refused(sage, sig.SideRoomInvite("p-000000000000"), "not_found")
            await refused(m1, sig.SideRoomAccept(), "no_invitation")
            await refused(m1, sig.SideRoomReturn(), "no_side_room")
            seen = {w: len(p.messages) for w, p in peers.items()}
            await sage.send(sig.SideRoomInvite(m1.participant_id))
            got = await m1.wait(lambda x: isinstance(x, sig.SideRoom), since=seen["M1"])
            assert (got.status, got.member, got.facilitator_name) == (
                "invited", m1.participant_id, "Sage")
            await refused(sage, sig.SideRoomInvite(m2.participant_id), "side_room_busy")
            await refused(cedar, sig.SideRoomInvite(m1.participant_id), "side_room_busy")
            await refused(m2, sig.SideRoomDecline(), "no_invitation")
            await m1.send(sig.SideRoomDecline())
            got = await sage.wait(lambda x: isinstance(x, sig.SideRoom) and x.status
                                  == "declined", since=seen["Sage"])
            assert got.by == m1.participant_id
            await sage.send(sig.SideRoomInvite(m1.participant_id))
            await m1.wait(lambda x: isinstance(x, sig.SideRoom) and x.status == "invited",
                          since=len(m1.messages) - 1)
            await sage.send(sig.SideRoomReturn())  # withdrawn before an answer
            await m1.wait(lambda x: isinstance(x, sig.SideRoom) and x.status == "withdrawn")
            await sage.send(sig.Ping())
            await m2.send(sig.Ping())
            await sage.wait(lambda x: isinstance(x, sig.Pong), since=seen["Sage"])
            await m2.wait(lambda x: isinstance(x, sig.Pong), since=seen["M2"])
            for who in ("M2", "Cedar"):  # the group heard of none of it
                assert not [x for x in peers[who].messages[seen[who]:]
                            if isinstance(x, sig.SideRoom | sig.Moderation)], who
            # stepped out: no hand, no piece, while the group goes on with the co-facilitator
            await sage.send(sig.SideRoomInvite(m1.participant_id))
            await m1.wait(lambda x: isinstance(x, sig.SideRoom) and x.status == "invited",
                          since=len(m1.messages) - 1)
            await m1.send(sig.SideRoomAccept())
            await m2.wait(lambda x: isinstance(x, sig.Moderation)
                          and m1.participant_id in x.state["stepped_out"])
            await refused(m1, sig.Hand(True), "stepped_out")
            await cedar.send(sig.Piece(True))
            await cedar.wait(lambda x: isinstance(x, sig.Moderation) and x.state["piece_on"])
            await refused(cedar, sig.PiecePass(m1.participant_id), "stepped_out")
            # a removal of the member ends the side room: the facilitator is told
            await cedar.send(sig.Remove(m1.participant_id))
            got = await sage.wait(lambda x: isinstance(x, sig.SideRoom)
                                  and x.status == "returned")
            assert got.by == cedar.participant_id
            await sage.wait(lambda x: isinstance(x, sig.Moderation)
                            and x.state["stepped_out"] == [])
            # the last facilitator with the group goes: the side room's facilitator is told
            await sage.send(sig.SideRoomInvite(m2.participant_id))
            await m2.wait(lambda x: isinstance(x, sig.SideRoom) and x.status == "invited")
            await m2.send(sig.SideRoomAccept())
            await sage.wait(lambda x: isinstance(x, sig.SideRoom) and x.status == "opened")
            assert not [x for x in sage.messages if isinstance(x, sig.Notice)
                        and x.code == "group_unattended"]
            await cedar.close()
            del peers["Cedar"]
            await sage.wait(lambda x: isinstance(x, sig.Notice) and x.code == "group_unattended")
            assert not [x for x in m2.messages if isinstance(x, sig.Notice)
                        and x.code == "group_unattended"]
            assert room.meeting.stepped_out(m2.participant_id)  # theirs to end
        finally:
            for p in peers.values():
                await p.close()


async def test_side_room_outside_a_group_meeting_is_refused(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        host_url, member_url = server.invite(2)
        host, member = await Peer(host_url).start(), await Peer(member_url).start()
        try:
            await host.send(sig.SideRoomInvite(member.participant_id))
            err = await host.wait(lambda x: isinstance(x, sig.Error))
            assert err.code == "not_group_meeting" and not err.fatal
        finally:
            await host.close()
            await member.close()
