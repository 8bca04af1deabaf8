"""RTP-level forwarding core: no decoding, no tasks, no queues on the packet path.

One ``Source`` per publishing connection, one ``Downstream`` per (subscriber
connection, downstream slot), one ``Egress`` per subscriber connection.

Packet path (all synchronous, inside the event loop's datagram callback):

    UDP datagram -> StunProtocol.datagram_received (instance override, see
    media.aiortc_hooks) -> first byte says RTP and not RTCP -> publisher's
    SRTP unprotect -> ``Source.handle(plain)``:
        parse the fixed header with one ``struct.unpack_from``, skip CSRCs and
        header extensions (they are *not* forwarded: their ids, the MID and
        audio-level belong to the publisher's negotiation), then for every
        entry of the precomputed fan-out tuple:
            12-byte header (subscriber's PT, SSRC; seq/ts + per-stream offsets)
            + payload bytes, untouched -> subscriber's SRTP protect -> sendto.

The payload is opaque (SFrame ciphertext in production): it is sliced once and
concatenated, never parsed.

Sequence numbers and timestamps: each Downstream owns an output stream (the SSRC
its slot announced in SDP). Output = input + offset (mod 2^16 / 2^32), so loss and
reordering of the source stay visible to the receiver. Offsets are (re)computed
on the first packet after any change (new source in the slot, mute lifted, source
SSRC changed) so the output sequence continues at last+1 and the timestamp
advances by the wall-clock time that passed (at least one 20 ms frame).
The fan-out tuple is rebuilt only on such changes, never per packet.
"""

from __future__ import annotations

import logging
import random
import struct
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_HDR = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")
CLOCK_RATE = 48000  # Opus RTP clock
MIN_TS_STEP = 960  # one 20 ms Opus frame
MAX_LOGGED_ERRORS = 20


def _random_seq() -> int:
    return random.randrange(0, 32768)  # lower half, like aiortc (SRTP ROC safety)


def _random_ts() -> int:
    return random.randrange(0, 1 << 32)


class Egress:
    """One subscriber connection: SRTP tx session and the selected UDP pair."""

    __slots__ = ("name", "active", "protect", "sendto", "addr", "transport", "errors",
                 "downstreams", "on_fatal")

    def __init__(self, name: str, on_fatal: Callable[[Egress, BaseException], None] | None = None):
        self.name = name
        self.active = False
        self.protect = None
        self.sendto = None
        self.addr = None
        self.transport = None
        self.errors = 0
        self.downstreams: list[Downstream] = []
        self.on_fatal = on_fatal

    def activate(self, tx_session, transport, sock, addr) -> None:
        self.protect = tx_session.protect
        self.transport = transport
        self.addr = addr
        self.sendto = sock.sendto if sock is not None else transport.sendto
        self.active = True
        self._rebuild_sources()

    def deactivate(self) -> None:
        if not self.active:
            return
        self.active = False
        self._rebuild_sources()

    def _rebuild_sources(self) -> None:
        for ds in self.downstreams:
            if ds.source is not None:
                ds.source.rebuild()

    def send_slow(self, pkt: bytes) -> None:
        """Socket would block: hand the datagram to asyncio (it buffers, bounded by the kernel)."""
        try:
            self.transport.sendto(pkt, self.addr)
        except Exception as exc:  # closed transport etc.
            self.failed(exc)

    def failed(self, exc: BaseException) -> None:
        self.errors += 1
        if self.errors <= MAX_LOGGED_ERRORS:
            log.warning("egress %s: send failed: %r", self.name, exc)
        if isinstance(exc, OSError) and not isinstance(exc, (BlockingIOError, InterruptedError)):
            # closed socket / unreachable: stop sending to this connection at once
            self.deactivate()
            if self.on_fatal is not None:
                try:
                    self.on_fatal(self, exc)
                except Exception:
                    log.exception("egress %s: on_fatal callback failed", self.name)


