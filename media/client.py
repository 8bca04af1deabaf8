"""A minimal aiortc client for Haven's SFU (tests, benchmark, diagnostics).

It makes the offer the SFU expects (m-line 0 ``sendonly`` upstream + N ``recvonly``
downstream slots, Opus only), publishes pre-encoded packets without encoding at
send time, and records what arrives on each downstream slot *after SRTP
decryption, before any jitter buffer or decoder* (per-receiver override of
``RTCRtpReceiver._handle_rtp_packet``; checked by tests/test_aiortc_hooks.py).

    client = HavenClient(IcePolicy.loopback(), payloads=encode_opus(50), slots=11)
    answer = await participant.answer(await client.offer())
    await client.accept(answer)
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence

import av
from aiortc import RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .ice import IcePolicy

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


def opus_codecs():
    return [c for c in RTCRtpSender.getCapabilities("audio").codecs
            if c.mimeType.lower() == "audio/opus"]


def encode_opus(frames: int, *, freq: float = 440.0, seed: int = 0, bitrate: int = 32000) -> list[bytes]:
    """``frames`` 20 ms mono Opus packets of a tone plus noise (PyAV's libopus)."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = SAMPLE_RATE
    enc.layout = "mono"
    enc.format = "s16"
    enc.bit_rate = bitrate
    enc.time_base = TIME_BASE
    rnd = random.Random(seed)
    w = 2 * math.pi * freq / SAMPLE_RATE
    out: list[bytes] = []
    for i in range(frames):
        base = i * FRAME_SAMPLES
        samples = array.array("h", (int(8000 * math.sin(w * (base + k)) + rnd.gauss(0, 500))
                                    for k in range(FRAME_SAMPLES)))
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = SAMPLE_RATE
        frame.pts = base
        frame.time_base = TIME_BASE
        out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out[:frames]


class PacketTrack(MediaStreamTrack):
    """Hands out pre-encoded payloads as ``av.Packet`` every 20 ms (aiortc's Opus
    "encoder" only packs them: no encoding at send time)."""

    kind = "audio"

    def __init__(self, payloads: Sequence[bytes], *, loop: bool = True,
                 on_send: Callable[[int, bytes], None] | None = None) -> None:
        super().__init__()
        if not payloads:
            raise ValueError("no payloads")
        self._payloads = list(payloads)
        self._loop = loop
        self._on_send = on_send
        self._t0: float | None = None
        self._i = 0
        self.sent = 0
        self.late = 0

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        i = self._i
        if not self._loop and i >= len(self._payloads):
            await asyncio.sleep(3600)  # done: idle until stopped
            raise MediaStreamError
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self._i += 1
        delay = self._t0 + i * FRAME_S - now
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -FRAME_S:
            self.late += 1
        data = self._payloads[i % len(self._payloads)]
        packet = av.Packet(data)
        packet.pts = i * FRAME_SAMPLES
        packet.time_base = TIME_BASE
        self.sent += 1
        if self._on_send is not None:
            self._on_send(i, data)
        return packet


class SlotReceiver:
    """What one downstream slot received (bounded)."""

    def __init__(self, mid: str, keep: int) -> None:
        self.mid = mid
        self.count = 0
        self.payloads: deque[bytes] = deque(maxlen=keep)
        self.headers: deque[tuple[int, int, int]] = deque(maxlen=keep)  # (seq, ts, ssrc)


class HavenClient:
    """One participant connection: upstream on m-line 0, ``slots`` downstream m-lines."""

    def __init__(self, ice: IcePolicy, *, payloads: Sequence[bytes] | None = None,
                 slots: int = 11, loop: bool = True, keep: int = 1000,
                 on_packet: Callable[[SlotReceiver, object], None] | None = None,
                 on_send: Callable[[int, bytes], None] | None = None) -> None:
        self.ice = ice
        self.pc = ice.new_peer_connection()
        self.track = PacketTrack(payloads, loop=loop, on_send=on_send) if payloads else None
        up_dir = "sendonly" if self.track else "inactive"
        self.upstream = self.pc.addTransceiver(self.track or "audio", direction=up_dir)
        self.upstream.setCodecPreferences(opus_codecs())
        self.downstream = []
        for _ in range(slots):
            t = self.pc.addTransceiver("audio", direction="recvonly")
            t.setCodecPreferences(opus_codecs())
            self.downstream.append(t)
        self.slots: dict[str, SlotReceiver] = {}
        self.unrouted = 0
        self._keep = keep
        self._on_packet = on_packet

    async def offer(self) -> str:
        offer = await self.pc.createOffer()
        with self.ice.gathering():
            await self.pc.setLocalDescription(offer)
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(
            sdp=self.ice.filter_remote_sdp(answer_sdp), type="answer"))
        for t in self.downstream:
            slot = self.slots[t.mid] = SlotReceiver(t.mid, self._keep)
            t.receiver._handle_rtp_packet = self._make_counter(slot)

    def _make_counter(self, slot: SlotReceiver):
        keep_payloads = self._keep > 0
        on_packet = self._on_packet

        async def _handle_rtp_packet(packet, arrival_time_ms: int) -> None:
            slot.count += 1
            if keep_payloads:
                slot.payloads.append(packet.payload)
                slot.headers.append((packet.sequence_number, packet.timestamp, packet.ssrc))
            if on_packet is not None:
                on_packet(slot, packet)

        return _handle_rtp_packet

    async def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
                raise TimeoutError(f"client connection state {self.pc.connectionState}")
            await asyncio.sleep(0.02)

    def received(self, mid: str) -> list[bytes]:
        return list(self.slots[mid].payloads)

    async def close(self) -> None:
        await self.pc.close()
