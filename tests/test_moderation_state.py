"""groups.moderation: random sequences of joins, leaves and moderation actions by anyone
(hypothesis stateful), side rooms included, with the meeting's invariants checked after every
step (no packet path between the group and a side room among them), and a refusal never
changing anything."""

from __future__ import annotations

import copy

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from groups.moderation import GROUP, Meeting, ModerationError

# Seats: (member id, role). Each membership may join with one of two links (participant ids).
SEATS = [(1, "lead"), (2, "co"), (3, "member"), (4, "member"), (5, "member"), (6, "member")]
PIDS = [(f"p-{m:02x}{link}0000", m, role) for m, role in SEATS for link in (0, 1)]
ROLE = {pid: role for pid, _m, role in PIDS}
pids = st.sampled_from([p for p, _m, _r in PIDS])

ACTIONS = {
    "raise_hand": lambda m, a, t, now, x: m.raise_hand(a),
    "lower_own_hand": lambda m, a, t, now, x: m.lower_own_hand(a),
    "lower_hand": lambda m, a, t, now, x: m.lower_hand(a, t),
    "lower_all": lambda m, a, t, now, x: m.lower_all(a),
    "move_to_front": lambda m, a, t, now, x: m.move_to_front(a, t),
    "ask_to_speak": lambda m, a, t, now, x: m.ask_to_speak(a),
    "set_piece": lambda m, a, t, now, x: m.set_piece(a, x, 180 if x else None, now),
    "pass_piece": lambda m, a, t, now, x: m.pass_piece(a, None if x else t, now),
    "return_piece": lambda m, a, t, now, x: m.return_piece(a, now),
    "mute": lambda m, a, t, now, x: m.mute(a, t),
    "mute_all": lambda m, a, t, now, x: m.mute_all(a),
    "allow": lambda m, a, t, now, x: m.allow(a, t),
    "self_mute": lambda m, a, t, now, x: m.self_mute(a, x),
    "remove": lambda m, a, t, now, x: m.remove(a, t, now),
    "send_to_lobby": lambda m, a, t, now, x: m.send_to_lobby(a, t, now),
    "ban": lambda m, a, t, now, x: m.ban(a, t, "meeting" if x else "group", now),
    "set_lock": lambda m, a, t, now, x: m.set_lock(a, x),
    "set_pause": lambda m, a, t, now, x: m.set_pause(a, x),
    "invite_to_side_room": lambda m, a, t, now, x: m.invite_to_side_room(a, t),
    "accept_side_room": lambda m, a, t, now, x: m.accept_side_room(a, now),
    "decline_side_room": lambda m, a, t, now, x: m.decline_side_room(a),
    "return_from_side_room": lambda m, a, t, now, x: m.return_from_side_room(a),
}


class MeetingMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.m = Meeting()
        self.now = 0.0

    @rule(pid=pids)
    def join(self, pid):
        member_id = next(m for p, m, _r in PIDS if p == pid)
        before = copy.deepcopy(self.m)
        try:
            self.m.join(pid, member_id, ROLE[pid])
        except ModerationError as exc:
            assert exc.code in ("banned", "locked")
            assert self.m == before
            return
        assert pid in self.m.present
        # one place per membership
        assert [p.member_id for p in self.m.present.values()].count(member_id) == 1

    @rule(pid=pids)
    def leave(self, pid):
        self.now += 1
        self.m.leave(pid, self.now)
        assert pid not in self.m.present

    @rule(action=st.sampled_from(sorted(ACTIONS)), actor=pids, whom=pids, flag=st.booleans())
    def act(self, action, actor, whom, flag):
        target = whom
        self.now += 1
        before = copy.deepcopy(self.m)
        facilitator = ROLE.get(actor) in ("lead", "co") and actor in self.m.present
        try:
            ACTIONS[action](self.m, actor, target, self.now, flag)
        except ModerationError:
            assert self.m == before, "a refusal changed the meeting"
            return
        # what succeeded was allowed
        if action in ("lower_hand", "lower_all", "move_to_front", "set_piece", "pass_piece",
                      "mute", "mute_all", "allow", "remove", "send_to_lobby", "ban",
                      "set_lock", "set_pause"):
            assert facilitator, f"{action} by a non-facilitator went through"
        if action in ("mute", "remove", "send_to_lobby", "ban"):
            assert ROLE[target] == "member", "a facilitator was acted on"
        if action in ("remove", "send_to_lobby", "ban"):
            assert target not in self.m.present
        if action == "invite_to_side_room":
            assert facilitator and not before.stepped_out(actor)
            assert ROLE[target] == "member"
        if action in ("accept_side_room", "decline_side_room"):
            side = before.side_room_of(actor)
            assert side is not None and side.member == actor and side.status == "invited"
        if action == "return_from_side_room":
            assert before.side_room_of(actor) is not None
            assert not self.m.stepped_out(actor) and self.m.side_room_of(actor) is None

    @rule(i=st.integers(0, 11), j=st.integers(0, 11), answer=st.sampled_from(
        ["accept", "decline", "none"]))
    def side_room(self, i, j, answer):
        """A facilitator present invites a member present, who may answer at once (random
        actors alone seldom line these up)."""
        facs = sorted(p for p, q in self.m.present.items() if q.facilitator)
        members = sorted(p for p, q in self.m.present.items() if not q.facilitator)
        if not facs or not members:
            return
        fac, member = facs[i % len(facs)], members[j % len(members)]
        self.now += 1
        before = copy.deepcopy(self.m)
        try:
            self.m.invite_to_side_room(fac, member)
            if answer == "accept":
                self.m.accept_side_room(member, self.now)
                assert self.m.space_of(fac) == self.m.space_of(member) != GROUP
            elif answer == "decline":
                self.m.decline_side_room(member)
        except ModerationError as exc:
            assert exc.code in ("side_room_busy", "no_cofacilitator"), exc.code
            assert self.m.side_room_of(member) == before.side_room_of(member) or (
                answer != "none")

    @invariant()
    def queue_only_present(self):
        q = self.m.queue()
        assert len(q) == len(set(q))
        assert set(q) <= set(self.m.present)
        assert self.m.asked <= set(self.m.hands)
        assert self.m.self_muted <= set(self.m.present)

    @invariant()
    def at_most_one_holder_and_present(self):
        if self.m.holder is not None:
            assert self.m.piece_on and self.m.holder in self.m.present
            assert self.m.holder not in self.m.hands

    @invariant()
    def muted_never_forwarded(self):
        for pid, p in self.m.present.items():
            fwd = self.m.forwarded(pid)
            if pid in self.m.self_muted:
                assert not fwd
            if self.m.stepped_out(pid):
                continue  # heard by the other side only (no_path_between_spaces)
            if pid in self.m.self_muted or (not p.facilitator and self.m.muted(pid)):
                assert not fwd
            if self.m.piece_on and not p.facilitator and pid != self.m.holder:
                assert not fwd
            if self.m.paused and not p.facilitator:
                assert not fwd
            if p.facilitator and pid not in self.m.self_muted:
                assert fwd
        for pid, _m, _r in PIDS:
            if pid not in self.m.present:
                assert not self.m.forwarded(pid)

    @invariant()
    def no_path_between_spaces(self):
        """The SFU forwards a sender only inside its space: no route from the group into a
        side room, out of one, or between two; a side room's only route is its two sides."""
        paths = self.m.paths()
        for tx, rx in paths:
            assert self.m.space_of(tx) == self.m.space_of(rx)
            assert tx in self.m.present and rx in self.m.present
        for side in self.m.side_rooms.values():
            if side.status != "open":
                continue
            for pid in side.sides():
                assert {rx for tx, rx in paths if tx == pid} <= set(side.sides()) - {pid}
                assert {tx for tx, rx in paths if rx == pid} <= set(side.sides()) - {pid}
        # the group's own rules hold for every path inside the group
        for tx, _rx in paths:
            p = self.m.present[tx]
            if self.m.space_of(tx) == GROUP and not p.facilitator:
                assert not self.m.muted(tx) and not self.m.paused
                assert not self.m.piece_on or self.m.holder == tx

    @invariant()
    def side_rooms_consistent(self):
        facs, members = [], []
        for n, side in self.m.side_rooms.items():
            assert side.number == n and side.status in ("invited", "open")
            assert side.facilitator in self.m.present and side.member in self.m.present
            assert self.m.present[side.facilitator].facilitator
            assert not self.m.present[side.member].facilitator
            facs.append(side.facilitator)
            members.append(side.member)
        assert len(set(facs + members)) == len(facs + members), "one side room each at most"
        for pid in self.m.present:
            if self.m.stepped_out(pid):
                assert pid not in self.m.hands and pid != self.m.holder
        snap = self.m.snapshot(self.now)
        assert set(snap["stepped_out"]) == {p for p in self.m.present if self.m.stepped_out(p)}

    @invariant()
    def banned_not_present(self):
        present_members = {p.member_id for p in self.m.present.values() if not p.facilitator}
        assert not (present_members & self.m.banned_members)


MeetingMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                            deadline=None)
TestMeetingMachine = MeetingMachine.TestCase


def test_queue_order_and_reconnect_keeps_place():
    m = Meeting()
    m.join("p-010000", 1, "lead")
    for i, pid in enumerate(["p-030000", "p-040000", "p-050000"]):
        m.join(pid, 3 + i, "member")
        m.raise_hand(pid)
    assert m.queue() == ["p-030000", "p-040000", "p-050000"]
    m.move_to_front("p-010000", "p-050000")
    assert m.queue() == ["p-050000", "p-030000", "p-040000"]
    m.leave("p-030000")
    assert m.queue() == ["p-050000", "p-040000"]
    m.join("p-030001", 3, "member")  # the same membership back, on a new link
    assert m.queue() == ["p-050000", "p-030001", "p-040000"]
    m.lower_hand("p-010000", "p-040000")
    assert m.queue() == ["p-050000", "p-030001"]


def test_mute_survives_a_new_link_and_cannot_be_lifted_by_the_member():
    m = Meeting()
    m.join("p-010000", 1, "lead")
    m.join("p-030000", 3, "member")
    m.mute_all("p-010000")
    with pytest.raises(ModerationError) as exc:
        m.self_mute("p-030000", False)
    assert exc.value.code == "muted_by_facilitator"
    m.leave("p-030000")
    m.join("p-030001", 3, "member")
    assert m.muted("p-030001") and not m.forwarded("p-030001")
    m.ask_to_speak("p-030001")
    assert m.snapshot(0)["queue"] == [{"participant_id": "p-030001", "asked_to_speak": True}]
    m.allow("p-010000", "p-030001")
    assert m.forwarded("p-030001")


def test_lock_lets_present_and_facilitators_in_but_no_one_new():
    m = Meeting()
    m.join("p-010000", 1, "lead")
    m.join("p-030000", 3, "member")
    m.set_lock("p-010000", True)
    with pytest.raises(ModerationError) as exc:
        m.join("p-040000", 4, "member")
    assert exc.value.code == "locked"
    m.join("p-030001", 3, "member")  # already in: a reload is not someone new
    m.join("p-020000", 2, "co")
    m.set_lock("p-020000", False)
    m.join("p-040000", 4, "member")


def test_pause_holds_every_member_and_resume_restores_each_mute():
    m = Meeting()
    seated = {}  # one link per membership
    for pid, member_id, role in PIDS:
        seated.setdefault(member_id, (pid, role))
    for member_id, (pid, role) in seated.items():
        m.join(pid, member_id, role)
    lead = next(p for p, r in seated.values() if r == "lead")
    members = [p for p, r in seated.values() if r == "member"]
    m.mute(lead, members[0])
    m.self_mute(members[1], True)
    before = {pid: m.forwarded(pid) for pid in m.present}
    m.set_pause(lead, True)
    assert m.snapshot(0)["paused"] is True
    assert not any(m.forwarded(p) for p in members)
    assert m.forwarded(lead)
    with pytest.raises(ModerationError):
        m.allow(members[2], members[0])  # (a member cannot lift anything)
    m.set_pause(lead, False)
    assert {pid: m.forwarded(pid) for pid in m.present} == before
    assert m.muted(members[0]) and members[1] in m.self_muted


def test_co_facilitator_keeps_control_and_absence_is_timed():
    m = Meeting()
    m.join("p-010000", 1, "lead")
    m.join("p-020000", 2, "co")
    m.join("p-030000", 3, "member")
    m.leave("p-010000", 10.0)
    assert m.facilitator_absent_for(100.0) == 0.0
    m.mute("p-020000", "p-030000")
    m.leave("p-020000", 20.0)
    assert m.facilitator_absent_for(140.0) == 120.0
    m.join("p-020000", 2, "co")
    assert m.facilitator_absent_for(200.0) == 0.0