class Downstream:
    """One downstream slot of one subscriber: an outgoing RTP stream with its own
    SSRC, payload type and seq/timestamp space."""

    __slots__ = ("egress", "slot", "mid", "ssrc", "pt", "sender", "source", "ready",
                 "seq_off", "ts_off", "last_seq", "last_ts", "last_time",
                 "base_packets", "base_octets", "mark_packets", "mark_octets")

    def __init__(self, egress: Egress, slot: int, mid: str | None, ssrc: int, pt: int, sender=None):
        self.egress = egress
        self.slot = slot
        self.mid = mid
        self.ssrc = ssrc
        self.pt = pt
        self.sender = sender
        self.source: Source | None = None
        self.ready = False  # offsets computed for the current source
        self.seq_off = 0
        self.ts_off = 0
        self.last_seq: int | None = None  # last output seq/ts while not ready
        self.last_ts = 0
        self.last_time = 0.0
        self.base_packets = 0
        self.base_octets = 0
        self.mark_packets = 0
        self.mark_octets = 0
        egress.downstreams.append(self)

    # -- statistics for sender reports
    def counters(self) -> tuple[int, int]:
        src = self.source
        if src is not None and self.ready:
            return (self.base_packets + src.packets - self.mark_packets,
                    self.base_octets + src.octets - self.mark_octets)
        return self.base_packets, self.base_octets

    def current_rtp_timestamp(self, now: float) -> int | None:
        src = self.source
        if src is not None and self.ready and src.seq is not None:
            return (src.ts + self.ts_off + int((now - src.arrival) * CLOCK_RATE)) & 0xFFFFFFFF
        if self.last_seq is not None:
            return (self.last_ts + int((now - self.last_time) * CLOCK_RATE)) & 0xFFFFFFFF
        return None

    def _init_offsets(self, seq: int, ts: int, now: float, src: Source) -> None:
        if self.last_seq is None:
            out_seq, out_ts = _random_seq(), _random_ts()
        else:
            out_seq = (self.last_seq + 1) & 0xFFFF
            step = max(MIN_TS_STEP, int((now - self.last_time) * CLOCK_RATE))
            out_ts = (self.last_ts + step) & 0xFFFFFFFF
        self.seq_off = (out_seq - seq) & 0xFFFF
        self.ts_off = (out_ts - ts) & 0xFFFFFFFF
        self.mark_packets = src.packets
        self.mark_octets = src.octets
        self.ready = True

    def _suspend(self) -> None:
        """Remember where the output stream is, so the next source continues it."""
        src = self.source
        if self.ready and src is not None:
            if src.seq is not None:
                self.last_seq = (src.seq + self.seq_off) & 0xFFFF
                self.last_ts = (src.ts + self.ts_off) & 0xFFFFFFFF
                self.last_time = src.arrival
            self.base_packets += src.packets - self.mark_packets
            self.base_octets += src.octets - self.mark_octets
        self.ready = False


