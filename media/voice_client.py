"""Haven's Python voice client: joins a room by its join URL, speaks and listens end to end
encrypted (SFrame, RFC 9605), and can record what it hears.

Usable as a library (``VoiceClient``) and behind ``haven call``. It speaks the protocol of
docs/protocol.md exactly as the browser does:

* signaling over the WebSocket: ``join`` -> ``joined``; wrapped sender keys out (``keys``) and
  in (``key``); ``offer`` -> ``answer``; ``slots`` say whose voice arrives on which mid;
* media over one aiortc peer connection: m-line 0 sends, m-lines 1..11 receive. What it sends
  is Opus it encodes itself (PyAV's libopus), SFrame-encrypted, handed to aiortc as
  ``av.Packet`` objects, which aiortc's Opus encoder only packs (``encoder.pack``). What it
  receives is taken right after SRTP (a per-receiver ``_handle_rtp_packet``, see
  media.aiortc_hooks), decrypted, and only then decoded. A frame that fails to decrypt is
  dropped and counted; it never reaches the decoder.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fractions
import logging
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import av
import numpy as np
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media import signaling as sig
from media.code_round import CodeRoundError, SecurityCodeRound
from media.e2ee import (
    IdentityCard,
    IdentityKeys,
    KeyExchangeError,
    Member,
    SenderKeyManager,
    WrappedKey,
)
from media.loopback_ice import IcePolicy
from media.sframe import SFrameError
from media.sfu import opus_codecs

log = logging.getLogger("haven.client")

RATE = 48000
FRAME = 960  # 20 ms
TIME_BASE = fractions.Fraction(1, RATE)
DOWNSTREAM_SLOTS = 15


def load_pcm(path: str | Path, seconds: float | None = None) -> np.ndarray:
    """Any file PyAV can read, as 48 kHz mono int16."""
    out = []
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    with av.open(str(path)) as container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise ValueError(f"{path} has no audio")
        for frame in container.decode(stream):
            for f in resampler.resample(frame):
                out.append(f.to_ndarray().reshape(-1))
        for f in resampler.resample(None):
            out.append(f.to_ndarray().reshape(-1))
    pcm = np.concatenate(out) if out else np.zeros(0, np.int16)
    if seconds is not None:
        pcm = pcm[: int(seconds * RATE)]
    return pcm.astype(np.int16)


class OpusEncoder:
    def __init__(self, bitrate: int = 32000):
        self.ctx = av.CodecContext.create("libopus", "w")
        self.ctx.sample_rate = RATE
        self.ctx.layout = "mono"
        self.ctx.format = "s16"
        self.ctx.bit_rate = bitrate
        self.ctx.time_base = TIME_BASE
        self.pts = 0

    def encode(self, pcm20ms: np.ndarray) -> list[bytes]:
        frame = av.AudioFrame.from_ndarray(pcm20ms.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.pts
        frame.time_base = TIME_BASE
        self.pts += FRAME
        return [bytes(p) for p in self.ctx.encode(frame)]


class EncryptedOpusTrack(MediaStreamTrack):
    """Paced 20 ms Opus packets of ``pcm`` (then silence), each SFrame-encrypted by ``encrypt``."""

    kind = "audio"

    def __init__(self, pcm: np.ndarray | None, encrypt: Callable[[bytes], bytes]):
        super().__init__()
        self.pcm = pcm if pcm is not None else np.zeros(0, np.int16)
        self.encrypt = encrypt
        self.encoder = OpusEncoder()
        self.sent = 0
        self._t0: float | None = None
        self._i = 0

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        delay = self._t0 + self._i * FRAME / RATE - now
        if delay > 0:
            await asyncio.sleep(delay)
        start = self._i * FRAME
        chunk = self.pcm[start : start + FRAME]
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.int16)])
        payloads = self.encoder.encode(chunk)
        data = payloads[0] if payloads else b""
        packet = av.Packet(self.encrypt(data))
        packet.pts = self._i * FRAME
        packet.time_base = TIME_BASE
        self._i += 1
        self.sent += 1
        return packet


class Mixer:
    """Decoded voices mixed on the client, placed on the call's timeline by arrival."""

    def __init__(self, t0: float):
        self.t0 = t0
        self.buffer = np.zeros(RATE * 10, np.float32)
        self.next_pos: dict[str, int] = {}
        self.length = 0

    def add(self, source: str, pcm: np.ndarray, arrival: float) -> None:
        arrival_pos = int((arrival - self.t0) * RATE)
        pos = self.next_pos.get(source)
        if pos is None or abs(arrival_pos - pos) > RATE // 10:
            pos = max(arrival_pos, 0)
        end = pos + len(pcm)
        if end > len(self.buffer):
            grown = np.zeros(max(end, 2 * len(self.buffer)), np.float32)
            grown[: len(self.buffer)] = self.buffer
            self.buffer = grown
        self.buffer[pos:end] += pcm
        self.next_pos[source] = end
        self.length = max(self.length, end)

    def pcm16(self, until: float | None = None) -> np.ndarray:
        n = self.length if until is None else max(self.length, int((until - self.t0) * RATE))
        out = self.buffer[:n] if n <= len(self.buffer) else np.concatenate(
            [self.buffer, np.zeros(n - len(self.buffer), np.float32)])
        return np.clip(out, -32768, 32767).astype(np.int16)


