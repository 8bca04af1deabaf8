"""groups.moderation: random sequences of joins, leaves and moderation actions by anyone
(hypothesis stateful), with the meeting's invariants checked after every step, and a
refusal never changing anything."""

from __future__ import annotations

import copy

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from groups.moderation import Meeting, ModerationError

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
