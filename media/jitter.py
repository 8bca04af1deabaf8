"""A small receive buffer for one incoming voice: puts decrypted Opus frames back in RTP
sequence order and fills every gap, so the audio a client plays or records is continuous.

Packets that arrive in order are decoded at once (no added delay). When one is missing,
the buffer waits for up to ``depth`` newer packets (``depth`` x 20 ms) for it, then gives
the gap up and fills it, frame by frame:

* from the next packet's in-band FEC data, when that packet is here and carries it
  (Opus ``useinbandfec=1``; a single loss is then recovered almost exactly);
* otherwise with libopus's packet-loss concealment (PLC), for up to ``max_plc`` frames,
  then with silence (a long outage is not worth guessing).

A late packet (its slot already filled) is dropped. A jump of more than ``max_gap`` frames
(the sender restarted, a new stream) resets the buffer instead of concealing.

    buf = VoiceBuffer()
    for frame in buf.push(rtp_seq, opus_payload):
        play(frame)            # int16 mono 48 kHz, 20 ms per frame
    buf.stats                  # decoded, recovered, concealed, late, ...
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .opus import FRAME, OpusDecoder, packet_has_fec, packet_samples


@dataclass
class BufferStats:
    decoded: int = 0  # frames decoded from their own packet
    recovered: int = 0  # lost frames rebuilt from the next packet's FEC data
    concealed: int = 0  # lost frames guessed (PLC) or filled with silence
    late: int = 0  # packets that came after their slot was filled (dropped)
    duplicates: int = 0
    resets: int = 0
    undecodable: int = 0

    @property
    def frames(self) -> int:
        return self.decoded + self.recovered + self.concealed

    def to_dict(self) -> dict:
        return {**asdict(self), "frames": self.frames}


class VoiceBuffer:
    def __init__(self, *, depth: int = 2, max_plc: int = 5, max_gap: int = 50,
                 fec: bool = True) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1 (FEC needs the next packet)")
        self.depth = depth
        self.max_plc = max_plc
        self.max_gap = max_gap
        self.fec = fec
        self.decoder = OpusDecoder()
        self.stats = BufferStats()
        self._pending: dict[int, bytes] = {}
        self._next: int | None = None  # extended sequence number of the next frame to play
        self._frame = FRAME
        self._run = 0  # consecutive concealed frames

    def _extend(self, seq: int) -> int:
        """16-bit RTP sequence number -> extended, nearest to the next expected one."""
        if self._next is None:
            return seq
        base = self._next
        ext = (base & ~0xFFFF) | (seq & 0xFFFF)
        if ext - base > 0x8000:
            ext -= 0x10000
        elif base - ext > 0x8000:
            ext += 0x10000
        return ext

    def push(self, seq: int, payload: bytes) -> list[np.ndarray]:
        """One decrypted packet; returns the frames now ready to play, in order."""
        ext = self._extend(seq)
        if self._next is None:
            self._next = ext
        if ext < self._next:
            self.stats.late += 1
            return []
        if ext in self._pending:
            self.stats.duplicates += 1
            return []
        if ext - self._next > self.max_gap:
            self.stats.resets += 1
            self._pending.clear()
            self._next = ext
        self._pending[ext] = payload
        return self._drain(final=False)

    def flush(self) -> list[np.ndarray]:
        """Everything still held (the stream ended): gaps before held packets are filled."""
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        while self._pending:
            nxt = self._next
            if nxt in self._pending:
                out.append(self._decode(self._pending.pop(nxt)))
            elif final or max(self._pending) - nxt >= self.depth:
                out.append(self._fill(self._pending.get(nxt + 1)))
            else:
                break
            self._next = nxt + 1
        return out

    def _decode(self, payload: bytes) -> np.ndarray:
        self._run = 0
        if not payload:  # DTX / nothing to say
            self.stats.decoded += 1
            return np.zeros(self._frame, np.int16)
        try:
            pcm = self.decoder.decode(payload)
        except ValueError:
            self.stats.undecodable += 1
            return self._conceal()
        self.stats.decoded += 1
        if len(pcm):
            self._frame = len(pcm)
        return pcm

    def _fill(self, next_payload: bytes | None) -> np.ndarray:
        if (self.fec and next_payload and packet_has_fec(next_payload) is not False
                and packet_samples(next_payload) >= self._frame):
            try:
                pcm = self.decoder.recover(next_payload, self._frame)
                self.stats.recovered += 1
                self._run = 0
                return pcm
            except ValueError:
                pass
        return self._conceal()

    def _conceal(self) -> np.ndarray:
        self.stats.concealed += 1
        self._run += 1
        if self._run > self.max_plc:
            return np.zeros(self._frame, np.int16)
        try:
            return self.decoder.conceal(self._frame)
        except ValueError:
            return np.zeros(self._frame, np.int16)
