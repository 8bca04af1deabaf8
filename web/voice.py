"""The signaling hub: the WebSocket endpoint that puts participants into voice rooms.

One connection per participant. The first message is ``join`` (a join token bound to one
room and, on first use, to one identity key); then ``offer`` once, answered by the SFU
(media.sfu), after which media flows without renegotiation. Wrapped sender keys (``keys``)
are relayed to their recipients unread: the server never holds a media key.

A connection that sends something malformed, oversized, out of order or too fast gets an
``error`` message and is closed; nothing it does reaches any other connection. See
docs/protocol.md for every message.

Network changes: a connection that is lost (no close frame: the heartbeat timed out, the
socket reset) is held for ``RESUME_GRACE_S`` before the others hear ``member_left``. Within
that time the same participant (same token, same identity card) may come back with
``join {resume_epoch: N}`` (N = the last epoch it saw, still the room's) and take its
place silently: same participant and sender id, same
epoch, no re-keying for anyone. Its media restarts on a new peer connection (the others only
see ``slots`` change). A membership change during the hold drops the held participant at
once (it could not take part in the key exchange), and so does its expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import logging
import time
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, WSMsgType, web

from groups import group_notes, meetings, presence, safety
from groups.errors import GroupError
from groups.meetings import Seat
from groups.moderation import Meeting, ModerationError
from media import signaling as sig
from media.e2ee import IdentityCard, KeyExchangeError
from media.sfu import Participant, RoomRegistry, SfuError
from media.turn import IceServers
from therapy import care_alerts, rooms, waiting_room
from therapy.accounts import AccountError, Role, ValidationError, get_user
from therapy.audit import Actor
from therapy.care_alerts import CareAlertError
from therapy.permissions import Denied
from therapy.storage import Store
from web.logs import log_event

log = logging.getLogger("haven.voice")

JOIN_TIMEOUT = 10.0
HEARTBEAT = 5.0  # seconds between WebSocket pings; a vanished peer is gone in ~1.5x this
RATE_WINDOW, RATE_MAX = 10.0, 200  # messages per window per connection
SEND_QUEUE = 256
RESUME_GRACE_S = 5.0  # a lost connection's place is kept this long for a `resume` join
FACILITATOR_GRACE_S = 120.0  # a group meeting without a facilitator ends after this long
ALERT_INTERVAL_S = 30.0  # one private alert per person per this long (the dialog says why)


def seat_token_id(token: str) -> str:
    """A join token's id, as stored (``therapy.rooms``: its sha256)."""
    return hashlib.sha256(token.encode()).hexdigest()


def participant_id_for(token_id: str) -> str:
    """Stable across reconnects with the same join token, meaningless elsewhere."""
    return "p-" + hashlib.sha256(("participant:" + token_id).encode()).hexdigest()[:12]


