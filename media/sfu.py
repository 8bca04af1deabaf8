"""Haven's selective forwarding unit: rooms, participants, slots, RTP forwarding.

Every participant has one aiortc ``RTCPeerConnection``. The server never decodes
audio: payloads are SFrame ciphertext and are forwarded as opaque bytes at the RTP
level (see ``media.rtp_forward``), right after SRTP unprotect, without aiortc's
jitter buffer, decoder, queues or per-stream tasks.

Negotiation (no renegotiation, ever)
------------------------------------
The **client offers**, once, an audio-only, BUNDLEd, rtcp-mux session:

    m-line 0        upstream: ``sendonly`` (or ``sendrecv``) to publish;
                    ``recvonly``/``inactive`` for a listen-only connection
    m-lines 1..K    downstream slots: ``recvonly``, K <= 15 (room of 16)

The server answers: m-line 0 ``recvonly``, slots ``sendonly`` with one SSRC each.
Only Opus 48000/2 is negotiated (RED, CN, telephone-event, PCMU... are dropped), with
``useinbandfec=1`` (Opus in-band FEC, so a sender adds redundancy its receivers use to
recover single losses; the SFU forwards it untouched inside the SFrame ciphertext);
no video, no data channel (an offer with other m-lines is rejected). Joins and
leaves never touch SDP: the room tells each client which participant occupies
which of its downstream slots, through the slot map below, delivered by the
signaling layer.

Slot map (``Participant.slot_map()``; JSON-ready, also passed to listeners)::

    {"room_id": "r1", "participant_id": "alice", "sender_id": "alice",
     "upstream_mid": "0",
     "slots": [{"slot": 1, "mid": "1", "participant_id": "bob", "sender_id": "bob"},
               {"slot": 2, "mid": "2", "participant_id": None, "sender_id": None}, ...]}

A slot keeps its SSRC for the whole session; when its occupant changes, the RTP
sequence number continues (last + 1) and the timestamp advances by the elapsed
time, so the client's jitter buffer sees one continuous stream per slot.
A publisher gets the lowest free slot of every other participant; if none is free
it waits (in join order) for one to be freed.

Public API
----------
``RoomRegistry(*, ice=None, max_rooms=1000, max_participants_per_room=16,
max_downstream_slots=15, connect_timeout=30.0)``
    ``ice`` is a ``media.ice.IcePolicy`` (default ``IcePolicy.server()``: every
    interface including loopback, no STUN/TURN; optionally a public address to announce
    and a UDP port range; ``IcePolicy.loopback()`` for tests and the benchmark).
``registry.room(room_id) -> Room``               get or create
``registry.get(room_id) -> Room | None``
``registry.rooms -> list[Room]``
``await registry.close_room(room_id) -> bool``
``await registry.close()``                       every room, every peer connection
``registry.stats() -> dict``

``await room.join(participant_id, *, sender_id=None, on_slots=None) -> Participant``
    ``sender_id`` names whose audio this connection carries (default: the
    participant id). Connections that share a sender_id never receive each other
    (e.g. one person's separate publish and listen connections, or two devices).
    ``on_slots(participant, slot_map)`` is called (synchronously, in the event
    loop) after the answer and whenever the slot map changes.
``room.participant(participant_id) -> Participant | None``
``room.participants -> list[Participant]``
``room.set_forwarding(participant_id, enabled: bool)``   server-enforced mute
``room.set_space(participant_id, space)``  who may hear whom: a publisher is given a slot
    (and so forwarded) only at subscribers in the same space (any hashable; default 0, one
    space for the whole room). A change frees the slots across the old boundary at once
    and fills them from the same space; the packet path's fan-out is rebuilt then, never
    per packet (a group meeting's side rooms, issue 13)
``await room.remove(participant_id) -> bool``            stops forwarding at once
``await room.close()``

``await participant.answer(offer_sdp: str) -> str``      once per participant
``participant.slots -> tuple[SlotAssignment, ...]``
``participant.slot_map() -> dict``
``participant.add_slot_listener(cb)`` / ``remove_slot_listener(cb)``
``participant.forwarding_enabled -> bool``, ``participant.publishing -> bool``,
``participant.state -> "new" | "negotiated" | "connected" | "closed"``
``participant.stats() -> dict``
``await participant.close()``                            same as room.remove

Errors: ``SfuError`` and subclasses ``RoomLimitReached``, ``RoomFull``,
``ParticipantExists``, ``NegotiationError``, ``ParticipantClosed``.

Isolation and bounds: per-packet exceptions are caught per source and per
destination; callbacks are guarded; a participant that does not connect within
``connect_timeout`` after joining is removed; rooms, participants and slots are
capped by the constructor arguments; nothing on the packet path queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import pylibsrtp
from aiortc import RTCRtpSender, RTCSessionDescription
from aiortc import clock as aiortc_clock
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from . import aiortc_hooks as hooks
from .ice import IcePolicy
from .rtp_forward import Downstream, Egress, Source, make_ingress_handler

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 1.0
CLOSE_TIMEOUT_S = 10.0


class SfuError(Exception):
    pass


class RoomLimitReached(SfuError):
    pass


class RoomFull(SfuError):
    pass


class ParticipantExists(SfuError):
    pass


class ParticipantClosed(SfuError):
    pass


class NegotiationError(SfuError):
    pass


@dataclass(frozen=True)
class SlotAssignment:
    slot: int
    mid: str | None
    participant_id: str | None
    sender_id: str | None

    def to_dict(self) -> dict:
        return {"slot": self.slot, "mid": self.mid, "participant_id": self.participant_id,
                "sender_id": self.sender_id}


SlotListener = Callable[["Participant", dict], None]


def opus_codecs():
    return [c for c in RTCRtpSender.getCapabilities("audio").codecs
            if c.mimeType.lower() == "audio/opus" and c.clockRate == 48000 and c.channels == 2]


OPUS_FMTP = {"useinbandfec": "1"}
_RTPMAP_OPUS = re.compile(r"^a=rtpmap:(\d+) opus/48000(?:/2)?$", re.I)


def with_opus_fec(sdp: str) -> str:
    """Add ``useinbandfec=1`` to the fmtp of every Opus payload type in ``sdp``.

    aiortc writes no fmtp for Opus; a WebRTC sender enables in-band FEC only when the
    other side's description says ``useinbandfec=1``. Existing fmtp parameters are kept."""
    sections: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    out: list[str] = []
    for lines in sections:
        opus_pts = {m.group(1) for line in lines if (m := _RTPMAP_OPUS.match(line))}
        has_fmtp: set[str] = set()
        edited: list[str] = []
        for line in lines:
            if line.startswith("a=fmtp:"):
                pt, _, params = line[len("a=fmtp:"):].partition(" ")
                if pt in opus_pts:
                    has_fmtp.add(pt)
                    items = [p for p in params.split(";") if p.strip()]
                    keys = {p.split("=", 1)[0].strip().lower() for p in items}
                    items += [f"{k}={v}" for k, v in OPUS_FMTP.items() if k not in keys]
                    line = f"a=fmtp:{pt} " + ";".join(items)
            edited.append(line)
        for line in edited:
            out.append(line)
            m = _RTPMAP_OPUS.match(line)
            if m and m.group(1) not in has_fmtp:
                out.append(f"a=fmtp:{m.group(1)} "
                           + ";".join(f"{k}={v}" for k, v in OPUS_FMTP.items()))
    return "\r\n".join(out) + "\r\n"