@dataclass
class CallSummary:
    frames_sent: int = 0
    frames_received: int = 0
    frames_failed: int = 0
    security_code: str = ""
    members: int = 0
    ended: str | None = None

    def line(self) -> str:
        text = (f"frames sent {self.frames_sent}, received {self.frames_received}, "
                f"failed to decrypt {self.frames_failed}")
        if self.ended:
            text += f"; session ended ({self.ended})"
        return text


@dataclass
class SlotStats:
    participant_id: str | None = None
    received: int = 0
    failed: int = 0
    decoder: av.CodecContext | None = None


def _ice_for(join: sig.JoinUrl) -> IcePolicy:
    if join.host in ("127.0.0.1", "localhost"):
        return IcePolicy.loopback()
    return IcePolicy.default()


class VoiceClient:
    def __init__(
        self,
        join_url: str,
        identity: IdentityKeys,
        *,
        send_pcm: np.ndarray | None = None,
        display_name: str | None = None,
        ice: IcePolicy | None = None,
        on_message: Callable[[str, str], None] | None = None,
    ):
        self.join = sig.parse_join_url(join_url)
        self.identity = identity
        self.send_pcm = send_pcm
        self.display_name = display_name
        self.ice = ice or _ice_for(self.join)
        self.on_message = on_message  # ("in"|"out", raw text): for tests and diagnostics
        self.summary = CallSummary()
        self.manager: SenderKeyManager | None = None
        self.participant_id = ""
        self.room_role = "member"
        self.members: dict[str, sig.MemberInfo] = {}
        self.slots: dict[str, SlotStats] = {}
        self.mixer = Mixer(time.monotonic())
        self.security_code = ""  # shown only once the commit-then-reveal round completes
        self.code_round: SecurityCodeRound | None = None
        self.joined = asyncio.Event()
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pc = None
        self._track: EncryptedOpusTrack | None = None
        self._reader: asyncio.Task | None = None
        self.closed_at: float | None = None

    # --- signaling ----------------------------------------------------------------------

    async def _send(self, message: sig.Message) -> None:
        text = message.to_json()
        if self.on_message:
            self.on_message("out", text)
        await self._ws.send_str(text)

    async def _send_keys(self, blobs: list[WrappedKey]) -> None:
        if blobs:
            await self._send(sig.Keys(tuple(
                sig.KeyDelivery(b.recipient_participant_id, b.to_dict()) for b in blobs)))

    def _member(self, info: sig.MemberInfo) -> Member:
        return Member(info.participant_id, info.sender_id, IdentityCard.from_dict(info.identity))

    async def _new_code_round(self, epoch: int) -> None:
        """Membership changed: a new commit-then-reveal round for the security code."""
        cards = {pid: IdentityCard.from_dict(m.identity) for pid, m in self.members.items()}
        self.code_round = SecurityCodeRound(self.join.room_id, epoch, self.participant_id,
                                            self.identity.card(), cards)
        self.security_code = ""
        self.summary.members = len(self.members) + 1
        await self._send(sig.CodeCommit(epoch, self.code_round.commit_message()))
        await self._advance_code_round()

    async def _advance_code_round(self) -> None:
        r = self.code_round
        if r is None:
            return
        if r.ready_to_reveal:
            await self._send(sig.CodeReveal(r.epoch, r.reveal_message()))
        code = r.code
        if code is not None:
            self.security_code = code
            self.summary.security_code = code

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.join.signaling_url, heartbeat=5)
        await self._send(sig.Join(self.join.room_id, self.join.token, self.identity.card().to_dict(),
                                  self.display_name))
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())
        await asyncio.wait_for(self.joined.wait(), 15)
        await self._negotiate()

    async def _read_loop(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                if self.on_message:
                    self.on_message("in", msg.data)
                try:
                    message = sig.parse_server_message(msg.data)
                except sig.ProtocolError as exc:
                    log.warning("ignoring a malformed server message: %s", exc.code)
                    continue
                try:
                    await self._handle(message)
                except (KeyExchangeError, ValueError) as exc:
                    # A bad key blob from one member must not end the call for us.
                    log.warning("key exchange problem: %s", exc)
        finally:
            self.ended.set()
            self.joined.set()

    async def _handle(self, message: sig.Message) -> None:
        if isinstance(message, sig.Joined):
            self.participant_id = message.participant_id
            self.room_role = message.room_role
            self.manager = SenderKeyManager(message.room_id, self.identity,
                                            message.participant_id, message.sender_id)
            self.members = {m.participant_id: m for m in message.members}
            await self._send_keys(self.manager.start([self._member(m) for m in message.members]))
            await self._new_code_round(message.epoch)
            self.joined.set()
        elif isinstance(message, sig.MemberJoined):
            self.members[message.member.participant_id] = message.member
            await self._send_keys(self.manager.member_joined(self._member(message.member)))
            await self._new_code_round(message.epoch)
        elif isinstance(message, sig.MemberLeft):
            self.members.pop(message.participant_id, None)
            await self._send_keys(self.manager.member_left(message.participant_id))
            await self._new_code_round(message.epoch)
        elif isinstance(message, sig.CodeCommitFrom | sig.CodeRevealFrom):
            r = self.code_round
            if r is None or message.epoch != r.epoch:
                return  # a round that membership has already moved past
            try:
                if isinstance(message, sig.CodeCommitFrom):
                    r.on_commit(message.sender, message.commitment)
                else:
                    r.on_reveal(message.sender, message.contribution)
            except CodeRoundError:
                self.security_code = ""
                self.summary.security_code = "MISMATCH"
                log.warning("security code check failed: %s cheated in the commit round",
                            message.sender)
                return
            await self._advance_code_round()
        elif isinstance(message, sig.KeyFrom):
            self.manager.accept(WrappedKey.from_dict(message.blob))
        elif isinstance(message, sig.Answer):
            await self._pc.setRemoteDescription(RTCSessionDescription(message.sdp, "answer"))
        elif isinstance(message, sig.Slots):
            for s in message.slots:
                stats = self.slots.setdefault(s.mid, SlotStats())
                if stats.participant_id != s.participant_id:
                    stats.participant_id = s.participant_id
                    stats.decoder = None  # a new voice on this slot: a fresh decoder
        elif isinstance(message, sig.Muted):
            if message.participant_id in self.members:
                m = self.members[message.participant_id]
                self.members[message.participant_id] = dataclasses.replace(m, muted=message.muted)
        elif isinstance(message, sig.Ended):
            if not self.ended.is_set():
                self.summary.ended = message.reason
            self.ended.set()
        elif isinstance(message, sig.Error):
            log.warning("server error %s: %s", message.code, message.message)
            if message.fatal and not self.ended.is_set():
                self.summary.ended = message.code
                self.ended.set()

    # --- media --------------------------------------------------------------------------

    def _encrypt(self, frame: bytes) -> bytes:
        return self.manager.sender.encrypt(frame) if frame else frame

    async def _negotiate(self) -> None:
        if self.ended.is_set():
            raise ConnectionError(f"could not join: {self.summary.ended}")
        with self.ice.gathering():
            self._pc = self.ice.new_peer_connection()
            self._track = EncryptedOpusTrack(self.send_pcm, self._encrypt)
            up = self._pc.addTransceiver(self._track, direction="sendonly")
            up.setCodecPreferences(opus_codecs())
            for _ in range(DOWNSTREAM_SLOTS):
                t = self._pc.addTransceiver("audio", direction="recvonly")
                t.setCodecPreferences(opus_codecs())
            await self._pc.setLocalDescription(await self._pc.createOffer())
        self.ice.guard(up)
        for t in self._pc.getTransceivers()[1:]:
            t.receiver._handle_rtp_packet = self._receiver_hook(t.mid)

        @self._pc.on("connectionstatechange")
        def _state() -> None:
            if self._pc.connectionState == "connected":
                self.connected.set()

        await self._send(sig.Offer(self._pc.localDescription.sdp))

    def _receiver_hook(self, mid: str):
        async def handle(packet, arrival_time_ms: int) -> None:
            self.on_payload(mid, packet.payload)

        return handle

    def on_payload(self, mid: str, payload: bytes) -> None:
        """One received RTP payload: decrypt, then decode and mix; failures are counted."""
        stats = self.slots.setdefault(mid, SlotStats())
        if not payload:
            return
        try:
            plain = self.manager.receiver.decrypt(payload)
        except SFrameError:
            stats.failed += 1
            self.summary.frames_failed += 1
            return
        stats.received += 1
        self.summary.frames_received += 1
        if not plain:
            return  # DTX: nothing to decode
        if stats.decoder is None:
            stats.decoder = av.CodecContext.create("libopus", "r")
            stats.decoder.sample_rate = RATE
            stats.decoder.layout = "mono"
        try:
            frames = stats.decoder.decode(av.Packet(plain))
        except av.FFmpegError:
            return
        for f in frames:
            pcm = f.to_ndarray().astype(np.float32)
            if pcm.ndim == 2 and pcm.shape[0] > 1:
                pcm = pcm.mean(axis=0)
            pcm = pcm.reshape(-1)
            if f.format.name.startswith("flt"):
                pcm = pcm * 32767.0
            self.mixer.add(mid, pcm, time.monotonic())

    # --- the whole call -----------------------------------------------------------------

    async def run(self, seconds: float) -> CallSummary:
        await self.start()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.ended.wait(), seconds)
        await self.close()
        return self.summary

    async def leave(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._send(sig.Leave())

    async def close(self) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()
        if self._track is not None:
            self.summary.frames_sent = self._track.sent
        await self.leave()
        if self._pc is not None:
            await self._pc.close()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 2)
        if self._session is not None:
            await self._session.close()

    def write_wav(self, path: str | Path) -> None:
        pcm = self.mixer.pcm16(until=self.closed_at)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm.tobytes())

