"""Procedural ambient soundscapes: synthesised with numpy from a small recipe, encoded to
Opus in Ogg with PyAV, cached on disk.

* ``SoundscapeRecipe.from_dict(data)`` validates a recipe (plain JSON data: the environment
  definitions carry one each; this module knows nothing about environments).
* ``synthesize(recipe)`` returns float32 PCM, shape ``(channels, samples)``. Every layer is
  exactly periodic over the loop (noise is shaped in the frequency domain of the whole loop,
  modulations have whole numbers of cycles, bird calls wrap around the end), so the file
  loops without a seam.
* ``encode_opus(pcm, sample_rate, path)`` writes Ogg Opus bit-exactly (no random Ogg serial,
  no encoder tag), so the same recipe always gives the same bytes.
* ``ensure_soundscape(recipe, cache_dir, name)`` returns the cached file, making it once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

SYNTH_VERSION = 1
OPUS_FRAME = 960  # 20 ms at 48 kHz
LAYER_KINDS = ("surf", "wind", "leaves", "birds", "stream", "rain")
SAMPLE_RATES = (48000,)
PEAK = 0.5  # -6 dBFS: calm, with headroom for the codec


class RecipeError(ValueError):
    """A soundscape recipe is malformed; the message names the field."""


@dataclass(frozen=True)
class Layer:
    """One sound in the mix.

    * ``surf``: waves; ``period_s`` is the time between waves.
    * ``wind``: low broadband wind with gusts every ``period_s`` or so.
    * ``leaves``: rustling leaves, gusting with the same rhythm.
    * ``birds``: sparse calls, on average one every ``period_s``.
    * ``stream``: a gentle babbling brook (steady, bright).
    * ``rain``: soft rain heard from indoors: a steady patter that swells every ``period_s``
      or so, with sparse drops on the window.
    ``brightness`` (0..1) tilts the sound from dull to bright; ``gain`` is linear (0..1).
    """

    kind: str
    gain: float = 0.5
    period_s: float = 8.0
    brightness: float = 0.5
    pan: float = 0.0

    @classmethod
    def from_dict(cls, data: object, where: str = "layer") -> Layer:
        if not isinstance(data, dict):
            raise RecipeError(f"{where} must be an object")
        unknown = sorted(set(data) - {"kind", "gain", "period_s", "brightness", "pan"})
        if unknown:
            raise RecipeError(f"{where}.{unknown[0]} is not a known field")
        kind = data.get("kind")
        if kind not in LAYER_KINDS:
            raise RecipeError(f"{where}.kind must be one of {', '.join(LAYER_KINDS)}")
        values = {"kind": kind}
        for name, lo, hi in (
            ("gain", 0.0, 1.0),
            ("period_s", 0.5, 60.0),
            ("brightness", 0.0, 1.0),
            ("pan", -1.0, 1.0),
        ):
            if name in data:
                v = data[name]
                if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
                    raise RecipeError(f"{where}.{name} must be a number from {lo} to {hi}")
                values[name] = float(v)
        return cls(**values)


@dataclass(frozen=True)
class SoundscapeRecipe:
    seed: int
    layers: tuple[Layer, ...] = field(default_factory=tuple)
    duration_s: float = 40.0
    sample_rate: int = 48000
    channels: int = 2
    bitrate: int = 64000

    @classmethod
    def from_dict(cls, data: object, where: str = "soundscape") -> SoundscapeRecipe:
        if not isinstance(data, dict):
            raise RecipeError(f"{where} must be an object")
        allowed = {"seed", "layers", "duration_s", "sample_rate", "channels", "bitrate"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise RecipeError(f"{where}.{unknown[0]} is not a known field")
        seed = data.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise RecipeError(f"{where}.seed must be an integer from 0 to 2**32-1")
        layers = data.get("layers")
        if not isinstance(layers, list) or not 1 <= len(layers) <= 8:
            raise RecipeError(f"{where}.layers must be a list of 1 to 8 layers")
        duration = data.get("duration_s", 40.0)
        if (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not 5 <= duration <= 120
        ):
            raise RecipeError(f"{where}.duration_s must be from 5 to 120 seconds")
        rate = data.get("sample_rate", 48000)
        if rate not in SAMPLE_RATES:
            raise RecipeError(f"{where}.sample_rate must be 48000 (Opus)")
        channels = data.get("channels", 2)
        if channels not in (1, 2):
            raise RecipeError(f"{where}.channels must be 1 or 2")
        bitrate = data.get("bitrate", 64000)
        if (
            isinstance(bitrate, bool)
            or not isinstance(bitrate, int)
            or not 16000 <= bitrate <= 256000
        ):
            raise RecipeError(f"{where}.bitrate must be from 16000 to 256000")
        return cls(
            seed=seed,
            layers=tuple(Layer.from_dict(x, f"{where}.layers[{i}]") for i, x in enumerate(layers)),
            duration_s=float(duration),
            sample_rate=rate,
            channels=channels,
            bitrate=bitrate,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = [asdict(layer) for layer in self.layers]
        return d

    @property
    def samples(self) -> int:
        """Loop length in samples: a whole number of 20 ms Opus frames."""
        frames = max(1, round(self.duration_s * self.sample_rate / OPUS_FRAME))
        return frames * OPUS_FRAME

    def cache_key(self) -> str:
        import av

        ident = {
            "recipe": self.to_dict(),
            "synth": SYNTH_VERSION,
            "av": av.__version__,
            "numpy": np.__version__,
        }
        blob = json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:24]


# --- synthesis -------------------------------------------------------------------------------


def _shaped_noise(rng: np.random.Generator, n: int, sr: int, gain_fn, count: int = 1) -> np.ndarray:
    """``count`` rows of white noise coloured by ``gain_fn(freqs)``, made directly in the
    frequency domain of the whole loop: circular, so exactly periodic. Unit RMS, float32."""
    m = n // 2 + 1
    shape = gain_fn(np.fft.rfftfreq(n, 1.0 / sr)).astype(np.float32)
    shape[0] = 0.0
    spectrum = (rng.standard_normal((count, m), dtype=np.float32)
                + 1j * rng.standard_normal((count, m), dtype=np.float32)).astype(np.complex64)
    spectrum *= shape
    x = np.fft.irfft(spectrum, n, axis=-1)
    rms = np.sqrt(np.mean(x * x, axis=-1, keepdims=True))
    return x / np.where(rms > 0, rms, 1.0)


def _lowpass(fc: float, order: float = 1.0):
    return lambda f: 1.0 / (1.0 + (f / fc) ** (2 * order)) ** 0.5


def _bandpass(lo: float, hi: float, tilt: float = 0.0):
    def gain(f):
        g = (1.0 / (1.0 + (lo / np.maximum(f, 1e-3)) ** 4)) ** 0.5
        g = g * (1.0 / (1.0 + (f / hi) ** 4)) ** 0.5
        if tilt:
            g = g * (np.maximum(f, 20.0) / 1000.0) ** tilt
        return g

    return gain


def _lfo(rng: np.random.Generator, n: int, cycles: float, parts: int = 3) -> np.ndarray:
    """A smooth, positive modulator in 0..1 with whole cycles over the loop."""
    t = np.arange(n) / n
    out = np.zeros(n)
    base = max(1, round(cycles))
    total = 0.0
    for k in range(parts):
        c = max(1, round(base * (1.0 + 0.61 * k)))
        a = 1.0 / (k + 1)
        out += a * np.sin(2 * np.pi * c * t + rng.uniform(0, 2 * np.pi))
        total += a
    return 0.5 + 0.5 * out / total


def _stereo(rng, n, sr, gain_fn, channels: int, width: float = 0.6) -> np.ndarray:
    noise = _shaped_noise(rng, n, sr, gain_fn, channels)
    if channels == 1:
        return noise
    mid, side = noise[0], noise[1]
    a, b = math.sqrt(1 - width**2 / 2), width / math.sqrt(2)
    return np.stack([a * mid + b * side, a * mid - b * side])


def _pan(channels: int, pan: float) -> np.ndarray:
    if channels == 1:
        return np.ones(1)
    angle = (pan + 1) * np.pi / 4
    return np.array([np.cos(angle), np.sin(angle)]) * math.sqrt(2)


def _surf(layer: Layer, rng, n: int, sr: int, ch: int) -> np.ndarray:
    waves = max(1, round(n / sr / layer.period_s))
    spacing = n / waves
    t = np.arange(n, dtype=np.float64)
    crash = np.zeros(n)
    swell = np.zeros(n)
    rise, fall = 1.6 * sr, 0.45 * spacing
    for j in range(waves):
        centre = (j + rng.uniform(-0.12, 0.12)) * spacing
        amp = rng.uniform(0.55, 1.0)
        d = (t - centre) % n
        d = np.where(d > n - 2 * rise, d - n, d)  # the rise before the crest, wrapped
        up = np.clip(1 + d / rise, 0, 1) ** 2 * (d < 0)
        down = np.exp(-np.maximum(d, 0) / fall * 2.2) * (d >= 0)
        crash += amp * (up + down)
        swell += amp * (
            np.clip(1 + d / (2 * rise), 0, 1) * (d < 0)
            + np.exp(-np.maximum(d, 0) / spacing * 1.5) * (d >= 0)
        )
    rumble = _stereo(rng, n, sr, _lowpass(180 + 300 * layer.brightness, 1.5), ch, 0.5)
    wash = _stereo(rng, n, sr, _bandpass(400, 2500 + 6000 * layer.brightness, -0.3), ch, 0.7)
    out = rumble * (0.25 + 0.45 * swell) + wash * 0.55 * crash**1.5
    return out * _pan(ch, layer.pan)[:, None]


def _wind(layer: Layer, rng, n: int, sr: int, ch: int) -> np.ndarray:
    gust = _lfo(rng, n, n / sr / layer.period_s)
    low = _stereo(rng, n, sr, _lowpass(220 + 500 * layer.brightness, 1.0), ch, 0.6)
    whistle = _stereo(rng, n, sr, _bandpass(500, 1200 + 1500 * layer.brightness), ch, 0.8)
    out = low * (0.35 + 0.65 * gust) + 0.25 * whistle * gust**3
    return out * _pan(ch, layer.pan)[:, None]


def _leaves(layer: Layer, rng, n: int, sr: int, ch: int) -> np.ndarray:
    gust = _lfo(rng, n, n / sr / layer.period_s)
    flutter = np.abs(_shaped_noise(rng, n, sr, _lowpass(6.0, 2.0))[0])
    flutter = flutter / (flutter.max() or 1.0)
    hiss = _stereo(rng, n, sr, _bandpass(1200, 4000 + 5000 * layer.brightness, -0.5), ch, 0.9)
    env = gust**1.6 * (0.45 + 0.55 * flutter)
    return hiss * env * _pan(ch, layer.pan)[:, None]


def _stream(layer: Layer, rng, n: int, sr: int, ch: int) -> np.ndarray:
    burble = np.abs(_shaped_noise(rng, n, sr, _lowpass(12.0, 2.0))[0])
    burble = burble / (burble.max() or 1.0)
    water = _stereo(rng, n, sr, _bandpass(300, 2500 + 4000 * layer.brightness, -0.2), ch, 0.7)
    return water * (0.5 + 0.5 * burble) * _pan(ch, layer.pan)[:, None]


def _rain(layer: Layer, rng, n: int, sr: int, ch: int) -> np.ndarray:
    swell = _lfo(rng, n, n / sr / layer.period_s)
    patter = _stereo(rng, n, sr, _bandpass(300, 2500 + 5000 * layer.brightness, -0.6), ch, 0.9)
    drops = np.zeros((ch, n))
    count = int(n / sr * 6)
    ring = np.arange(int(0.012 * sr))
    for start in rng.integers(0, n, count):
        f = rng.uniform(1800, 4200 + 2000 * layer.brightness)
        tick = np.sin(2 * np.pi * f * ring / sr) * np.exp(-ring / (0.0025 * sr))
        tick *= rng.uniform(0.05, 0.3)
        idx = (start + ring) % n
        gains = _pan(ch, float(rng.uniform(-0.8, 0.8)))
        for c in range(ch):
            np.add.at(drops[c], idx, tick * gains[c])
    scale = np.sqrt(np.mean(patter * patter)) or 1.0
    out = patter * (0.75 + 0.25 * swell) + drops * scale * 6.0
    return out * _pan(ch, layer.pan)[:, None]


def _chirp(rng, sr: int) -> np.ndarray:
    """One bird call (a short phrase of notes), as mono samples."""
    kind = rng.integers(0, 3)
    notes = []
    if kind == 0:  # two-note whistle, falling
        f0 = rng.uniform(2600, 3600)
        notes = [(f0, f0 * 1.02, 0.22), (f0 * 0.8, f0 * 0.78, 0.3)]
    elif kind == 1:  # quick trill
        f0 = rng.uniform(3800, 5200)
        notes = [(f0 * 1.1, f0 * 0.9, 0.05)] * int(rng.integers(4, 8))
    else:  # rising query
        f0 = rng.uniform(2200, 3000)
        notes = [(f0, f0 * 1.45, 0.18)]
    gap = int(0.045 * sr)
    parts = []
    for fa, fb, dur in notes:
        m = int(dur * sr)
        f = np.linspace(fa, fb, m) * (1 + 0.03 * np.sin(np.linspace(0, 2 * np.pi * 3, m)))
        phase = 2 * np.pi * np.cumsum(f) / sr
        env = np.sin(np.linspace(0, np.pi, m)) ** 2
        parts.append(env * (np.sin(phase) + 0.15 * np.sin(2 * phase)))
        parts.append(np.zeros(gap))
    return np.concatenate(parts)


def _birds(layer: Layer, rng, n: int, sr: int, ch: int) -> np.ndarray:
    out = np.zeros((ch, n))
    calls = max(1, round(n / sr / layer.period_s))
    starts = np.sort(rng.uniform(0, n, calls)).astype(np.int64)
    for start in starts:
        call = _chirp(rng, sr) * rng.uniform(0.35, 1.0)
        # a little distance: soften the top a touch by averaging neighbours
        call = np.convolve(call, np.ones(3) / 3, mode="same")
        idx = (start + np.arange(call.size)) % n
        gains = _pan(ch, float(np.clip(layer.pan + rng.uniform(-0.7, 0.7), -1, 1)))
        for c in range(ch):
            np.add.at(out[c], idx, call * gains[c])
    return out * 2.0


SYNTHS = {"surf": _surf, "wind": _wind, "leaves": _leaves, "birds": _birds, "stream": _stream,
          "rain": _rain}


def synthesize(recipe: SoundscapeRecipe) -> np.ndarray:
    """The recipe's loop as float32 PCM, shape ``(channels, samples)``, peak at -6 dBFS."""
    n, sr, ch = recipe.samples, recipe.sample_rate, recipe.channels
    mix = np.zeros((ch, n))
    for i, layer in enumerate(recipe.layers):
        rng = np.random.default_rng([recipe.seed, i, LAYER_KINDS.index(layer.kind)])
        sound = SYNTHS[layer.kind](layer, rng, n, sr, ch)
        mix += layer.gain * sound / (np.sqrt(np.mean(sound * sound)) or 1.0)
    peak = float(np.max(np.abs(mix))) or 1.0
    return (mix * (PEAK / peak)).astype(np.float32)


