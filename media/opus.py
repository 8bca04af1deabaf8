"""Opus for the Python client: an encoder with in-band FEC, and a decoder that can recover a
lost frame from the next packet's FEC data or conceal it (packet-loss concealment).

Encoding goes through PyAV's libopus (``fec`` and ``packet_loss`` options). Decoding calls
libopus itself through ctypes, because FFmpeg's decoder offers neither FEC decoding
(``decode_fec=1``) nor concealment (``opus_decode`` with no data). The library is the one
PyAV ships (so encoder and decoder are the same libopus), or else the system's libopus0.

    dec = OpusDecoder()
    pcm = dec.decode(packet)              # int16 mono, 48 kHz
    pcm = dec.recover(next_packet, 960)   # the lost frame, from next_packet's FEC data
    pcm = dec.conceal(960)                # the lost frame, guessed (PLC)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fractions
import glob
import os
from functools import cache

import av
import numpy as np

RATE = 48000
FRAME = 960  # 20 ms
MAX_FRAME = 5760  # 120 ms, the longest Opus packet
TIME_BASE = fractions.Fraction(1, RATE)
EXPECTED_LOSS_PERCENT = 10  # what the encoder plans its FEC for


class OpusUnavailable(RuntimeError):
    pass


@cache
def libopus() -> ctypes.CDLL:
    """PyAV's bundled libopus, else the system's (libopus0)."""
    candidates = sorted(glob.glob(os.path.join(os.path.dirname(av.__file__), os.pardir,
                                               "av.libs", "libopus*.so*")))
    system = ctypes.util.find_library("opus")
    if system:
        candidates.append(system)
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int,
                                            ctypes.POINTER(ctypes.c_int)]
        lib.opus_decode.restype = ctypes.c_int
        lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                    ctypes.POINTER(ctypes.c_int16), ctypes.c_int, ctypes.c_int]
        lib.opus_decoder_destroy.restype = None
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_packet_get_nb_samples.restype = ctypes.c_int
        lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32,
                                                   ctypes.c_int32]
        if hasattr(lib, "opus_packet_has_lbrr"):
            lib.opus_packet_has_lbrr.restype = ctypes.c_int
            lib.opus_packet_has_lbrr.argtypes = [ctypes.c_char_p, ctypes.c_int32]
        return lib
    raise OpusUnavailable("no libopus found (PyAV's wheel or the libopus0 package)")


def packet_samples(packet: bytes) -> int:
    """Samples (48 kHz) in one Opus packet, or 0 if it is not a valid packet."""
    if not packet:
        return 0
    n = libopus().opus_packet_get_nb_samples(packet, len(packet), RATE)
    return n if n > 0 else 0


def packet_has_fec(packet: bytes) -> bool | None:
    """Whether the packet carries in-band FEC (LBRR) data; None if libopus cannot tell."""
    lib = libopus()
    if not packet or not hasattr(lib, "opus_packet_has_lbrr"):
        return None
    return lib.opus_packet_has_lbrr(packet, len(packet)) > 0


class OpusDecoder:
    """One mono 48 kHz libopus decoder (one per incoming voice)."""

    def __init__(self) -> None:
        self._lib = libopus()
        err = ctypes.c_int(0)
        self._dec = self._lib.opus_decoder_create(RATE, 1, ctypes.byref(err))
        if err.value != 0 or not self._dec:
            raise OpusUnavailable(f"opus_decoder_create failed ({err.value})")
        self._buf = (ctypes.c_int16 * MAX_FRAME)()

    def _run(self, data: bytes | None, frame_size: int, fec: int) -> np.ndarray:
        n = self._lib.opus_decode(self._dec, data, len(data) if data else 0, self._buf,
                                  min(frame_size, MAX_FRAME), fec)
        if n < 0:
            raise ValueError(f"opus_decode failed ({n})")
        return np.frombuffer(self._buf, dtype=np.int16, count=n).copy()

    def decode(self, packet: bytes) -> np.ndarray:
        return self._run(packet, MAX_FRAME, 0)

    def recover(self, next_packet: bytes, frame_size: int = FRAME) -> np.ndarray:
        """The frame before ``next_packet``, from its FEC data (PLC if it has none)."""
        return self._run(next_packet, frame_size, 1)

    def conceal(self, frame_size: int = FRAME) -> np.ndarray:
        return self._run(None, frame_size, 0)

    def close(self) -> None:
        if self._dec:
            self._lib.opus_decoder_destroy(self._dec)
            self._dec = None

    def __del__(self) -> None:
        self.close()


class OpusEncoder:
    """20 ms mono frames to Opus packets (PyAV's libopus), with in-band FEC if asked."""

    def __init__(self, bitrate: int = 32000, *, fec: bool = True,
                 expected_loss: int = EXPECTED_LOSS_PERCENT):
        self.ctx = av.CodecContext.create("libopus", "w")
        self.ctx.sample_rate = RATE
        self.ctx.layout = "mono"
        self.ctx.format = "s16"
        self.ctx.bit_rate = bitrate
        self.ctx.time_base = TIME_BASE
        self.fec = fec
        # libopus adds FEC only with FEC on *and* a non-zero expected loss
        self.ctx.options = {"fec": "1" if fec else "0",
                            "packet_loss": str(expected_loss if fec else 0)}
        self.pts = 0

    def encode(self, pcm20ms: np.ndarray) -> list[bytes]:
        frame = av.AudioFrame.from_ndarray(pcm20ms.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.pts
        frame.time_base = TIME_BASE
        self.pts += FRAME
        return [bytes(p) for p in self.ctx.encode(frame)]