def opus_fec_negotiated(sdp: str, mid: str = "0") -> bool:
    """Whether the m-section ``mid`` of ``sdp`` says ``useinbandfec=1`` for Opus."""
    section: list[str] = []
    current: list[str] | None = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            current = [line]
        elif current is not None:
            current.append(line)
            if line == f"a=mid:{mid}":
                section = current
    pts = {m.group(1) for line in section if (m := _RTPMAP_OPUS.match(line))}
    for line in section:
        if line.startswith("a=fmtp:"):
            pt, _, params = line[len("a=fmtp:"):].partition(" ")
            if pt in pts and any(p.strip().lower() == "useinbandfec=1" for p in params.split(";")):
                return True
    return False


class _HeldTrack(MediaStreamTrack):
    """Placeholder track for a downstream slot's RTCRtpSender.

    aiortc needs a track to announce msid/SSRC and to start the sender (and its
    RTCP sender reports). Without one, ``RTCRtpSender._run_rtp`` polls every
    20 ms; this track's ``recv()`` simply waits until the track is stopped, so the
    sender costs nothing. Forwarded packets bypass the sender entirely.
    """

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._ended: asyncio.Future | None = None

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self._ended is None:
            self._ended = asyncio.get_running_loop().create_future()
        await self._ended
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)