# --- encoding and cache ----------------------------------------------------------------------


def encode_opus(pcm: np.ndarray, sample_rate: int, path: Path | str, bitrate: int = 64000) -> None:
    """Write ``pcm`` (float, ``(channels, samples)``) as Ogg Opus, bit-exactly."""
    import av

    channels, n = pcm.shape
    layout = "stereo" if channels == 2 else "mono"
    ints = np.clip(np.round(pcm * 32767.0), -32768, 32767).astype(np.int16)
    interleaved = np.ascontiguousarray(ints.T).reshape(1, -1)
    with av.open(str(path), mode="w", format="ogg") as container:
        container.flags |= av.container.Flags.bitexact.value
        stream = container.add_stream("libopus", rate=sample_rate)
        stream.layout = layout
        stream.bit_rate = bitrate
        stream.codec_context.flags |= av.codec.context.Flags.bitexact.value
        stream.codec_context.options = {"application": "audio", "vbr": "on"}
        time_base = Fraction(1, sample_rate)
        for off in range(0, n, OPUS_FRAME):
            chunk = interleaved[:, off * channels : (off + OPUS_FRAME) * channels]
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = off
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def cache_path(recipe: SoundscapeRecipe, cache_dir: Path | str, name: str = "soundscape") -> Path:
    safe = "".join(c for c in name if c.isalnum() or c in "-_")[:40] or "soundscape"
    return Path(cache_dir) / f"{safe}-{recipe.cache_key()}.ogg"


def ensure_soundscape(
    recipe: SoundscapeRecipe, cache_dir: Path | str, name: str = "soundscape"
) -> Path:
    """The cached Ogg Opus file for ``recipe``, synthesised and encoded on first use.
    Blocking (a second or two): call it in a worker thread from async code."""
    path = cache_path(recipe, cache_dir, name)
    if path.exists():
        return path
    with _locks_guard:
        lock = _locks.setdefault(str(path), threading.Lock())
    with lock:
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            encode_opus(synthesize(recipe), recipe.sample_rate, tmp, recipe.bitrate)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path
