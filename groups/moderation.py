"""A moderated group meeting's live state: who is present, the raised-hand queue, the talking
piece, mutes, the lock and bans, and whether a facilitator is here.

A pure state machine, no I/O and no clock of its own (callers pass ``now``, in monotonic
seconds): the signaling hub (web.voice) drives it with every join, leave and moderation
message, then makes the SFU forward exactly the people :meth:`Meeting.forwarded` names and
broadcasts :meth:`Meeting.snapshot`. Every refusal raises :class:`ModerationError`, whose
``code`` goes back to the sender, and changes nothing.

People are addressed by their participant id (what the clients know); what must outlive a
reconnect (a facilitator's mute, a ban, a place in the hand queue) is kept by membership id,
so a reload with a fresh join link neither escapes a mute nor loses a raised hand.

Roles come from the server's group data (``groups.meetings.Seat``), never from a client:
``lead`` and ``co`` are facilitators, ``member`` is not. Facilitators are never muted,
removed or banned from here, and their voice is always forwarded.

Invariants (tests/test_moderation_state.py drives random sequences against them):

* the queue holds only present people, each at most once, in order of raising;
* at most one person holds the talking piece, and the holder is present;
* a muted (by a facilitator, or by themselves) member is never forwarded to the group; with
  the piece on, only the holder and the facilitators are;
* side rooms (issue 13): a facilitator invites one present member; once the member accepts,
  both are "stepped out" into a side room of their own (:meth:`Meeting.space_of`), and the
  SFU forwards a sender only to receivers in the same space (:meth:`Meeting.paths`): there
  is no packet path between the group and a side room, nor between two side rooms. A
  stepped-out person is in no hand queue and holds no piece; a facilitator runs at most one
  side room (or invitation), a member is in at most one; a facilitator may step out only
  while another facilitator stays with the group; a side room ends (the member is back in
  the group) when either side returns or leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FACILITATOR_ROLES = ("lead", "co")
ROLES = FACILITATOR_ROLES + ("member",)
MIN_SHARE_S, MAX_SHARE_S = 30, 30 * 60
BAN_SCOPES = ("meeting", "group")


GROUP = 0  # the space of everyone not in a side room (side rooms are numbered from 1)


class ModerationError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Person:
    participant_id: str
    member_id: int
    role: str  # lead | co | member

    @property
    def facilitator(self) -> bool:
        return self.role in FACILITATOR_ROLES


@dataclass(frozen=True)
class Event:
    """What just happened, for the room's announcements: ``kind`` names the action."""

    kind: str
    by: str | None = None  # the participant who did it
    participant_id: str | None = None  # the one it was done to, if any


@dataclass
class SideRoom:
    """A facilitator's private side room with one member: ``invited`` until the member
    accepts (then ``open``: both are stepped out of the group)."""

    number: int
    facilitator: str  # participant ids
    member: str
    status: str = "invited"  # invited | open

    def sides(self) -> tuple[str, str]:
        return (self.facilitator, self.member)