class Participant:
    """One client connection in a room (create with ``Room.join``)."""

    def __init__(self, room: Room, participant_id: str, sender_id: str) -> None:
        self._room = room
        self.participant_id = participant_id
        self.sender_id = sender_id
        self.state = "new"
        self.joined_at = time.monotonic()
        self._forwarding = True
        self.space: object = 0  # who may hear whom (Room.set_space)
        self._pc = None
        self._upstream = None  # transceiver of m-line 0
        self._source: Source | None = None
        self._egress = Egress(participant_id, on_fatal=self._on_egress_fatal)
        self._downstreams: list[Downstream] = []
        self._slot_owner: dict[int, Participant | None] = {}
        self._waiting: list[Participant] = []  # publishers waiting for a free slot here
        self._listeners: list[SlotListener] = []
        self._hooked_protocols: list = []
        self._negotiating = False
        self._stats_ssrc: int | None = None

    # ------------------------------------------------------------ public

    @property
    def room(self) -> Room:
        return self._room

    @property
    def forwarding_enabled(self) -> bool:
        return self._forwarding

    @property
    def publishing(self) -> bool:
        return self._source is not None

    @property
    def slots(self) -> tuple[SlotAssignment, ...]:
        out = []
        for ds in self._downstreams:
            owner = self._slot_owner.get(ds.slot)
            out.append(SlotAssignment(ds.slot, ds.mid,
                                      owner.participant_id if owner else None,
                                      owner.sender_id if owner else None))
        return tuple(out)

    def slot_map(self) -> dict:
        return {
            "room_id": self._room.room_id,
            "participant_id": self.participant_id,
            "sender_id": self.sender_id,
            "upstream_mid": self._upstream.mid if self._upstream is not None else None,
            "slots": [s.to_dict() for s in self.slots],
        }

    def add_slot_listener(self, callback: SlotListener) -> None:
        if len(self._listeners) >= 16:
            raise SfuError("too many slot listeners")
        self._listeners.append(callback)

    def remove_slot_listener(self, callback: SlotListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def stats(self) -> dict:
        src = self._source
        return {
            "participant_id": self.participant_id,
            "state": self.state,
            "publishing": src is not None,
            "forwarding_enabled": self._forwarding,
            "received_packets": src.received if src else 0,
            "forwarded_packets": src.packets if src else 0,
            "dropped_packets": src.dropped if src else 0,
            "source_errors": src.errors if src else 0,
            "egress_errors": self._egress.errors,
            "slots": len(self._downstreams),
        }

    async def answer(self, offer_sdp: str) -> str:
        """Apply the client's offer (see module docstring) and return the answer SDP."""
        if self.state == "closed":
            raise ParticipantClosed(self.participant_id)
        if self._pc is not None or self._negotiating:
            raise NegotiationError("already negotiated: Haven does not renegotiate")
        self._negotiating = True
        registry = self._room._registry
        try:
            desc = aiortc_sdp.SessionDescription.parse(offer_sdp)
        except Exception as exc:
            raise NegotiationError(f"unparsable offer: {exc}") from exc
        kinds = [m.kind for m in desc.media]
        if not kinds or any(k != "audio" for k in kinds):
            raise NegotiationError(f"offer must contain audio m-lines only, got {kinds}")
        if len(kinds) > 1 + registry.max_downstream_slots:
            raise NegotiationError(
                f"offer has {len(kinds) - 1} downstream slots, at most "
                f"{registry.max_downstream_slots} allowed")

        pc = registry.ice.new_peer_connection()
        self._pc = pc
        pc.on("connectionstatechange", self._on_connection_state)
        opus = opus_codecs()
        try:
            up = pc.addTransceiver("audio", direction="recvonly")
            up.setCodecPreferences(opus)
            for _ in range(len(kinds) - 1):
                t = pc.addTransceiver(_HeldTrack(), direction="sendonly")
                t.setCodecPreferences(opus)
            await pc.setRemoteDescription(RTCSessionDescription(
                sdp=registry.ice.filter_remote_sdp(offer_sdp), type="offer"))
            answer = await pc.createAnswer()
            with registry.ice.gathering():
                await pc.setLocalDescription(answer)
            registry.ice.guard(up)
        except Exception as exc:
            await self._room.remove(self.participant_id)
            if isinstance(exc, SfuError):
                raise
            raise NegotiationError(f"negotiation failed: {exc!r}") from exc
        if self.state == "closed":  # removed while we were negotiating
            with contextlib.suppress(Exception):
                await pc.close()
            raise ParticipantClosed(self.participant_id)

        transceivers = pc.getTransceivers()
        self._upstream = up
        if up.currentDirection in ("recvonly", "sendrecv"):
            pt = hooks.negotiated_payload_type(up)
            if pt is not None:
                self._source = Source(self.participant_id, pt, on_ssrc=self._on_source_ssrc)
                self._source.set_enabled(self._forwarding)
                hooks.divert_receiver(up.receiver, self._source.handle)
        for index, t in enumerate(transceivers[1:len(kinds)], start=1):
            if t.currentDirection not in ("sendonly", "sendrecv"):
                continue
            pt = hooks.negotiated_payload_type(t)
            if pt is None:
                continue
            self._downstreams.append(Downstream(
                self._egress, index, t.mid, hooks.sender_ssrc(t.sender), pt, sender=t.sender))
            self._slot_owner[index] = None
        self.state = "negotiated"
        self._room._on_negotiated(self)
        return with_opus_fec(registry.ice.announce(pc.localDescription.sdp))

    async def close(self) -> None:
        await self._room.remove(self.participant_id)

    # ------------------------------------------------------------ internals

    def _notify(self) -> None:
        if not self._listeners or self.state == "closed":
            return
        slot_map = self.slot_map()
        for cb in list(self._listeners):
            try:
                cb(self, slot_map)
            except Exception:
                log.exception("slot listener of %s failed", self.participant_id)

    def _free_downstream(self) -> Downstream | None:
        for ds in self._downstreams:
            if self._slot_owner.get(ds.slot) is None:
                return ds
        return None

    def _on_connection_state(self) -> None:
        pc = self._pc
        if pc is None:
            return
        st = pc.connectionState
        try:
            if st == "connected" and self.state == "negotiated":
                self._on_connected()
            elif st in ("failed", "closed") and self.state != "closed":
                self._room._remove_soon(self.participant_id)
        except Exception:
            log.exception("participant %s: connection state %s handling failed",
                          self.participant_id, st)
            self._room._remove_soon(self.participant_id)

    def _on_connected(self) -> None:
        dtls = hooks.dtls_transport(self._upstream)
        rx, tx = hooks.srtp_sessions(dtls)
        conn = hooks.ice_connection(dtls)
        pair = hooks.nominated_pair(conn)
        if rx is None or tx is None or pair is None:
            raise SfuError("connected without SRTP keys or a selected ICE pair")
        protocol, addr = pair
        self.state = "connected"
        if self._downstreams:
            transport = protocol.transport
            self._egress.activate(tx, transport, hooks.raw_socket(transport), addr)
        if self._source is not None:
            source = self._source
            for proto in hooks.stun_protocols(conn):
                hooks.intercept_datagrams(
                    proto, lambda orig: make_ingress_handler(source, rx, orig,
                                                             srtp_error=pylibsrtp.Error))
                self._hooked_protocols.append(proto)

    def _on_source_ssrc(self, source: Source, old: int | None, new: int) -> None:
        receiver = self._upstream.receiver if self._upstream is not None else None
        if receiver is None:
            return
        if old is not None:
            hooks.unregister_receive_statistics(receiver, old)
        hooks.register_receive_statistics(receiver, new, hooks.SourceStatistics(source))
        self._stats_ssrc = new

    def _on_egress_fatal(self, egress: Egress, exc: BaseException) -> None:
        self._room._remove_soon(self.participant_id)

    def _shutdown_forwarding(self) -> None:
        """Synchronous part of removal: nothing is forwarded to or from us after this."""
        self.state = "closed"
        if self._source is not None:
            self._source.close()
        self._egress.deactivate()
        for ds in self._downstreams:
            if ds.source is not None:
                ds.source.detach(ds)
        for proto in self._hooked_protocols:
            hooks.release_datagrams(proto)
        self._hooked_protocols.clear()
        self._waiting.clear()

    async def _close_pc(self) -> None:
        pc, self._pc = self._pc, None
        if pc is None:
            return
        try:
            await asyncio.wait_for(pc.close(), CLOSE_TIMEOUT_S)
        except Exception:
            log.exception("participant %s: closing the peer connection failed",
                          self.participant_id)


class Room:
    """A set of participants that all hear each other (create with ``RoomRegistry.room``)."""

    def __init__(self, registry: RoomRegistry, room_id: str) -> None:
        self._registry = registry
        self.room_id = room_id
        self._participants: dict[str, Participant] = {}
        self._closed = False

    @property
    def participants(self) -> list[Participant]:
        return list(self._participants.values())

    def participant(self, participant_id: str) -> Participant | None:
        return self._participants.get(participant_id)

    async def join(self, participant_id: str, *, sender_id: str | None = None,
                   on_slots: SlotListener | None = None) -> Participant:
        if self._closed:
            raise SfuError(f"room {self.room_id} is closed")
        if participant_id in self._participants:
            raise ParticipantExists(participant_id)
        if len(self._participants) >= self._registry.max_participants_per_room:
            raise RoomFull(self.room_id)
        p = Participant(self, participant_id, sender_id or participant_id)
        if on_slots is not None:
            p.add_slot_listener(on_slots)
        self._participants[participant_id] = p
        self._registry._ensure_housekeeping()
        return p

    def set_forwarding(self, participant_id: str, enabled: bool) -> None:
        p = self._participants.get(participant_id)
        if p is None:
            raise KeyError(participant_id)
        p._forwarding = bool(enabled)
        if p._source is not None:
            p._source.set_enabled(p._forwarding)

    def set_space(self, participant_id: str, space: object) -> None:
        """Move a participant to another space: from now on their audio reaches only
        subscribers in that space, and they hear only its publishers."""
        p = self._participants.get(participant_id)
        if p is None:
            raise KeyError(participant_id)
        if p.space == space:
            return
        p.space = space
        changed = {p}
        for q in self._participants.values():
            if q is p:
                continue
            for pub, sub in ((p, q), (q, p)):
                if pub.space != sub.space:
                    if pub in sub._waiting:
                        sub._waiting.remove(pub)
                    if self._unassign(pub, sub):
                        changed.add(sub)
        for q in self._participants.values():  # now every same-space pair, both ways
            if q is p:
                continue
            for pub, sub in ((p, q), (q, p)):
                if self._linkable(pub, sub) and pub not in sub._slot_owner.values():
                    if self._assign(pub, sub):
                        changed.add(sub)
        for q in changed:
            q._notify()

    async def remove(self, participant_id: str) -> bool:
        p = self._participants.pop(participant_id, None)
        if p is None:
            return False
        p._shutdown_forwarding()
        changed: list[Participant] = []
        for q in self._participants.values():
            if p in q._waiting:
                q._waiting.remove(p)
            for slot, owner in q._slot_owner.items():
                if owner is p:
                    q._slot_owner[slot] = None
                    self._fill_from_waiting(q)
                    changed.append(q)
                    break
        for q in changed:
            q._notify()
        await p._close_pc()
        if not self._participants:
            self._registry._drop_room(self)
        return True

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*(self.remove(pid) for pid in list(self._participants)),
                             return_exceptions=True)
        self._registry._drop_room(self)

    def slot_maps(self) -> dict[str, dict]:
        return {pid: p.slot_map() for pid, p in self._participants.items()}

    # ------------------------------------------------------------ internals

    @staticmethod
    def _linkable(pub: Participant, sub: Participant) -> bool:
        """May ``sub`` be given a slot for ``pub``'s audio?"""
        return (pub is not sub and pub.space == sub.space and pub.sender_id != sub.sender_id
                and pub.state in ("negotiated", "connected")
                and sub.state in ("negotiated", "connected")
                and pub._source is not None and not pub._source.closed)

    def _unassign(self, pub: Participant, sub: Participant) -> bool:
        """Free ``sub``'s slot carrying ``pub`` (if any) and give it to the next waiting
        publisher of ``sub``'s space; whether a slot changed."""
        for ds in sub._downstreams:
            if sub._slot_owner.get(ds.slot) is pub:
                if pub._source is not None:
                    pub._source.detach(ds)
                sub._slot_owner[ds.slot] = None
                self._fill_from_waiting(sub)
                return True
        return False

    def _assign(self, pub: Participant, sub: Participant) -> bool:
        if pub.space != sub.space:
            return False
        ds = sub._free_downstream()
        if ds is None:
            if pub not in sub._waiting:
                sub._waiting.append(pub)
            return False
        sub._slot_owner[ds.slot] = pub
        pub._source.attach(ds)
        return True

    def _fill_from_waiting(self, sub: Participant) -> None:
        while sub._waiting:
            pub = sub._waiting.pop(0)
            if (pub.state != "closed" and pub._source is not None and not pub._source.closed
                    and pub.space == sub.space):
                self._assign(pub, sub)
                return

    def _on_negotiated(self, p: Participant) -> None:
        changed = [p]
        for q in self._participants.values():
            if q is p or q.state not in ("negotiated", "connected") or q.sender_id == p.sender_id:
                continue
            if q._source is not None:
                self._assign(q, p)
            if p._source is not None and self._assign(p, q):
                changed.append(q)
        for q in changed:
            q._notify()

    def _remove_soon(self, participant_id: str) -> None:
        if participant_id in self._participants:
            self._registry._spawn(self.remove(participant_id))