def _side_room_meeting():
    m = Meeting()
    m.join("p-010000", 1, "lead")
    m.join("p-020000", 2, "co")
    for pid, member_id in (("p-030000", 3), ("p-040000", 4), ("p-050000", 5)):
        m.join(pid, member_id, "member")
    return m


def test_side_room_invite_accept_return():
    m = _side_room_meeting()
    lead, co, m3, m4 = "p-010000", "p-020000", "p-030000", "p-040000"
    m.raise_hand(m3)
    m.set_piece(co, True, None, 0)
    m.pass_piece(co, m3, 0)
    with pytest.raises(ModerationError) as exc:
        m.invite_to_side_room(m4, m3)
    assert exc.value.code == "forbidden"
    with pytest.raises(ModerationError) as exc:
        m.invite_to_side_room(lead, co)
    assert exc.value.code == "side_room_target"
    m.invite_to_side_room(lead, m3)
    assert not m.stepped_out(m3) and m.holder == m3  # nothing changes until they accept
    assert m.snapshot(0)["stepped_out"] == [] and m.snapshot(0)["side_rooms"] == []
    with pytest.raises(ModerationError) as exc:
        m.invite_to_side_room(lead, m4)
    assert exc.value.code == "side_room_busy"
    with pytest.raises(ModerationError) as exc:
        m.invite_to_side_room(co, m3)
    assert exc.value.code == "side_room_busy"
    with pytest.raises(ModerationError) as exc:
        m.accept_side_room(m4, 0)
    assert exc.value.code == "no_invitation"
    m.accept_side_room(m3, 1)
    assert m.stepped_out(m3) and m.stepped_out(lead) and m.holder is None
    assert m.snapshot(0)["stepped_out"] == sorted([lead, m3])
    assert m.paths() >= {(lead, m3), (m3, lead)}
    assert not {(a, b) for a, b in m.paths() if {a, b} & {lead, m3} and {a, b} - {lead, m3}}
    with pytest.raises(ModerationError) as exc:
        m.raise_hand(m3)
    assert exc.value.code == "stepped_out"
    with pytest.raises(ModerationError) as exc:
        m.pass_piece(co, m3, 2)
    assert exc.value.code == "stepped_out"
    # the member can speak in the side room whatever the group's rules
    m.mute(co, m3)
    assert m.forwarded(m3) and (m3, lead) in m.paths()
    m.return_from_side_room(m3)
    assert not m.stepped_out(m3) and not m.stepped_out(lead)
    assert not m.forwarded(m3)  # back in the group: its mute and the piece hold again
    assert (lead, m3) in m.paths() and (co, m3) in m.paths() and (m4, m3) not in m.paths()


def test_side_room_needs_a_facilitator_for_the_group_and_ends_when_a_side_leaves():
    m = _side_room_meeting()
    lead, co, m3, m4 = "p-010000", "p-020000", "p-030000", "p-040000"
    m.leave(co)
    with pytest.raises(ModerationError) as exc:
        m.invite_to_side_room(lead, m3)
    assert exc.value.code == "no_cofacilitator"
    m.join(co, 2, "co")
    m.invite_to_side_room(lead, m3)
    m.decline_side_room(m3)
    assert m.side_rooms == {}
    m.invite_to_side_room(lead, m3)
    m.return_from_side_room(lead)  # withdrawn before an answer
    assert m.side_rooms == {}
    m.invite_to_side_room(lead, m3)
    m.accept_side_room(m3, 0)
    with pytest.raises(ModerationError) as exc:
        m.invite_to_side_room(co, m4)  # no facilitator would be left with the group
    assert exc.value.code == "no_cofacilitator"
    m.leave(lead, 5)  # the facilitator who runs it drops: the member is back in the group
    assert not m.stepped_out(m3) and m.space_of(m3) == GROUP and m.side_rooms == {}
    m.join(lead, 1, "lead")
    m.invite_to_side_room(co, m4)
    m.accept_side_room(m4, 6)
    m.join("p-040001", 4, "member")  # a reload on a new link: the old place and its room go
    assert m.side_rooms == {} and not m.stepped_out(co)
