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

from media import aiortc_hooks as hooks
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
from media.ice import LOOPBACK, IcePolicy, local_addresses
from media.ice_choice import choose_ice_servers
from media.jitter import VoiceBuffer
from media.opus import FRAME, RATE, TIME_BASE, OpusEncoder
from media.sframe import SFrameError, UnknownKeyError
from media.sfu import opus_codecs, opus_fec_negotiated, with_opus_fec

log = logging.getLogger("haven.client")

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


class Speaker:
    """What this client says: ``pcm`` (then silence) as paced 20 ms Opus packets, on the
    call's own clock. It outlives peer connections: after a reconnect it carries on where the
    clock is, like a live microphone (what fell into the outage is skipped, not bunched)."""

    def __init__(self, pcm: np.ndarray | None, *, fec: bool = True):
        self.pcm = pcm if pcm is not None else np.zeros(0, np.int16)
        self.encoder = OpusEncoder(fec=fec)
        self.fec = fec
        self.sent = 0
        self.skipped = 0
        self._t0: float | None = None
        self._i = 0

    def set_fec(self, fec: bool) -> None:
        """Follow what the answer negotiated (``useinbandfec``), before the first frame."""
        if fec != self.fec and self.sent == 0:
            self.encoder = OpusEncoder(fec=fec)
            self.fec = fec

    async def next_payload(self) -> bytes:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + self._i * FRAME / RATE
        if now - due > 0.2:  # far behind (a reconnect): jump to the clock
            behind = int((now - self._t0) * RATE / FRAME) - self._i
            self.skipped += behind
            self._i += behind
            due = self._t0 + self._i * FRAME / RATE
        if due > now:
            await asyncio.sleep(due - now)
        start = self._i * FRAME
        chunk = self.pcm[start : start + FRAME]
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.int16)])
        payloads = self.encoder.encode(chunk)
        self._i += 1
        self.sent += 1
        return payloads[0] if payloads else b""


class EncryptedOpusTrack(MediaStreamTrack):
    """The speaker's packets, each SFrame-encrypted by ``encrypt``, for one peer connection."""

    kind = "audio"

    def __init__(self, speaker: Speaker, encrypt: Callable[[bytes], bytes]):
        super().__init__()
        self.speaker = speaker
        self.encrypt = encrypt

    @property
    def sent(self) -> int:
        return self.speaker.sent

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        i = self.speaker._i
        data = await self.speaker.next_payload()
        packet = av.Packet(self.encrypt(data))
        packet.pts = i * FRAME
        packet.time_base = TIME_BASE
        return packet


class Mixer:
    """Decoded voices mixed on the client. Each voice's frames follow each other without a
    gap (its VoiceBuffer already put them in order and filled losses); a voice is placed
    by arrival time when it starts, and again only when it drifts more than half a second
    from where it should be (a pause, a reconnect), so network jitter or a busy machine
    never punches holes into the recording."""

    MAX_DRIFT = RATE // 2

    def __init__(self, t0: float):
        self.t0 = t0
        self.buffer = np.zeros(RATE * 10, np.float32)
        self.next_pos: dict[str, int] = {}
        self.length = 0

    def add(self, source: str, pcm: np.ndarray, arrival: float) -> None:
        arrival_pos = int((arrival - self.t0) * RATE)
        pos = self.next_pos.get(source)
        if pos is None or abs(arrival_pos - pos) > self.MAX_DRIFT:
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
    frames_recovered: int = 0  # lost, rebuilt from the next packet's FEC data
    frames_concealed: int = 0  # lost, guessed (PLC) or silence
    frames_without_key: int = 0  # its sender's key never came (it left, or never sent one)
    reconnects: int = 0
    security_code: str = ""
    members: int = 0
    ended: str | None = None

    def line(self) -> str:
        text = (f"frames sent {self.frames_sent}, received {self.frames_received}, "
                f"failed to decrypt {self.frames_failed}")
        if self.frames_recovered or self.frames_concealed:
            text += (f", lost {self.frames_recovered + self.frames_concealed} "
                     f"({self.frames_recovered} recovered by FEC)")
        if self.frames_without_key:
            text += f", {self.frames_without_key} arrived without their key"
        if self.reconnects:
            text += f", reconnected {self.reconnects}x"
        if self.ended:
            text += f"; session ended ({self.ended})"
        return text