class RoomRegistry:
    """All rooms of this SFU node. See the module docstring for the API."""

    def __init__(self, *, ice: IcePolicy | None = None, max_rooms: int = 1000,
                 max_participants_per_room: int = 16, max_downstream_slots: int = 15,
                 connect_timeout: float = 30.0) -> None:
        if not 1 <= max_downstream_slots <= 64:
            raise ValueError("max_downstream_slots must be 1..64")
        self.ice = ice or IcePolicy.server()
        self.max_rooms = max_rooms
        self.max_participants_per_room = max_participants_per_room
        self.max_downstream_slots = max_downstream_slots
        self.connect_timeout = connect_timeout
        self._rooms: dict[str, Room] = {}
        self._tasks: set[asyncio.Task] = set()
        self._housekeeping: asyncio.Task | None = None
        self._closed = False

    @property
    def rooms(self) -> list[Room]:
        return list(self._rooms.values())

    def get(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    def room(self, room_id: str) -> Room:
        if self._closed:
            raise SfuError("registry is closed")
        room = self._rooms.get(room_id)
        if room is None:
            if len(self._rooms) >= self.max_rooms:
                raise RoomLimitReached(f"{self.max_rooms} rooms")
            room = self._rooms[room_id] = Room(self, room_id)
        return room

    async def close_room(self, room_id: str) -> bool:
        room = self._rooms.get(room_id)
        if room is None:
            return False
        await room.close()
        return True

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*(r.close() for r in list(self._rooms.values())),
                             return_exceptions=True)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._housekeeping
            self._housekeeping = None
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def stats(self) -> dict:
        parts = [p for r in self._rooms.values() for p in r._participants.values()]
        return {
            "rooms": len(self._rooms),
            "participants": len(parts),
            "connected": sum(1 for p in parts if p.state == "connected"),
            "received_packets": sum(p._source.received for p in parts if p._source),
            "forwarded_source_packets": sum(p._source.packets for p in parts if p._source),
        }

    # ------------------------------------------------------------ internals

    def _drop_room(self, room: Room) -> None:
        if self._rooms.get(room.room_id) is room:
            del self._rooms[room.room_id]

    def _spawn(self, coro) -> None:
        if len(self._tasks) > 10_000:  # bounded; removal still happens synchronously enough
            log.error("too many pending SFU tasks; dropping one")
            coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SFU task failed: %r", task.exception())

    def _ensure_housekeeping(self) -> None:
        if self._housekeeping is None or self._housekeeping.done():
            self._housekeeping = asyncio.ensure_future(self._run_housekeeping())

    async def _run_housekeeping(self) -> None:
        while not self._closed:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            try:
                self._housekeep_once()
            except Exception:
                log.exception("SFU housekeeping failed")

    def _housekeep_once(self) -> None:
        now = time.monotonic()
        ntp = aiortc_clock.current_ntp_time()
        for room in list(self._rooms.values()):
            for p in list(room._participants.values()):
                if p.state in ("new", "negotiated") and now - p.joined_at > self.connect_timeout:
                    log.info("participant %s did not connect in %.0f s; removing",
                             p.participant_id, self.connect_timeout)
                    room._remove_soon(p.participant_id)
                    continue
                if p.state != "connected":
                    continue
                for ds in p._downstreams:
                    rtp_ts = ds.current_rtp_timestamp(now)
                    if rtp_ts is None or ds.sender is None:
                        continue
                    packets, octets = ds.counters()
                    hooks.set_sender_report_counters(ds.sender, ntp, rtp_ts, packets, octets)