@dataclass
class Meeting:
    locked: bool = False
    paused: bool = False  # a short pause: only facilitators are forwarded
    present: dict[str, Person] = field(default_factory=dict)
    # hand queue: participant id -> raise order (smaller first); `asked` marks "ask to speak"
    hands: dict[str, int] = field(default_factory=dict)
    asked: set[str] = field(default_factory=set)
    self_muted: set[str] = field(default_factory=set)
    muted_members: set[int] = field(default_factory=set)  # by a facilitator, by membership
    banned_members: set[int] = field(default_factory=set)  # for this meeting
    piece_on: bool = False
    holder: str | None = None
    share_seconds: int | None = None
    share_started: float | None = None
    facilitator_gone_since: float | None = None
    side_rooms: dict[int, SideRoom] = field(default_factory=dict)  # number -> side room
    _next_side_room: int = 0
    _next_order: int = 0
    _away_hands: dict[int, int] = field(default_factory=dict)  # member id -> raise order

    # --- lookups --------------------------------------------------------------------------

    def queue(self) -> list[str]:
        return [pid for pid, _ in sorted(self.hands.items(), key=lambda kv: kv[1])]

    def facilitators_present(self) -> bool:
        return any(p.facilitator for p in self.present.values())

    def muted(self, pid: str) -> bool:
        """Muted by a facilitator (and so unable to unmute themselves)."""
        p = self.present.get(pid)
        return p is not None and p.member_id in self.muted_members

    def side_room_of(self, pid: str) -> SideRoom | None:
        """The side room (invited or open) this participant is a side of, if any."""
        for side in self.side_rooms.values():
            if pid in side.sides():
                return side
        return None

    def space_of(self, pid: str) -> int:
        """Where this participant is heard: :data:`GROUP`, or the number of their open side
        room."""
        side = self.side_room_of(pid)
        return side.number if side is not None and side.status == "open" else GROUP

    def stepped_out(self, pid: str) -> bool:
        return self.space_of(pid) != GROUP

    def forwarded(self, pid: str) -> bool:
        """Whether the SFU forwards this participant's voice now (to their own space only,
        see :meth:`paths`). In a side room only one's own mute applies: the group's rules
        (a facilitator's mute, the piece, a pause) are for the group."""
        p = self.present.get(pid)
        if p is None or pid in self.self_muted:
            return False
        if p.facilitator or self.stepped_out(pid):
            return True
        if self.paused or p.member_id in self.muted_members:
            return False
        return not self.piece_on or self.holder == pid

    def paths(self) -> set[tuple[str, str]]:
        """Every (sender, receiver) pair the SFU may forward now: a forwarded sender, to
        everyone else present in the same space."""
        return {(tx, rx) for tx in self.present if self.forwarded(tx)
                for rx in self.present if rx != tx and self.space_of(rx) == self.space_of(tx)}

    def share_remaining(self, now: float) -> float | None:
        if self.share_seconds is None or self.share_started is None:
            return None
        return max(0.0, self.share_seconds - (now - self.share_started))

    def snapshot(self, now: float) -> dict:
        remaining = self.share_remaining(now)
        return {
            "queue": [{"participant_id": pid, "asked_to_speak": pid in self.asked}
                      for pid in self.queue()],
            "piece_on": self.piece_on,
            "holder": self.holder,
            "share_seconds": self.share_seconds,
            "share_remaining": None if remaining is None else round(remaining, 1),
            "muted": sorted(pid for pid in self.present if self.muted(pid)),
            "self_muted": sorted(self.self_muted),
            "facilitators": sorted(pid for pid, p in self.present.items() if p.facilitator),
            "locked": self.locked,
            "paused": self.paused,
            "facilitator_present": self.facilitators_present(),
            # who is away in a side room (their seats show "stepped out"); invitations are
            # private to the two sides and not in here
            "stepped_out": sorted(pid for pid in self.present if self.stepped_out(pid)),
            "side_rooms": [{"room": s.number, "facilitator": s.facilitator, "member": s.member}
                           for s in sorted(self.side_rooms.values(), key=lambda s: s.number)
                           if s.status == "open"],
        }

    # --- checks ---------------------------------------------------------------------------

    def _person(self, pid: str) -> Person:
        p = self.present.get(pid)
        if p is None:
            raise ModerationError("not_found", "that person is not in the meeting")
        return p

    def _facilitator(self, actor: str) -> Person:
        p = self._person(actor)
        if not p.facilitator:
            raise ModerationError("forbidden", "only a facilitator can do that")
        return p

    def _member_target(self, target: str) -> Person:
        p = self._person(target)
        if p.facilitator:
            raise ModerationError("facilitator_target",
                                  "facilitators cannot be muted, removed or banned")
        return p

    # --- presence -------------------------------------------------------------------------

    def admit(self, pid: str, member_id: int, role: str) -> None:
        """May this seat come in now? Raises ``banned`` or ``locked``; changes nothing."""
        if role not in ROLES:
            raise ModerationError("invalid_role", "unknown role")
        facilitator = role in FACILITATOR_ROLES
        if member_id in self.banned_members and not facilitator:
            raise ModerationError("banned", "a facilitator has removed you from this meeting")
        returning = any(p.member_id == member_id for p in self.present.values())
        if self.locked and not facilitator and not returning:
            raise ModerationError("locked", "the facilitator has locked this meeting; "
                                  "no one new can come in until it is unlocked")

    def join(self, pid: str, member_id: int, role: str) -> Event:
        self.admit(pid, member_id, role)
        for old in [q for q, p in self.present.items() if p.member_id == member_id and q != pid]:
            self.leave(old)  # the same membership on a new link: its old place goes
        self.present[pid] = Person(pid, member_id, role)
        order = self._away_hands.pop(member_id, None)
        if order is not None:
            self.hands[pid] = order  # a reconnect keeps its place in the queue
        if role in FACILITATOR_ROLES:
            self.facilitator_gone_since = None
        return Event("joined", pid, pid)

    def leave(self, pid: str, now: float = 0.0) -> Event:
        p = self.present.pop(pid, None)
        if p is None:
            return Event("left", pid, pid)
        order = self.hands.pop(pid, None)
        if order is not None and p.member_id not in self.banned_members:
            self._away_hands[p.member_id] = order
        self.asked.discard(pid)
        self.self_muted.discard(pid)
        if self.holder == pid:
            self._set_holder(None, now)
        side = self.side_room_of(pid)
        if side is not None:  # the other side is back in the group (or not invited)
            del self.side_rooms[side.number]
        if p.facilitator and not self.facilitators_present():
            self.facilitator_gone_since = now
        return Event("left", pid, pid)

    def forget_hand(self, member_id: int) -> None:
        """This person will not come back to this meeting (removed, sent to the lobby)."""
        self._away_hands.pop(member_id, None)

    def facilitator_absent_for(self, now: float) -> float:
        if self.facilitator_gone_since is None or self.facilitators_present():
            return 0.0
        return now - self.facilitator_gone_since

    # --- hands ----------------------------------------------------------------------------

    def _in_group(self, pid: str) -> None:
        if self.stepped_out(pid):
            raise ModerationError("stepped_out", "that person is in a side room just now")

    def raise_hand(self, actor: str) -> Event:
        self._person(actor)
        self._in_group(actor)
        if actor not in self.hands:
            self._next_order += 1
            self.hands[actor] = self._next_order
        return Event("hand_raised", actor, actor)

    def lower_own_hand(self, actor: str) -> Event:
        self._person(actor)
        self.hands.pop(actor, None)
        self.asked.discard(actor)
        return Event("hand_lowered", actor, actor)

    def lower_hand(self, actor: str, target: str) -> Event:
        self._facilitator(actor)
        self._person(target)
        if target not in self.hands:
            raise ModerationError("no_hand", "that person's hand is not raised")
        self.hands.pop(target)
        self.asked.discard(target)
        return Event("hand_lowered", actor, target)

    def lower_all(self, actor: str) -> Event:
        self._facilitator(actor)
        self.hands.clear()
        self.asked.clear()
        return Event("hands_lowered", actor)

    def move_to_front(self, actor: str, target: str) -> Event:
        self._facilitator(actor)
        self._person(target)
        if target not in self.hands:
            raise ModerationError("no_hand", "that person's hand is not raised")
        self.hands[target] = min(self.hands.values()) - 1
        return Event("hand_moved", actor, target)

    def ask_to_speak(self, actor: str) -> Event:
        self._person(actor)
        if not self.muted(actor) and not (self.piece_on and not self.forwarded(actor)):
            raise ModerationError("not_muted", "you can already speak")
        self.raise_hand(actor)
        self.asked.add(actor)
        return Event("asked_to_speak", actor, actor)

    # --- talking piece --------------------------------------------------------------------

    def _set_holder(self, pid: str | None, now: float) -> None:
        self.holder = pid
        self.share_started = now if pid is not None and self.share_seconds else None
        if pid is not None:
            self.hands.pop(pid, None)
            self.asked.discard(pid)

    def set_piece(self, actor: str, on: bool, share_seconds: int | None, now: float) -> Event:
        self._facilitator(actor)
        if share_seconds is not None and not MIN_SHARE_S <= share_seconds <= MAX_SHARE_S:
            raise ModerationError("invalid_share_time",
                                  f"a share time is {MIN_SHARE_S} to {MAX_SHARE_S} seconds")
        self.piece_on = on
        self.share_seconds = share_seconds if on else None
        self._set_holder(None, now)
        return Event("piece_on" if on else "piece_off", actor)

    def pass_piece(self, actor: str, target: str | None, now: float) -> Event:
        """A facilitator gives the piece to anyone present (None: the next raised hand)."""
        self._facilitator(actor)
        if not self.piece_on:
            raise ModerationError("piece_off", "turn the talking piece on first")
        if target is None:
            queue = self.queue()
            if not queue:
                raise ModerationError("queue_empty", "no hand is raised")
            target = queue[0]
        self._person(target)
        self._in_group(target)
        self._set_holder(target, now)
        return Event("piece_passed", actor, target)

    def return_piece(self, actor: str, now: float) -> Event:
        """The holder (or a facilitator) gives the piece back to the facilitators."""
        p = self._person(actor)
        if not self.piece_on:
            raise ModerationError("piece_off", "the talking piece is not in use")
        if self.holder != actor and not p.facilitator:
            raise ModerationError("not_holder", "only the person holding the piece can pass it")
        previous = self.holder
        self._set_holder(None, now)
        return Event("piece_returned", actor, previous)

    # --- mute -----------------------------------------------------------------------------

    def mute(self, actor: str, target: str) -> Event:
        self._facilitator(actor)
        p = self._member_target(target)
        self.muted_members.add(p.member_id)
        return Event("muted", actor, target)

    def mute_all(self, actor: str) -> Event:
        self._facilitator(actor)
        for p in self.present.values():
            if not p.facilitator:
                self.muted_members.add(p.member_id)
        return Event("muted_all", actor)

    def allow(self, actor: str, target: str) -> Event:
        self._facilitator(actor)
        p = self._member_target(target)
        self.muted_members.discard(p.member_id)
        self.asked.discard(target)
        return Event("allowed", actor, target)

    def self_mute(self, actor: str, muted: bool) -> Event:
        self._person(actor)
        if muted:
            self.self_muted.add(actor)
        else:
            if self.muted(actor) and not self.stepped_out(actor):
                raise ModerationError("muted_by_facilitator",
                                      "a facilitator muted you; ask to speak")
            self.self_muted.discard(actor)
        return Event("self_muted" if muted else "self_unmuted", actor, actor)

    # --- remove, lobby, ban, lock ---------------------------------------------------------

    def remove(self, actor: str, target: str, now: float) -> Event:
        self._facilitator(actor)
        p = self._member_target(target)
        if target == actor:
            raise ModerationError("forbidden", "you cannot remove yourself")
        self.leave(target, now)
        self.forget_hand(p.member_id)
        return Event("removed", actor, target)

    def send_to_lobby(self, actor: str, target: str, now: float) -> Event:
        self._facilitator(actor)
        p = self._member_target(target)
        self.leave(target, now)
        self.forget_hand(p.member_id)
        return Event("sent_to_lobby", actor, target)

    def ban(self, actor: str, target: str, scope: str, now: float) -> Event:
        self._facilitator(actor)
        if scope not in BAN_SCOPES:
            raise ModerationError("invalid_scope", "a ban is for the meeting or the group")
        p = self._member_target(target)
        self.banned_members.add(p.member_id)
        self.leave(target, now)
        self.forget_hand(p.member_id)
        return Event("banned", actor, target)

    def set_lock(self, actor: str, locked: bool) -> Event:
        self._facilitator(actor)
        self.locked = locked
        return Event("locked" if locked else "unlocked", actor)

    def set_pause(self, actor: str, paused: bool) -> Event:
        """Pause (every member held at the SFU, facilitators still heard) or resume; members'
        own and facilitators' mutes are kept apart, so resuming restores them as they were."""
        self._facilitator(actor)
        self.paused = paused
        return Event("paused" if paused else "resumed", actor)

    # --- side rooms -----------------------------------------------------------------------

    def invite_to_side_room(self, actor: str, target: str) -> Event:
        """A facilitator invites one member present in the group into a private side room
        with them (pending until the member accepts or declines)."""
        self._facilitator(actor)
        p = self._person(target)
        if p.facilitator:
            raise ModerationError("side_room_target", "only a member can be invited to a "
                                  "side room")
        if self.side_room_of(actor) is not None:
            raise ModerationError("side_room_busy", "you already have a side room or an "
                                  "invitation open")
        if self.side_room_of(target) is not None:
            raise ModerationError("side_room_busy", "that person already has a side room "
                                  "or an invitation")
        self._keeper_for(actor)
        self._next_side_room += 1
        n = self._next_side_room
        self.side_rooms[n] = SideRoom(n, actor, target)
        return Event("side_room_invited", actor, target)

    def _keeper_for(self, facilitator: str) -> None:
        """Another facilitator stays with the group while this one steps out."""
        if not any(p.facilitator and pid != facilitator and not self.stepped_out(pid)
                   for pid, p in self.present.items()):
            raise ModerationError("no_cofacilitator", "a side room needs another facilitator "
                                  "to stay with the group")

    def _invitation(self, actor: str) -> SideRoom:
        self._person(actor)
        side = self.side_room_of(actor)
        if side is None or side.member != actor or side.status != "invited":
            raise ModerationError("no_invitation", "there is no side-room invitation for you")
        return side

    def accept_side_room(self, actor: str, now: float) -> Event:
        """The invited member goes: both sides step out of the group (out of the hand queue,
        the piece back to the facilitators if either held it)."""
        side = self._invitation(actor)
        self._keeper_for(side.facilitator)
        side.status = "open"
        for pid in side.sides():
            self.hands.pop(pid, None)
            self.asked.discard(pid)
            if self.holder == pid:
                self._set_holder(None, now)
        return Event("side_room_opened", side.facilitator, actor)

    def decline_side_room(self, actor: str) -> Event:
        side = self._invitation(actor)
        del self.side_rooms[side.number]
        return Event("side_room_declined", actor, side.facilitator)

    def return_from_side_room(self, actor: str) -> Event:
        """Either side ends the side room (both are back in the group); the facilitator may
        also withdraw an invitation not yet answered."""
        self._person(actor)
        side = self.side_room_of(actor)
        if side is None or (side.status == "invited" and actor != side.facilitator):
            raise ModerationError("no_side_room", "you are not in a side room")
        del self.side_rooms[side.number]
        if side.status == "invited":
            return Event("side_room_withdrawn", actor, side.member)
        return Event("side_room_returned", actor, side.member)