@dataclass
class SlotStats:
    participant_id: str | None = None
    received: int = 0
    failed: int = 0
    buffer: VoiceBuffer | None = None
    seq: int = 0  # last sequence number (when a payload comes without one)
    waiting: list = dataclasses.field(default_factory=list)  # (since, seq, frame) keyless


@dataclass
class Recovery:
    """One loss of the connection and what it took to get audio back (monotonic seconds)."""

    reason: str
    detected_at: float
    reconnected_at: float | None = None
    audio_at: float | None = None
    resumed: bool | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# How the client notices a broken network path (a new address, a NAT rebinding, Wi-Fi gone):
WATCH_INTERVAL_S = 0.5  # how often the connection is looked at
CONNECT_TIMEOUT_S = 10.0  # ICE + DTLS must complete within this after the offer
SILENCE_TIMEOUT_S = 3.0  # nothing at all received (the SFU sends RTCP every second or so)
RECOVER_FOR_S = 60.0  # keep trying to get back this long, then the call is over
KEY_WAIT_S = 1.0  # a frame under a key not yet received waits this long for it


class VoiceClient:
    def __init__(
        self,
        join_url: str,
        identity: IdentityKeys,
        *,
        send_pcm: np.ndarray | None = None,
        display_name: str | None = None,
        ice: IcePolicy | None = None,
        fec: bool = True,
        on_message: Callable[[str, str], None] | None = None,
    ):
        self.join = sig.parse_join_url(join_url)
        self.identity = identity
        self.send_pcm = send_pcm
        self.display_name = display_name
        self.ice_override = ice  # None: IcePolicy.client() with the servers from `joined`
        self.ice: IcePolicy | None = ice
        self.fec = fec
        self.on_message = on_message  # ("in"|"out", raw text): for tests and diagnostics
        self.summary = CallSummary()
        self.manager: SenderKeyManager | None = None
        self.participant_id = ""
        self.sender_id = -1
        self.room_role = "member"
        self.epoch = -1
        self.members: dict[str, sig.MemberInfo] = {}
        self.slots: dict[str, SlotStats] = {}
        self.mixer = Mixer(time.monotonic())
        self.security_code = ""  # shown only once the commit-then-reveal round completes
        self.code_round: SecurityCodeRound | None = None
        self.ice_servers: tuple[sig.IceServer, ...] = ()
        self.speaker = Speaker(send_pcm, fec=fec)
        self.joined = asyncio.Event()
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self.started_at: float | None = None
        self.first_audio_at: float | None = None
        self.recoveries: list[Recovery] = []
        self.buffers_closed: list[dict] = []  # counters of voice buffers already replaced
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pc = None
        self._track: EncryptedOpusTrack | None = None
        self._reader: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None
        self._recovery: asyncio.Task | None = None
        self._join_result: asyncio.Future | None = None
        self._closing = False
        self._turn_failures = 0
        self.closed_at: float | None = None

    # --- signaling ----------------------------------------------------------------------

    async def _send(self, message: sig.Message) -> None:
        text = message.to_json()
        if self.on_message:
            self.on_message("out", text)
        ws = self._ws
        if ws is None or ws.closed:  # dropped under us (a reconnect is under way)
            raise ConnectionError("the signaling connection is closed")
        await ws.send_str(text)

    async def _send_keys(self, blobs: list[WrappedKey]) -> None:
        if blobs:
            await self._send(sig.Keys(tuple(
                sig.KeyDelivery(b.recipient_participant_id, b.to_dict()) for b in blobs)))

    def _member(self, info: sig.MemberInfo) -> Member:
        return Member(info.participant_id, info.sender_id, IdentityCard.from_dict(info.identity))

    async def _new_code_round(self, epoch: int) -> None:
        """Membership changed: a new commit-then-reveal round for the security code."""
        self.epoch = epoch
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
        """Join the room and start media; raises ConnectionError if the server refuses."""
        self.started_at = time.monotonic()
        await self._connect(resume=False)

    async def _connect(self, *, resume: bool) -> None:
        """One signaling connection: join (or resume our place), then a new peer connection."""
        loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession()
        self._ws = await asyncio.wait_for(
            self._session.ws_connect(self.join.signaling_url, heartbeat=5), 10)
        self._join_result = join_result = loop.create_future()
        await self._send(sig.Join(self.join.room_id, self.join.token,
                                  self.identity.card().to_dict(), self.display_name,
                                  resume_epoch=self.epoch if resume and self.manager else None))
        self._reader = loop.create_task(self._read_loop(self._ws, join_result))
        await asyncio.wait_for(asyncio.shield(join_result), 15)
        if self.ended.is_set() or not join_result.result():
            raise ConnectionError(f"could not join: {self.summary.ended or 'connection closed'}")
        await self._negotiate()

    async def _read_loop(self, ws, join_result: asyncio.Future) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                if ws is not self._ws:
                    return  # an old connection, replaced after a network change
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
                except ConnectionError:
                    return  # this connection was dropped while we answered on it
        finally:
            if not join_result.done():
                join_result.set_result(False)
            if ws is self._ws and not self._closing and not self.ended.is_set():
                if join_result.result():
                    self._start_recovery("the signaling connection was lost")
                else:
                    self.ended.set()
            self.joined.set()

    async def _handle(self, message: sig.Message) -> None:
        if isinstance(message, sig.Joined):
            self.ice_servers = message.ice_servers
            self.room_role = message.room_role
            if (message.resumed and self.manager is not None
                    and message.participant_id == self.participant_id
                    and message.sender_id == self.sender_id):
                # Our place was kept: same keys, same epoch, same code. Nobody re-keys.
                self.members = {m.participant_id: m for m in message.members}
                if self.recoveries:
                    self.recoveries[-1].resumed = True
            else:
                if self.recoveries and self.recoveries[-1].resumed is None:
                    self.recoveries[-1].resumed = False
                self.participant_id = message.participant_id
                self.sender_id = message.sender_id
                self.manager = SenderKeyManager(message.room_id, self.identity,
                                                message.participant_id, message.sender_id)
                self.members = {m.participant_id: m for m in message.members}
                await self._send_keys(self.manager.start([self._member(m) for m in message.members]))
                await self._new_code_round(message.epoch)
            if self._join_result is not None and not self._join_result.done():
                self._join_result.set_result(True)
            self.joined.set()
        elif isinstance(message, sig.MemberJoined):
            self.members[message.member.participant_id] = message.member
            await self._send_keys(self.manager.member_joined(self._member(message.member)))
            await self._new_code_round(message.epoch)
        elif isinstance(message, sig.MemberLeft):
            self.members.pop(message.participant_id, None)
            await self._send_keys(self.manager.member_left(message.participant_id))
            await self._new_code_round(message.epoch)
        elif isinstance(message, sig.Moderation) and self.manager is not None:
            # a group meeting: our key goes only to those in our space (side rooms)
            await self._send_keys(self.manager.set_audience(self.audience_in(message.state)))
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
            self._retry_waiting()
        elif isinstance(message, sig.Answer):
            self.speaker.set_fec(self.fec and opus_fec_negotiated(message.sdp, "0"))
            await self._pc.setRemoteDescription(RTCSessionDescription(
                self.ice.filter_remote_sdp(message.sdp), "answer"))
        elif isinstance(message, sig.Slots):
            for s in message.slots:
                stats = self.slots.setdefault(s.mid, SlotStats())
                if stats.participant_id != s.participant_id:
                    stats.participant_id = s.participant_id
                    self._retire_buffer(stats)  # a new voice on this slot: a fresh decoder
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

    def audience_in(self, state: dict) -> set[str]:
        """Who hears us in a group meeting's ``moderation`` state: the other side of our
        side room, or (in the group) everyone not stepped out."""
        me = self.participant_id
        for side in state.get("side_rooms") or ():
            if me in (side.get("facilitator"), side.get("member")):
                return {side["member"] if side["facilitator"] == me else side["facilitator"]}
        return set(self.members) - set(state.get("stepped_out") or ())

    # --- media --------------------------------------------------------------------------

    def _encrypt(self, frame: bytes) -> bytes:
        return self.manager.sender.encrypt(frame) if frame else frame

    async def _ice_policy(self) -> IcePolicy:
        if self.ice_override is not None:
            return self.ice_override
        policy = IcePolicy.client(self.join.host)
        if policy.loopback_only or not self.ice_servers:
            return policy
        servers = await choose_ice_servers(self.ice_servers, skip=self._turn_failures)
        return policy.with_ice_servers(servers)

    async def _negotiate(self) -> None:
        if self.ended.is_set():
            raise ConnectionError(f"could not join: {self.summary.ended}")
        self.ice = await self._ice_policy()
        for stats in self.slots.values():
            self._retire_buffer(stats)
            self.summary.frames_without_key += len(stats.waiting)
        self.slots = {}  # new streams: new sequence numbers, fresh decoders
        self.connected.clear()
        pc = self.ice.new_peer_connection()
        self._pc = pc
        with self.ice.gathering():
            self._track = EncryptedOpusTrack(self.speaker, self._encrypt)
            up = pc.addTransceiver(self._track, direction="sendonly")
            up.setCodecPreferences(opus_codecs())
            for _ in range(DOWNSTREAM_SLOTS):
                t = pc.addTransceiver("audio", direction="recvonly")
                t.setCodecPreferences(opus_codecs())
            await pc.setLocalDescription(await pc.createOffer())
        self.ice.guard(up)
        for t in pc.getTransceivers()[1:]:
            t.receiver._handle_rtp_packet = self._receiver_hook(t.mid)

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc is self._pc and pc.connectionState == "connected":
                self.connected.set()

        await self._send(sig.Offer(with_opus_fec(pc.localDescription.sdp)))
        self._watcher = asyncio.get_running_loop().create_task(self._watch(pc))

    def _receiver_hook(self, mid: str):
        async def handle(packet, arrival_time_ms: int) -> None:
            self.on_payload(mid, packet.payload, packet.sequence_number)

        return handle

    def on_payload(self, mid: str, payload: bytes, seq: int | None = None) -> None:
        """One received RTP payload: decrypt, then put in order (filling losses), decode and
        mix; failures are counted. ``seq`` is the RTP sequence number (None: in order).

        A frame under a key we do not hold yet (the media path is often faster than the
        wrapped key, which goes through the server) waits up to KEY_WAIT_S for that key; one
        whose key never comes (its sender left, or never sent it) is counted apart from
        frames that fail to decrypt (forged, replayed, or under a wrong key)."""
        stats = self.slots.setdefault(mid, SlotStats())
        if not payload:
            return
        if seq is None:  # no RTP header at hand: arrival order is sequence order
            seq = (stats.seq + 1) & 0xFFFF
        stats.seq = seq
        try:
            plain = self.manager.receiver.decrypt(payload)
        except UnknownKeyError:
            if len(stats.waiting) >= 50:
                stats.waiting.pop(0)
                self.summary.frames_without_key += 1
            stats.waiting.append((time.monotonic(), seq, payload))
            return
        except SFrameError:
            stats.failed += 1
            self.summary.frames_failed += 1
            return
        self._play(mid, stats, seq, plain)

    def _retry_waiting(self) -> None:
        """A key arrived: frames that were waiting for one get another chance, in order."""
        now = time.monotonic()
        for mid, stats in list(self.slots.items()):
            waiting, stats.waiting = stats.waiting, []
            for since, seq, payload in waiting:
                try:
                    plain = self.manager.receiver.decrypt(payload)
                except UnknownKeyError:
                    if now - since < KEY_WAIT_S:
                        stats.waiting.append((since, seq, payload))
                    else:
                        self.summary.frames_without_key += 1
                    continue
                except SFrameError:
                    stats.failed += 1
                    self.summary.frames_failed += 1
                    continue
                self._play(mid, stats, seq, plain)

    def _play(self, mid: str, stats: SlotStats, seq: int, plain: bytes) -> None:
        stats.received += 1
        self.summary.frames_received += 1
        now = time.monotonic()
        if plain:
            if self.first_audio_at is None:
                self.first_audio_at = now
            rec = self.recoveries[-1] if self.recoveries else None
            if rec is not None and rec.reconnected_at is not None and rec.audio_at is None:
                rec.audio_at = now  # the first frame on the new connection
        if stats.buffer is None:
            stats.buffer = VoiceBuffer(fec=self.fec)
        buf = stats.buffer
        before_r, before_c = buf.stats.recovered, buf.stats.concealed
        frames = buf.push(seq, plain)
        self.summary.frames_recovered += buf.stats.recovered - before_r
        self.summary.frames_concealed += buf.stats.concealed - before_c
        if frames:
            pcm = np.concatenate(frames).astype(np.float32)
            # the last frame is this packet's; earlier ones (filled gaps) were due before it
            self.mixer.add(mid, pcm, now - (len(pcm) - len(frames[-1])) / RATE)

    def _retire_buffer(self, stats: SlotStats) -> None:
        if stats.buffer is not None:
            self.buffers_closed.append(stats.buffer.stats.to_dict())
            stats.buffer = None

    def receive_stats(self) -> dict:
        """The voice buffers' counters (decoded, recovered, concealed, ...), summed over
        the whole call."""
        total: dict[str, int] = {}
        live = [s.buffer.stats.to_dict() for s in self.slots.values() if s.buffer is not None]
        for counters in self.buffers_closed + live:
            for k, v in counters.items():
                total[k] = total.get(k, 0) + v
        return total

    # --- noticing a broken path, and getting back -----------------------------------------

    async def _watch(self, pc) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        last_rx, last_change = -1, loop.time()
        try:
            while pc is self._pc and not self.ended.is_set() and not self._closing:
                await asyncio.sleep(WATCH_INTERVAL_S)
                if pc is not self._pc:
                    return
                state = pc.connectionState
                now = loop.time()
                if state in ("failed", "closed"):
                    return self._start_recovery(f"the media connection {state}")
                if state != "connected":
                    if now - started > CONNECT_TIMEOUT_S:
                        self._turn_failures += 1
                        return self._start_recovery("the media connection did not come up")
                    continue
                if self._local_address_gone(pc):
                    return self._start_recovery("this machine's network address changed")
                rx = await self._packets_received(pc)
                if rx != last_rx:
                    last_rx, last_change = rx, now
                elif now - last_change > SILENCE_TIMEOUT_S:
                    return self._start_recovery(
                        f"nothing received for {SILENCE_TIMEOUT_S:.0f} s")
        except Exception:
            log.exception("connection watch failed")

    def _local_address_gone(self, pc) -> bool:
        try:
            conn = hooks.ice_connection(hooks.dtls_transport(pc.getTransceivers()[0]))
            local = hooks.selected_local_candidate(conn)
        except (AttributeError, IndexError):
            return False
        if local is None or local.type != "host" or local.host == LOOPBACK:
            return False
        return local.host not in local_addresses()

    @staticmethod
    async def _packets_received(pc) -> int:
        report = await pc.getReceivers()[0].getStats()
        return sum(getattr(s, "packetsReceived", 0) for s in report.values()
                   if getattr(s, "type", "") == "transport")

    def _start_recovery(self, reason: str) -> None:
        if self._recovery is not None or self._closing or self.ended.is_set():
            return
        self._recovery = asyncio.get_running_loop().create_task(self._recover(reason))

    async def _recover(self, reason: str) -> None:
        loop = asyncio.get_running_loop()
        rec = Recovery(reason, time.monotonic())
        self.recoveries.append(rec)
        self.summary.reconnects += 1
        log.warning("connection lost (%s); reconnecting", reason)
        deadline = loop.time() + RECOVER_FOR_S
        delay = 0.25
        try:
            while not self._closing and not self.ended.is_set():
                await self._drop_transport()
                try:
                    await self._connect(resume=True)
                    rec.reconnected_at = time.monotonic()
                    return
                except (OSError, TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                    log.info("reconnect failed: %s", exc or exc.__class__.__name__)
                if self.ended.is_set() or loop.time() + delay > deadline:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)
            if not self.ended.is_set() and not self._closing:
                self.summary.ended = self.summary.ended or "connection_lost"
                self.ended.set()
        finally:
            self._recovery = None

    async def _drop_transport(self) -> None:
        """Forget the current signaling and media connections, without a `leave`."""
        pc, ws, session, reader, track, watcher = (self._pc, self._ws, self._session,
                                                   self._reader, self._track, self._watcher)
        self._pc = self._ws = self._session = self._reader = self._track = None
        self._watcher = None
        for task in (reader, watcher):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if track is not None:
            track.stop()
        if pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 3)
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1)
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()

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
        self._closing = True
        if self.closed_at is None:
            self.closed_at = time.monotonic()
        self.summary.frames_sent = self.speaker.sent
        for stats in self.slots.values():
            self.summary.frames_without_key += len(stats.waiting)
            stats.waiting = []
        for task in (self._recovery, self._watcher):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        # Stop talking before saying goodbye: the others forget our keys when they hear we
        # left, so frames still sent after `leave` (closing a peer connection takes a while)
        # would only fail to decrypt at their end.
        if self._track is not None:
            self._track.stop()
            await asyncio.sleep(0.06)
        await self.leave()
        if self._pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pc.close(), 5)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 2)
        if self._session is not None:
            await self._session.close()
        self.ended.set()

    def write_wav(self, path: str | Path) -> None:
        pcm = self.mixer.pcm16(until=self.closed_at)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm.tobytes())
