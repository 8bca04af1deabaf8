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
import hashlib
import logging
import time
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, WSMsgType, web

from media import signaling as sig
from media.e2ee import IdentityCard, KeyExchangeError
from media.sfu import Participant, RoomRegistry, SfuError
from media.turn import IceServers
from therapy import rooms, waiting_room
from therapy.audit import Actor
from therapy.storage import Store
from web.logs import log_event

log = logging.getLogger("haven.voice")

JOIN_TIMEOUT = 10.0
HEARTBEAT = 5.0  # seconds between WebSocket pings; a vanished peer is gone in ~1.5x this
RATE_WINDOW, RATE_MAX = 10.0, 200  # messages per window per connection
SEND_QUEUE = 256
RESUME_GRACE_S = 5.0  # a lost connection's place is kept this long for a `resume` join


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
    color: str | None = None
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
        return sig.MemberInfo(self.participant_id, self.sender_id, self.display_name,
                              self.room_role, self.identity, self.muted, self.color)


@dataclass(eq=False)
class HubRoom:
    room_id: str
    members: dict[str, Connection] = field(default_factory=dict)
    sender_ids: dict[str, int] = field(default_factory=dict)
    next_sender_id: int = 1
    epoch: int = 0  # bumped on every membership change

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
                 ice_servers: IceServers | None = None):
        self.store = store
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
            await self._leave(conn)
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
            if conn.muted:
                self.sfu.room(room.room_id).set_forwarding(pid, False)
            others = [c.member_info() for c in room.members.values() if c.participant_id != pid]
            room.members[pid] = conn
            if not resumed:
                room.epoch += 1
            conn.send(sig.Joined(room.room_id, pid, conn.sender_id, conn.room_role,
                                 conn.display_name, tuple(others), room.epoch,
                                 self.ice_servers.for_participant(pid), resumed))
            if not resumed:
                room.broadcast(sig.MemberJoined(conn.member_info(), room.epoch), exclude=conn)
        log_event(log, "voice.resume" if resumed else "voice.join", room=room.room_id,
                  participant=pid, members=len(room.members))

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
        in the key exchange, so they leave now (the caller holds the lock)."""
        for held in [c for c in room.members.values() if c.away is not None and c is not keep]:
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
        if not room.members:
            self.rooms.pop(room.room_id, None)
            with contextlib.suppress(Exception):
                await self.sfu.close_room(room.room_id)
        log_event(log, "voice.leave", room=room.room_id, participant=conn.participant_id,
                  reason=reason)

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
                if target is not None and target is not conn:
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
            sfu_room = self.sfu.get(room.room_id)
            if sfu_room is not None and sfu_room.participant(target.participant_id) is not None:
                sfu_room.set_forwarding(target.participant_id, not message.muted)
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

    async def end_room(self, room_id: str, actor: Actor) -> None:
        """Close the room for everyone: in the records, then on every live connection."""
        await self.store.write(lambda db: waiting_room.close_room(db, room_id, actor=actor))
        await self.disconnect_room(room_id)

    async def disconnect_room(self, room_id: str) -> None:
        """Tell everyone connected to a room that was closed elsewhere (the practice's
        'end session') that it is over, and drop them all at once (no member_left storm)."""
        async with self.lock:
            room = self.rooms.pop(room_id, None)
            if room is None:
                return
            members = list(room.members.values())
            room.members.clear()
            for member in members:
                member.room = None
                member.leave_reason = "room_closed"
                member.send(sig.Ended("room_closed"))
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