class Closing(Exception):
    """End this connection after telling the client why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    participant_id: str = ""
    sender_id: int = 0
    display_name: str = ""
    room_role: str = "member"
    identity: dict = field(default_factory=dict)
    token_id: str = ""
    room: HubRoom | None = None
    sfu: Participant | None = None
    offered: bool = False
    muted: bool = False
    self_muted: bool = False
    color: str | None = None
    seat: Seat | None = None  # in a group meeting: the membership behind the token
    leave_reason: str = "disconnected"
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(SEND_QUEUE))
    writer: asyncio.Task | None = None
    stamps: list[float] = field(default_factory=list)
    away: asyncio.TimerHandle | None = None  # lost, held for a resume until this fires

    def send(self, message: sig.Message) -> None:
        try:
            self.queue.put_nowait(message.to_json())
        except asyncio.QueueFull:
            # A client that does not read its messages is dropped, not waited for.
            self.leave_reason = "disconnected"
            asyncio.get_running_loop().create_task(self.ws.close(code=WSCloseCode.POLICY_VIOLATION))

    async def write_loop(self) -> None:
        while True:
            text = await self.queue.get()
            if text is None:
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    def member_info(self) -> sig.MemberInfo:
        muted = self.muted
        if self.room is not None and self.room.meeting is not None:
            muted = self.room.meeting.muted(self.participant_id)
        return sig.MemberInfo(self.participant_id, self.sender_id, self.display_name,
                              self.room_role, self.identity, muted, self.color,
                              self.self_muted)


@dataclass(eq=False)
class HubRoom:
    room_id: str
    members: dict[str, Connection] = field(default_factory=dict)
    sender_ids: dict[str, int] = field(default_factory=dict)
    next_sender_id: int = 1
    epoch: int = 0  # bumped on every membership change
    meeting: Meeting | None = None  # a group meeting's moderation state (groups.moderation)
    unattended: asyncio.TimerHandle | None = None  # no facilitator: the meeting ends then
    notes_state: str | None = None  # group notes: the last `notes_state` everyone was sent

    def sender_id_for(self, participant_id: str) -> int:
        if participant_id not in self.sender_ids:
            self.sender_ids[participant_id] = self.next_sender_id
            self.next_sender_id += 1
        return self.sender_ids[participant_id]

    def broadcast(self, message: sig.Message, *, exclude: Connection | None = None) -> None:
        for conn in list(self.members.values()):
            if conn is not exclude:
                conn.send(message)


class VoiceHub:
    def __init__(self, store: Store, sfu: RoomRegistry, allowed_origins: set[str], *,
                 ice_servers: IceServers | None = None,
                 facilitator_grace_s: float = FACILITATOR_GRACE_S, keyring=None):
        self.store = store
        self.keyring = keyring  # web.app.LiveKeyring: seals alerts sent from the room
        self.alert_times: dict[tuple, float] = {}  # who sent a private alert when
        self.facilitator_grace_s = facilitator_grace_s
        self.sfu = sfu
        self.allowed_origins = allowed_origins
        self.ice_servers = ice_servers or IceServers()
        self.rooms: dict[str, HubRoom] = {}
        self.sockets: set[web.WebSocketResponse] = set()
        self.lock = asyncio.Lock()  # joins and leaves change room membership one at a time

    # --- the endpoint -------------------------------------------------------------------

    def origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser (the Python client); the join token still applies
        own = f"{request.scheme}://{request.host}"
        return origin == own or origin in self.allowed_origins

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self.origin_allowed(request):
            raise web.HTTPForbidden(reason="cross-origin WebSocket refused")
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=4 * sig.MAX_MESSAGE_BYTES)
        await ws.prepare(request)
        self.sockets.add(ws)
        conn = Connection(ws)
        conn.writer = asyncio.get_running_loop().create_task(conn.write_loop())
        try:
            await self._serve(conn)
        except Closing as exc:
            conn.send(sig.Error(exc.code, exc.message, True))
        except Exception:
            log.exception("signaling connection failed")
            conn.leave_reason = "error"
            conn.send(sig.Error("internal_error", "the server could not handle that", True))
        finally:
            try:
                await self._leave(conn)
            except Exception:  # the rest of this cleanup must run all the same
                log.exception("signaling: leaving the room failed")
            await conn.queue.put(None)
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(conn.writer, 2)
            await ws.close(code=WSCloseCode.POLICY_VIOLATION if conn.leave_reason == "error"
                           else WSCloseCode.OK)
            self.sockets.discard(ws)
        return ws

    async def _next(self, conn: Connection, timeout: float | None = None) -> sig.Message | None:
        try:
            msg = await asyncio.wait_for(conn.ws.receive(), timeout)
        except TimeoutError:
            conn.leave_reason = "error"
            raise Closing("timeout", "send 'join' first, within 10 seconds") from None
        except ConnectionError:  # gone while we answered its ping: a plain disconnect
            conn.leave_reason = "disconnected"
            return None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING):
            conn.leave_reason = "left"  # the client closed the socket itself
            return None
        if msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR):
            conn.leave_reason = "disconnected"  # lost: heartbeat timeout, reset, EOF
            return None
        if msg.type != WSMsgType.TEXT:
            conn.leave_reason = "error"
            raise Closing("malformed", "messages must be JSON text")
        now = time.monotonic()
        conn.stamps = [t for t in conn.stamps if now - t < RATE_WINDOW]
        conn.stamps.append(now)
        if len(conn.stamps) > RATE_MAX:
            conn.leave_reason = "error"
            raise Closing("rate_limited", "too many messages")
        try:
            return sig.parse_client_message(msg.data)
        except sig.ProtocolError as exc:
            conn.leave_reason = "error"
            raise Closing(exc.code, exc.message) from None

    async def _serve(self, conn: Connection) -> None:
        first = await self._next(conn, JOIN_TIMEOUT)
        if first is None:
            return
        if not isinstance(first, sig.Join):
            conn.leave_reason = "error"
            raise Closing("out_of_order", "the first message must be 'join'")
        await self._join(conn, first)
        while True:
            message = await self._next(conn)
            if conn.room is None:
                return  # removed, replaced or the room ended: nothing more to do here
            if message is None:
                return  # closed (left) or lost (disconnected): _next said which
            if isinstance(message, sig.Leave):
                conn.leave_reason = "left"
                return
            await self._dispatch(conn, message)

    # --- membership ---------------------------------------------------------------------

    async def _join(self, conn: Connection, join: sig.Join) -> None:
        try:
            card = IdentityCard.from_dict(join.identity)
        except (KeyExchangeError, ValueError, TypeError, KeyError):
            conn.leave_reason = "error"
            raise Closing("invalid_identity", "the identity card does not verify") from None
        fingerprint = hashlib.sha256(card.fingerprint).hexdigest()
        # The name comes from the token (account or pseudonym); a free one only in an
        # instant room, never a host's (therapy.rooms.participant_name), checked first.
        present = self.rooms.get(join.room_id)
        hosts = [(c.token_id, c.display_name) for c in (present.members.values() if present
                                                        else ()) if c.room_role == "host"]
        # A group meeting's seat is checked before the token is redeemed, so a refusal (a
        # ban, a lock) does not use the link up.
        seat = await self.store.read(meetings.seat_for_token, seat_token_id(join.token))
        if seat is not None and seat.room_id != join.room_id:
            seat = None  # redeem refuses it below
        locked = bool(seat is not None and (await self.store.read(
            meetings.meeting_for_room, join.room_id) or {}).get("locked"))
        if seat is not None:
            self._check_seat(join.room_id, participant_id_for(seat_token_id(join.token)),
                             seat, locked, conn)
        try:
            name = await self.store.read(rooms.participant_name, join.token, join.room_id,
                                         join.display_name, hosts)
            grant = await self.store.write(rooms.redeem, join.token, join.room_id, fingerprint)
        except rooms.RoomError as exc:
            conn.leave_reason = "error"
            raise Closing(exc.code, exc.message) from None

        async with self.lock:
            room = self.rooms.setdefault(grant.room_id, HubRoom(grant.room_id))
            pid = participant_id_for(grant.token_id)
            if seat is not None:
                if room.meeting is None:
                    room.meeting = Meeting(locked=locked)
                try:  # again: the meeting may have changed while the token was redeemed
                    room.meeting.admit(pid, seat.member_id, seat.group_role)
                except ModerationError as exc:
                    if not room.members:
                        self.rooms.pop(room.room_id, None)
                    conn.leave_reason = "error"
                    raise Closing(exc.code, exc.message) from None
            old = room.members.get(pid)
            resumed = (join.resume_epoch is not None and old is not None
                       and join.resume_epoch == room.epoch and old.identity == card.to_dict())
            if resumed:
                await self._hand_over(old)
            else:
                await self._drop_held(room, keep=None)
                room = self.rooms.setdefault(grant.room_id, room)  # it may have emptied
                old = room.members.get(pid)
            if old is not None and not resumed:
                # The same person reconnecting (a reload, a network blip): the new one wins.
                old.leave_reason = "replaced"
                old.send(sig.Ended("replaced"))
                await self._drop(old, "replaced")
            if old is not None:
                conn.muted = old.muted  # a host's mute survives a reconnect
            if seat is not None:
                # The same membership on another link (a second tab, a fresh link): one seat.
                for other in [c for c in room.members.values() if c.seat is not None
                              and c.seat.member_id == seat.member_id and c is not old]:
                    other.leave_reason = "replaced"
                    other.send(sig.Ended("replaced"))
                    await self._drop(other, "replaced")
            conn.seat = seat
            conn.participant_id = pid
            conn.token_id = grant.token_id
            conn.sender_id = room.sender_id_for(pid)
            conn.display_name = name or grant.display_name
            conn.room_role = grant.room_role
            conn.identity = card.to_dict()
            conn.color = join.color
            conn.room = room
            try:
                conn.sfu = await self.sfu.room(room.room_id).join(
                    pid, on_slots=lambda _p, slot_map, c=conn: self._send_slots(c, slot_map)
                )
            except SfuError as exc:
                conn.room = None
                conn.leave_reason = "error"
                raise Closing("room_full" if "full" in str(exc).lower() else "cannot_join",
                              str(exc) or "cannot join this room") from None
            others = [c.member_info() for c in room.members.values() if c.participant_id != pid]
            room.members[pid] = conn
            if room.meeting is not None:
                room.meeting.join(pid, seat.member_id, seat.group_role)
                await self._present(room, seat)
            self._apply_forwarding(room)
            if not resumed:
                room.epoch += 1
            conn.send(sig.Joined(room.room_id, pid, conn.sender_id, conn.room_role,
                                 conn.display_name, tuple(others), room.epoch,
                                 self.ice_servers.for_participant(pid), resumed))
            if not resumed:
                room.broadcast(sig.MemberJoined(conn.member_info(), room.epoch), exclude=conn)
            if room.meeting is not None:
                self._moderation_changed(room, sig.ModerationEvent("joined", pid, pid))
                await self._safety_on_join(conn, room, seat)
        log_event(log, "voice.resume" if resumed else "voice.join", room=room.room_id,
                  participant=pid, members=len(room.members))

    def _check_seat(self, room_id: str, pid: str, seat: Seat, locked: bool,
                    conn: Connection) -> None:
        """Refuse a group seat that may not come in: a banned or removed membership, a
        meeting ban, a locked meeting (someone new)."""
        if seat.member_status != "active":
            conn.leave_reason = "error"
            if seat.member_status == "banned":
                raise Closing("banned", "a facilitator has removed you from this group")
            raise Closing("not_member", "you are not in this group")
        room = self.rooms.get(room_id)
        meeting = room.meeting if room is not None and room.meeting is not None else (
            Meeting(locked=locked))
        try:
            meeting.admit(pid, seat.member_id, seat.group_role)
        except ModerationError as exc:
            conn.leave_reason = "error"
            raise Closing(exc.code, exc.message) from None

    def _send_slots(self, conn: Connection, slot_map: dict) -> None:
        conn.send(sig.Slots(tuple(
            sig.SlotInfo(s["slot"], s["mid"], s["participant_id"]) for s in slot_map["slots"]
        )))

    async def _hand_over(self, old: Connection) -> None:
        """A `resume` join takes ``old``'s place: no member_left, no new epoch (the caller
        holds the lock). ``old`` may be held after a loss, or still look alive."""
        room = old.room
        if old.away is not None:
            old.away.cancel()
            old.away = None
        del room.members[old.participant_id]
        old.room = None
        old.leave_reason = "replaced"
        old.send(sig.Ended("replaced"))
        sfu_room = self.sfu.get(room.room_id)
        if sfu_room is not None:
            with contextlib.suppress(Exception):
                await sfu_room.remove(old.participant_id)
        asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(
            old.ws.close(code=WSCloseCode.OK)))

    def _hold(self, conn: Connection) -> None:
        """A lost connection: stop its media now, keep its place for a resume join."""
        room = conn.room
        loop = asyncio.get_running_loop()
        sfu_room = self.sfu.get(room.room_id)
        if sfu_room is not None:
            loop.create_task(sfu_room.remove(conn.participant_id))
        conn.away = loop.call_later(RESUME_GRACE_S, lambda: loop.create_task(self._expire(conn)))

    async def _expire(self, conn: Connection) -> None:
        async with self.lock:
            conn.away = None
            await self._drop(conn, "disconnected")

    async def _drop_held(self, room: HubRoom, keep: Connection | None) -> None:
        """Membership is about to change: participants held after a loss cannot take part
        in the key exchange, so they leave now (the caller holds the lock). One at a time,
        looked up afresh: each drop ends the other holds itself (it changes membership)."""
        while True:
            held = next((c for c in room.members.values()
                         if c.away is not None and c is not keep), None)
            if held is None:
                return
            held.away.cancel()
            held.away = None
            await self._drop(held, "disconnected")

    async def _drop(self, conn: Connection, reason: str) -> None:
        """Take a connection out of its room (the caller holds the lock)."""
        room = conn.room
        if room is None or room.members.get(conn.participant_id) is not conn:
            return
        if conn.away is not None:
            conn.away.cancel()
            conn.away = None
        del room.members[conn.participant_id]
        conn.room = None
        await self._drop_held(room, keep=None)
        with contextlib.suppress(Exception):
            await self.sfu.room(room.room_id).remove(conn.participant_id)
        room.epoch += 1
        room.broadcast(sig.MemberLeft(conn.participant_id, reason, room.epoch))
        # (their last connection: no longer present in the meeting, for group notes' consent)
        gone = conn.seat if conn.seat is not None and not any(
            c.seat is not None and c.seat.member_id == conn.seat.member_id
            for c in room.members.values()) else None
        if room.meeting is not None and room.members:
            side_rooms = dict(room.meeting.side_rooms)
            room.meeting.leave(conn.participant_id, time.monotonic())
            self._apply_forwarding(room)
            self._side_rooms_ended(room, side_rooms, conn.participant_id)
            self._moderation_changed(room, sig.ModerationEvent(
                "left", conn.participant_id, conn.participant_id))
        if not room.members:
            if room.unattended is not None:
                room.unattended.cancel()
            self.rooms.pop(room.room_id, None)
        log_event(log, "voice.leave", room=room.room_id, participant=conn.participant_id,
                  reason=reason)
        # The awaits last: everything above must hold even if this leave is cancelled here.
        if gone is not None:
            await self._absent(gone, conn.participant_id, room)
        if not room.members:
            with contextlib.suppress(Exception):
                await self.sfu.close_room(room.room_id)

    async def _present(self, room: HubRoom, seat: Seat) -> None:
        """Record a member as present in the meeting (group notes need everyone present to
        consent); if that pauses an open note, the facilitators are told at once."""
        notes = await self.store.write(
            lambda db: presence.joined(db, seat.meeting_id, seat.member_id))
        if notes.get("state") != "paused":
            return
        notice = sig.Notice("notes_paused", "Notes paused: not everyone present has consented "
                            "to group notes.")
        for c in room.members.values():
            if c.seat is not None and c.seat.facilitator:
                c.send(notice)

    async def _absent(self, seat: Seat, participant_id: str, room: HubRoom | None = None) -> None:
        """Record that a member left the meeting (then refresh the room's notes indicator).
        Last in a drop, and shielded: a leave runs while the connection's handler may be
        cancelled (the client went), and the record must be written all the same (the write
        itself runs on the store's thread)."""
        async def record() -> None:
            await self.store.write(lambda db: presence.left(db, seat.meeting_id, seat.member_id))
            if room is not None and room.members:
                await self._notes_refresh(room, seat.meeting_id)

        try:
            await asyncio.shield(record())
        except Exception:  # (a cancel is a BaseException and goes on up)
            log.exception("presence: could not record %s leaving meeting %s", participant_id,
                          seat.meeting_id)

    async def _leave(self, conn: Connection) -> None:
        if conn.room is None:
            return
        async with self.lock:
            if conn.room is None:
                return
            if conn.leave_reason == "disconnected" and conn.offered:
                self._hold(conn)
                return
            await self._drop(conn, conn.leave_reason if conn.leave_reason != "error"
                             else "disconnected")

    # --- messages after join ------------------------------------------------------------

    async def _dispatch(self, conn: Connection, message: sig.Message) -> None:
        room = conn.room
        if isinstance(message, sig.Offer):
            if conn.offered:
                conn.leave_reason = "error"
                raise Closing("out_of_order", "'offer' may be sent only once per connection")
            conn.offered = True
            try:
                answer = await conn.sfu.answer(message.sdp)
            except SfuError as exc:
                conn.leave_reason = "error"
                raise Closing("negotiation_failed", str(exc)[:200]) from None
            conn.send(sig.Answer(answer))
        elif isinstance(message, sig.Keys):
            for delivery in message.keys:
                target = room.members.get(delivery.to)
                if target is not None and target is not conn and self._same_space(
                        room, conn.participant_id, target.participant_id):
                    target.send(sig.KeyFrom(conn.participant_id, delivery.blob))
        elif isinstance(message, sig.CodeCommit):
            room.broadcast(sig.CodeCommitFrom(conn.participant_id, message.epoch,
                                              message.commitment), exclude=conn)
        elif isinstance(message, sig.CodeReveal):
            room.broadcast(sig.CodeRevealFrom(conn.participant_id, message.epoch,
                                              message.contribution), exclude=conn)
        elif isinstance(message, sig.Ping):
            conn.send(sig.Pong())
        elif isinstance(message, sig.Join):
            conn.leave_reason = "error"
            raise Closing("out_of_order", "already joined")
        elif isinstance(message, sig.SelfMute):
            await self._self_mute(conn, room, message.muted)
        elif isinstance(message, sig.SAFETY_CLIENT_MESSAGES):
            await self._safety(conn, room, message)
        elif room.meeting is not None and isinstance(
                message, sig.MODERATION_MESSAGES + (sig.Mute, sig.Remove)):
            await self._moderate(conn, room, message)
        elif room.meeting is not None and isinstance(message, sig.SIDE_ROOM_MESSAGES):
            await self._side_room(conn, room, message)
        elif isinstance(message, sig.MODERATION_MESSAGES + sig.SIDE_ROOM_MESSAGES):
            conn.send(sig.Error("not_group_meeting", "this is not a group meeting", False))
        elif isinstance(message, sig.Remove | sig.Mute | sig.EndRoom):
            if conn.room_role != "host":
                conn.send(sig.Error("forbidden", "only the host can do that", False))
                return
            await self._host_action(conn, room, message)

    async def _host_action(self, conn: Connection, room: HubRoom, message: sig.Message) -> None:
        actor = Actor(None, "host:" + conn.participant_id)
        if isinstance(message, sig.Mute):
            target = room.members.get(message.participant_id)
            if target is None:
                conn.send(sig.Error("not_found", "no such participant", False))
                return
            target.muted = message.muted
            self._apply_forwarding(room)
            room.broadcast(sig.Muted(target.participant_id, message.muted))
        elif isinstance(message, sig.Remove):
            target = room.members.get(message.participant_id)
            if target is None or target is conn:
                conn.send(sig.Error("not_found", "no such participant", False))
                return
            await self.store.write(lambda db: rooms.revoke(db, target.token_id, actor=actor))
            async with self.lock:
                target.leave_reason = "removed"
                target.send(sig.Ended("removed"))
                await self._drop(target, "removed")
            await target.queue.put(None)
            asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(
                target.ws.close(code=WSCloseCode.OK)))
        elif isinstance(message, sig.EndRoom):
            await self.end_room(room.room_id, actor)

    # --- safety in the room: private alerts, concerns, the notes indicator ---------------

    async def _safety(self, conn: Connection, room: HubRoom, message: sig.Message) -> None:
        """A private alert (`help_alert`) or a facilitator's concern (`concern_flag`): sealed
        and stored (groups.safety, or therapy.care_alerts in a 1:1 session) and audited as the
        HTTP path is, then sent to the facilitators present (the therapist) and nobody else.
        A refusal is a non-fatal error to the sender alone."""
        text = ((message.message if isinstance(message, sig.HelpAlert) else message.note)
                or "").replace("\r\n", "\n").strip()
        if len(text) > sig.ALERT_MESSAGE_MAX:
            conn.send(sig.Error("message_too_long", "the message is at most "
                                f"{sig.ALERT_MESSAGE_MAX} characters", False))
            return
        if self.keyring is None:
            conn.send(sig.Error("alerts_unavailable", "this server cannot store alerts", False))
            return
        try:
            if isinstance(message, sig.ConcernFlag):
                await self._concern(conn, room, message.participant_id, text)
            else:
                await self._help_alert(conn, room, text)
        except (GroupError, Denied, CareAlertError, AccountError) as exc:
            conn.send(sig.Error(exc.code, exc.message, False))
        except ValidationError as exc:
            conn.send(sig.Error("invalid_message", exc.message, False))

    def _facilitators_here(self, room: HubRoom) -> list[Connection]:
        return [c for c in room.members.values()
                if c.seat is not None and c.seat.facilitator and c.away is None]

    async def _help_alert(self, conn: Connection, room: HubRoom, text: str) -> None:
        now = time.monotonic()
        self.alert_times = {k: t for k, t in self.alert_times.items()
                            if now - t < ALERT_INTERVAL_S}
        who = ("member", conn.seat.member_id) if conn.seat is not None else ("token", conn.token_id)
        if who in self.alert_times:
            wait = int(ALERT_INTERVAL_S - (now - self.alert_times[who])) + 1
            conn.send(sig.Error("alert_too_soon", "your message was already sent; you can send "
                                f"another in {wait} seconds", False))
            return
        ring = self.keyring.current()
        seat = conn.seat
        if seat is not None:
            actor = Actor(seat.user_id, "room:" + conn.participant_id)
            alert = await self.store.write(lambda db: safety.send_alert(
                db, ring, get_user(db, seat.user_id), seat.group_id, text, actor=actor))
            told = self._facilitators_here(room)
            note = sig.SafetyAlert(alert["id"], "alert", seat.pseudonym, alert["created_at"],
                                   conn.participant_id, text or None, seat.group_id)
            if told:
                await self.store.write(lambda db: safety.record_delivery(
                    db, seat.group_id, alert["id"], [c.seat.member_id for c in told],
                    actor=actor))
            ack = ("Sent. The facilitators have been told, privately: nobody else in the "
                   "group sees it. A facilitator will check in with you as soon as they can."
                   if told else "Sent. No facilitator is in the room right now; they will "
                   "see it on the group's safety page. If you are in danger, call a crisis "
                   "line or your emergency number now.")
        else:
            patient = await self.store.read(lambda db: care_alerts.token_user(
                db, conn.token_id))
            if patient is None or patient.role != Role.PATIENT:
                conn.send(sig.Error("not_in_meeting", "there is no facilitator or therapist "
                                    "to tell here; the crisis lines are in this dialog", False))
                return
            actor = Actor(patient.id, "room:" + conn.participant_id)
            alert = await self.store.write(lambda db: care_alerts.send(
                db, ring, patient, text, actor=actor))
            others = [c for c in room.members.values() if c is not conn and c.away is None]
            ids = await self.store.read(lambda db: care_alerts.therapist_tokens(
                db, patient.id, [c.token_id for c in others]))
            told = [c for c in others if c.token_id in ids]
            note = sig.SafetyAlert(alert["id"], "alert", conn.display_name,
                                   alert["created_at"], conn.participant_id, text or None)
            if told:
                await self.store.write(lambda db: care_alerts.record_delivery(
                    db, alert["id"], patient.id, sorted({ids[c.token_id] for c in told}),
                    actor=actor))
            ack = ("Sent. Your therapist has been told, privately. They will check in with you."
                   if told else "Sent. Your therapist will see it in Haven. If you are in "
                   "danger, call a crisis line or your emergency number now.")
        self.alert_times[who] = now
        for c in told:
            c.send(note)
        conn.send(sig.HelpAlertSent(
            alert["id"], alert["created_at"],
            ("facilitators" if seat is not None else "therapist") if told else "later", ack))
        log_event(log, "voice.safety_alert", room=room.room_id, told=len(told))

    async def _concern(self, conn: Connection, room: HubRoom, target_pid: str,
                       text: str) -> None:
        target = room.members.get(target_pid)
        seat = conn.seat
        if seat is None or not seat.facilitator:
            conn.send(sig.Error("forbidden", "only a facilitator can flag a concern", False))
            return
        if target is None or target.seat is None or target is conn:
            conn.send(sig.Error("not_found", "no such participant", False))
            return
        ring = self.keyring.current()
        actor = self._actor(conn)
        alert = await self.store.write(lambda db: safety.flag_concern(
            db, ring, get_user(db, seat.user_id), seat.group_id, target.seat.member_id, text,
            actor=actor))
        told = self._facilitators_here(room)
        await self.store.write(lambda db: safety.record_delivery(
            db, seat.group_id, alert["id"], [c.seat.member_id for c in told], actor=actor))
        note = sig.SafetyAlert(alert["id"], "concern", target.seat.pseudonym,
                               alert["created_at"], target.participant_id, text or None,
                               seat.group_id, seat.pseudonym)
        for c in told:
            c.send(note)

    async def _safety_on_join(self, conn: Connection, room: HubRoom, seat: Seat) -> None:
        """After `joined`: the notes state (to everyone if it changed, else to the joiner),
        and to a facilitator the meeting's open alerts (no text: the safety page has it)."""
        await self._notes_refresh(room, seat.meeting_id, joiner=conn)
        if not seat.facilitator:
            return
        try:
            alerts = await self.store.read(lambda db: safety.open_alerts_for_meeting(
                db, seat.meeting_id))
        except Exception:  # the join itself must not fail over this
            log.exception("open alerts of meeting %s", seat.meeting_id)
            return
        here = {c.seat.member_id: c.participant_id for c in room.members.values()
                if c.seat is not None}
        for a in alerts:
            conn.send(sig.SafetyAlert(a["id"], a["kind"], a["pseudonym"], a["created_at"],
                                      here.get(a["member_id"]), None, seat.group_id,
                                      a["raised_by"], live=False))

    async def _notes_refresh(self, room: HubRoom, meeting_id: int,
                             joiner: Connection | None = None) -> None:
        """Tell everyone in the room the notes state when it changed (only the state)."""
        try:
            state = (await self.store.read(lambda db: group_notes.state(db, meeting_id)))["state"]
        except Exception:
            log.exception("notes state of meeting %s", meeting_id)
            return
        if state != room.notes_state:
            room.notes_state = state
            room.broadcast(sig.NotesState(state))
        elif joiner is not None:
            joiner.send(sig.NotesState(state))

    async def notes_changed(self, group_id: int) -> None:
        """A group's notes or consents changed (the notes API): refresh its rooms'
        indicators."""
        for room in list(self.rooms.values()):
            meeting_ids = {c.seat.meeting_id for c in room.members.values()
                           if c.seat is not None and c.seat.group_id == group_id}
            for mid in meeting_ids:
                await self._notes_refresh(room, mid)

    # --- forwarding and moderation ------------------------------------------------------

    def _apply_forwarding(self, room: HubRoom) -> None:
        """Make the SFU forward exactly who may be heard now (the one place that decides)."""
        sfu_room = self.sfu.get(room.room_id)
        if sfu_room is None:
            return
        for pid, c in room.members.items():
            if sfu_room.participant(pid) is None:
                continue
            if room.meeting is not None:
                on = room.meeting.forwarded(pid)
                sfu_room.set_space(pid, room.meeting.space_of(pid))  # (side rooms)
            else:
                on = not c.muted and not c.self_muted
            sfu_room.set_forwarding(pid, on)

    @staticmethod
    def _same_space(room: HubRoom, a: str, b: str) -> bool:
        """Whether two participants may exchange keys: not across a side room's walls."""
        return room.meeting is None or room.meeting.space_of(a) == room.meeting.space_of(b)

    # --- side rooms (issue 13): a facilitator and one member, apart from the group ---------

    async def _side_room(self, conn: Connection, room: HubRoom, message: sig.Message) -> None:
        """Invite, accept, decline, return: tried on a copy of the meeting, then the SFU's
        spaces set (before anyone hears of it, so keys sent on the news stay inside), then
        the two sides told, and the group shown who stepped out or came back."""
        async with self.lock:
            trial = copy.deepcopy(room.meeting)
            me = conn.participant_id
            before = dict(room.meeting.side_rooms)
            try:
                if isinstance(message, sig.SideRoomInvite):
                    event = trial.invite_to_side_room(me, message.participant_id)
                elif isinstance(message, sig.SideRoomAccept):
                    event = trial.accept_side_room(me, time.monotonic())
                elif isinstance(message, sig.SideRoomDecline):
                    event = trial.decline_side_room(me)
                else:
                    event = trial.return_from_side_room(me)
            except ModerationError as exc:
                conn.send(sig.Error(exc.code, exc.message, False))
                return
            room.meeting = trial
            side = trial.side_room_of(me) or next(
                s for n, s in before.items() if n not in trial.side_rooms)
            self._apply_forwarding(room)
            status = event.kind.removeprefix("side_room_")
            self._tell_sides(room, side, status, me)
            log_event(log, "voice.side_room", room=room.room_id, status=status)
            if status in ("opened", "returned"):
                self._moderation_changed(room, sig.ModerationEvent(
                    event.kind, event.by, event.participant_id))

    def _tell_sides(self, room: HubRoom, side, status: str, by: str) -> None:
        names = {pid: c.display_name for pid, c in room.members.items()}
        message = sig.SideRoom(status, side.facilitator, side.member, by,
                               names.get(side.facilitator, ""), names.get(side.member, ""))
        for pid in side.sides():
            if pid in room.members:
                room.members[pid].send(message)

    def _side_rooms_ended(self, room: HubRoom, before: dict, by: str) -> None:
        """After someone left (or was taken out): side rooms that ended tell the side still
        here it is back in the group; if no facilitator is left with the group, the
        facilitators in side rooms are told (the side rooms go on: theirs to end)."""
        meeting = room.meeting
        if meeting is None:
            return
        for n, side in before.items():
            if n not in meeting.side_rooms:
                self._tell_sides(room, side, "returned" if side.status == "open"
                                 else "withdrawn", by)
        away = [s.facilitator for s in meeting.side_rooms.values() if s.status == "open"]
        if away and not any(p.facilitator and not meeting.stepped_out(pid)
                            for pid, p in meeting.present.items()):
            notice = sig.Notice("group_unattended", "No facilitator is with the group just "
                                "now. Return to the group when you can.")
            for pid in away:
                if pid in room.members:
                    room.members[pid].send(notice)

    def _moderation_changed(self, room: HubRoom, event: sig.ModerationEvent | None) -> None:
        room.broadcast(sig.Moderation(room.meeting.snapshot(time.monotonic()), event))
        self._watch_facilitators(room)

    async def _self_mute(self, conn: Connection, room: HubRoom, muted: bool) -> None:
        if room.meeting is not None:
            try:
                room.meeting.self_mute(conn.participant_id, muted)
            except ModerationError as exc:
                conn.send(sig.Error(exc.code, exc.message, False))
                return
        conn.self_muted = muted
        self._apply_forwarding(room)
        room.broadcast(sig.SelfMuted(conn.participant_id, muted))
        if room.meeting is not None:
            self._moderation_changed(room, sig.ModerationEvent(
                "self_muted" if muted else "self_unmuted", conn.participant_id,
                conn.participant_id))

    async def _moderate(self, conn: Connection, room: HubRoom, message: sig.Message) -> None:
        """A moderation message in a group meeting: tried on a copy of the state, its records
        written, and only then made the room's state; a refusal changes nothing."""
        async with self.lock:
            trial = copy.deepcopy(room.meeting)
            side_rooms = dict(room.meeting.side_rooms)
            now = time.monotonic()
            me = conn.participant_id
            target_pid = getattr(message, "participant_id", None)
            out: tuple[Connection, str] | None = None  # (who leaves, how)
            try:
                if isinstance(message, sig.Hand):
                    event = trial.raise_hand(me) if message.raised else trial.lower_own_hand(me)
                elif isinstance(message, sig.HandLower):
                    event = trial.lower_hand(me, target_pid)
                elif isinstance(message, sig.HandsLowerAll):
                    event = trial.lower_all(me)
                elif isinstance(message, sig.HandFront):
                    event = trial.move_to_front(me, target_pid)
                elif isinstance(message, sig.Piece):
                    event = trial.set_piece(me, message.on, message.share_seconds, now)
                elif isinstance(message, sig.PiecePass):
                    event = trial.pass_piece(me, target_pid, now)
                elif isinstance(message, sig.PieceReturn):
                    event = trial.return_piece(me, now)
                elif isinstance(message, sig.Mute):
                    event = (trial.mute(me, target_pid) if message.muted
                             else trial.allow(me, target_pid))
                elif isinstance(message, sig.MuteAll):
                    event = trial.mute_all(me)
                elif isinstance(message, sig.Allow):
                    event = trial.allow(me, target_pid)
                elif isinstance(message, sig.AskToSpeak):
                    event = trial.ask_to_speak(me)
                elif isinstance(message, sig.Pause):
                    event = trial.set_pause(me, message.paused)
                elif isinstance(message, sig.Lock):
                    event = trial.set_lock(me, message.locked)
                    actor = self._actor(conn)
                    await self.store.write(lambda db: meetings.set_locked(
                        db, conn.seat, message.locked, actor=actor))
                elif isinstance(message, sig.Remove | sig.SendToLobby | sig.Ban):
                    target = room.members.get(target_pid)
                    if isinstance(message, sig.Remove):
                        event, how = trial.remove(me, target_pid, now), "remove"
                    elif isinstance(message, sig.SendToLobby):
                        event, how = trial.send_to_lobby(me, target_pid, now), "lobby"
                    else:
                        event = trial.ban(me, target_pid, message.scope, now)
                        how = "ban_" + message.scope
                    actor = self._actor(conn)
                    await self.store.write(lambda db: meetings.take_out(
                        db, target.seat, conn.seat, how, actor=actor))
                    out = (target, how)
                else:  # pragma: no cover - every moderation message is handled above
                    raise ModerationError("unknown_type", "not a moderation message")
            except ModerationError as exc:
                conn.send(sig.Error(exc.code, exc.message, False))
                return
            except GroupError as exc:
                conn.send(sig.Error(exc.code, exc.message, False))
                return
            room.meeting = trial
            if out is not None:
                target, how = out
                reason = {"remove": "removed", "lobby": "sent_to_lobby"}.get(how, "banned")
                target.leave_reason = "removed"
                target.send(sig.Ended(reason))
                await self._drop(target, "removed")
                self._side_rooms_ended(room, side_rooms, me)
                log_event(log, "voice.moderation", room=room.room_id, action=how,
                          participant=target.participant_id)
            else:
                self._apply_forwarding(room)
                self._moderation_changed(room, sig.ModerationEvent(
                    event.kind, event.by, event.participant_id))
                return
        await target.queue.put(None)  # _drop broadcast the new state
        asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(
            target.ws.close(code=WSCloseCode.OK)))

    @staticmethod
    def _actor(conn: Connection) -> Actor:
        return Actor(conn.seat.user_id if conn.seat else None, "facilitator:" + conn.participant_id)

    def _watch_facilitators(self, room: HubRoom) -> None:
        """No facilitator present: tell everyone, and end the meeting gently after the grace
        time unless one comes back (a co-facilitator present keeps it going)."""
        meeting = room.meeting
        if meeting is None or not room.members:
            return
        if meeting.facilitators_present():
            if room.unattended is not None:
                room.unattended.cancel()
                room.unattended = None
                room.broadcast(sig.Notice("facilitator_back", "A facilitator is back."))
            return
        if room.unattended is not None:
            return
        loop = asyncio.get_running_loop()
        grace = self.facilitator_grace_s
        room.unattended = loop.call_later(grace, lambda: loop.create_task(self._unattended(room)))
        minutes = max(1, round(grace / 60))
        room.broadcast(sig.Notice(
            "no_facilitator", "No facilitator is here right now. If none joins within "
            f"{minutes} minute{'s' if minutes != 1 else ''}, the meeting will end gently.",
            grace))

    async def _unattended(self, room: HubRoom) -> None:
        room.unattended = None
        if room.meeting is None or room.meeting.facilitators_present():
            return
        if self.rooms.get(room.room_id) is not room:
            return
        await self.store.write(lambda db: meetings.end_unattended(
            db, room.room_id, actor=Actor.system()))
        await self.disconnect_room(room.room_id, reason="no_facilitator")

    async def end_room(self, room_id: str, actor: Actor) -> None:
        """Close the room for everyone: in the records, then on every live connection."""
        await self.store.write(lambda db: waiting_room.close_room(db, room_id, actor=actor))
        await self.disconnect_room(room_id)

    async def disconnect_room(self, room_id: str, reason: str = "room_closed") -> None:
        """Tell everyone connected to a room that was closed elsewhere (the practice's
        'end session') that it is over, and drop them all at once (no member_left storm)."""
        async with self.lock:
            room = self.rooms.pop(room_id, None)
            if room is None:
                return
            members = list(room.members.values())
            room.members.clear()
            for meeting_id in {m.seat.meeting_id for m in members if m.seat is not None}:
                try:
                    await self.store.write(lambda db, mid=meeting_id: presence.cleared(db, mid))
                except Exception:
                    log.exception("presence: could not clear meeting %s", meeting_id)
            if room.unattended is not None:
                room.unattended.cancel()
            for member in members:
                member.room = None
                member.leave_reason = "room_closed"
                member.send(sig.Ended(reason))
                await member.queue.put(None)
                asyncio.get_running_loop().call_later(0.5, lambda m=member: asyncio.ensure_future(
                    m.ws.close(code=WSCloseCode.OK)))
            with contextlib.suppress(Exception):
                await self.sfu.close_room(room_id)
        log_event(log, "voice.room_closed", room=room_id, members=len(members))

    async def close(self) -> None:
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        await self.sfu.close()