class Source:
    """One publisher's upstream Opus stream (after SRTP unprotect)."""

    __slots__ = ("name", "pt", "ssrc", "enabled", "closed", "fanout", "downstreams", "pending",
                 "seq", "ts", "arrival", "base_seq", "cycles", "received", "packets", "octets",
                 "transit", "jitter_q4", "dropped", "errors", "on_ssrc")

    def __init__(self, name: str, pt: int, on_ssrc: Callable[[Source, int | None, int], None] | None = None):
        self.name = name
        self.pt = pt
        self.ssrc: int | None = None
        self.enabled = True
        self.closed = False
        self.fanout: tuple = ()
        self.downstreams: list[Downstream] = []
        self.pending = False
        # receive state (highest sequence seen)
        self.seq: int | None = None
        self.ts = 0
        self.arrival = 0.0
        self.base_seq = 0
        self.cycles = 0
        self.received = 0
        self.packets = 0  # packets forwarded while enabled (for sender-report counters)
        self.octets = 0
        self.transit: int | None = None
        self.jitter_q4 = 0
        self.dropped = 0
        self.errors = 0
        self.on_ssrc = on_ssrc

    # ---------------------------------------------------------------- control

    def attach(self, ds: Downstream) -> None:
        if ds.source is self:
            return
        if ds.source is not None:
            ds.source.detach(ds)
        ds.source = self
        ds.ready = False
        self.downstreams.append(ds)
        self.pending = True
        self.rebuild()

    def detach(self, ds: Downstream) -> None:
        if ds.source is not self:
            return
        ds._suspend()
        ds.source = None
        try:
            self.downstreams.remove(ds)
        except ValueError:
            pass
        self.rebuild()

    def set_enabled(self, enabled: bool) -> None:
        if enabled == self.enabled:
            return
        self.enabled = enabled
        if not enabled:
            for ds in self.downstreams:
                ds._suspend()
        else:
            self.pending = bool(self.downstreams)
        self.rebuild()

    def close(self) -> None:
        self.closed = True
        self.enabled = False
        for ds in list(self.downstreams):
            self.detach(ds)
        self.fanout = ()

    def rebuild(self) -> None:
        if self.closed or not self.enabled:
            self.fanout = ()
            return
        self.fanout = tuple(
            (ds.seq_off, ds.ts_off, ds.ssrc, ds.pt, ds.egress.protect, ds.egress.sendto,
             ds.egress.addr, ds.egress)
            for ds in self.downstreams
            if ds.ready and ds.egress.active
        )

    def _init_pending(self, seq: int, ts: int, now: float) -> None:
        self.pending = False
        for ds in self.downstreams:
            if not ds.ready:
                ds._init_offsets(seq, ts, now, self)
        self.rebuild()

    def _new_ssrc(self, ssrc: int) -> None:
        old = self.ssrc
        for ds in self.downstreams:
            ds._suspend()
        self.ssrc = ssrc
        self.seq = None
        self.transit = None
        self.cycles = 0
        self.received = 0
        self.jitter_q4 = 0
        self.pending = bool(self.downstreams)
        self.rebuild()
        if self.on_ssrc is not None:
            try:
                self.on_ssrc(self, old, ssrc)
            except Exception:
                log.exception("source %s: on_ssrc callback failed", self.name)

    # ---------------------------------------------------------------- packet path

    def handle(self, data: bytes, _unpack=_SEQ_TS_SSRC.unpack_from, _pack=_HDR.pack,
               _now=time.monotonic) -> None:
        """Forward one plain (already SRTP-unprotected) RTP packet."""
        n = len(data)
        if n < 13 or self.closed:
            return
        b0 = data[0]
        off = 12 + ((b0 & 0x0F) << 2)
        if b0 & 0x10:
            if n < off + 4:
                return
            off += 4 + (((data[off + 2] << 8) | data[off + 3]) << 2)
        if off >= n or (b0 & 0xC0) != 0x80:
            self.dropped += 1
            return
        b1 = data[1]
        if (b1 & 0x7F) != self.pt:
            self.dropped += 1  # only Opus is negotiated; anything else is dropped
            return
        seq, ts, ssrc = _unpack(data, 2)
        if ssrc != self.ssrc:
            self._new_ssrc(ssrc)
        now = _now()
        last = self.seq
        if last is None:
            self.base_seq = seq
            self.seq = seq
            self.ts = ts
            self.arrival = now
        elif ((seq - last) & 0xFFFF) < 0x8000:
            if seq < last:
                self.cycles += 0x10000
            self.seq = seq
            self.ts = ts
            self.arrival = now
            # RFC 3550 interarrival jitter, in RTP clock units
            transit = int(now * CLOCK_RATE) - ts
            if self.transit is not None:
                d = (transit - self.transit) & 0xFFFFFFFF
                if d & 0x80000000:
                    d = 0x100000000 - d
                self.jitter_q4 += d - ((self.jitter_q4 + 8) >> 4)
            self.transit = transit
        self.received += 1
        if not self.enabled:
            return
        if self.pending:
            self._init_pending(seq, ts, now)
        fanout = self.fanout
        if not fanout:
            return
        payload = data[off:]
        self.packets += 1
        self.octets += n - off
        h0 = 0x80 | (b0 & 0x20)  # keep the padding bit, no CSRC, no extension
        mk = b1 & 0x80
        for seq_off, ts_off, ossrc, opt, protect, sendto, addr, eg in fanout:
            try:
                pkt = protect(_pack(h0, mk | opt, (seq + seq_off) & 0xFFFF,
                                    (ts + ts_off) & 0xFFFFFFFF, ossrc) + payload)
                sendto(pkt, addr)
            except (BlockingIOError, InterruptedError):
                eg.send_slow(pkt)
            except Exception as exc:
                eg.failed(exc)


def make_ingress_handler(source: Source, rx_session, original, *, srtp_error=Exception):
    """Build the ``datagram_received`` replacement for a publisher's StunProtocol.

    RTP (first byte 128..191 and second byte not an RTCP type) is unprotected and
    forwarded here; everything else (STUN, DTLS, SRTCP) goes to ``original``.
    """
    unprotect = rx_session.unprotect
    handle = source.handle

    def datagram_received(data, addr):
        if len(data) > 12 and 127 < data[0] < 192 and not (191 < data[1] < 209):
            if source.closed:
                return
            try:
                plain = unprotect(data)
            except srtp_error:
                source.errors += 1
                return
            try:
                handle(plain)
            except Exception:
                source.errors += 1
                if source.errors <= MAX_LOGGED_ERRORS:
                    log.exception("source %s: forwarding failed", source.name)
            return
        original(data, addr)

    return datagram_received
