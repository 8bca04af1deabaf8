"""Helpers for voice tests: tones, spectra, an in-process Haven server with rooms."""

from __future__ import annotations

import base64
import wave
from pathlib import Path

import numpy as np
from aiohttp.test_utils import TestServer

from therapy import rooms
from therapy.storage import open_database
from web import appkeys
from web.app import create_app

from .conftest import test_config

RATE = 48000


def tone(freq: float, seconds: float = 8.0, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def write_wav(path: Path, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype(np.int16).tobytes())
    return path


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), np.int16)


def band_share(pcm: np.ndarray, freq: float, width: float = 25.0) -> float:
    """The share of the signal's spectral magnitude within ``freq`` ± ``width`` Hz."""
    x = pcm.astype(np.float64)
    if not len(x) or not np.any(x):
        return 0.0
    spec = np.abs(np.fft.rfft(x))
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(spec[(f > freq - width) & (f < freq + width)].sum() / spec.sum())


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


def key_forms(key: bytes) -> list[str]:
    """Every way a key could be written into a JSON message in the clear."""
    return [
        key.hex(), key.hex().upper(),
        base64.b64encode(key).decode().rstrip("="),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
    ]


class VoiceServer:
    """The real Haven app (aiohttp + the aiortc SFU) on a loopback port, in this process."""

    def __init__(self, data_dir: Path, **config):
        self.app = create_app(test_config(data_dir, **config))
        self.server = TestServer(self.app, host="127.0.0.1")

    async def __aenter__(self) -> VoiceServer:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.server.close()

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def hub(self):
        return self.app[appkeys.VOICE]

    def invite(self, count: int, name: str = "room") -> list[str]:
        db = open_database(self.app[appkeys.DATA_DIR].db_path)
        try:
            room_id = rooms.adhoc_room(db, name)
            return [
                rooms.join_url(self.base_url, room_id, rooms.issue_token(
                    db, room_id, f"Person {i}", room_role="host" if i == 0 else "member"))
                for i in range(count)
            ]
        finally:
            db.close()


def syllables(freq: float, seconds: float = 8.0, amplitude: int = 8000) -> np.ndarray:
    """A tone that comes and goes three times a second, like speech: Opus codes it as voice
    (SILK/hybrid), so in-band FEC is actually sent (a steady tone is coded as music)."""
    t = np.arange(int(RATE * seconds)) / RATE
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3 * t)
    return (amplitude * envelope * np.sin(2 * np.pi * freq * t)).astype(np.int16)
