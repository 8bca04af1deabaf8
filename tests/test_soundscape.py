"""Soundscapes: deterministic synthesis, Opus in Ogg via av, the cache and the HTTP route."""

from __future__ import annotations

import hashlib
import time

import av
import numpy as np
import pytest

from environments import catalog
from media.soundscape import (
    Layer,
    RecipeError,
    SoundscapeRecipe,
    cache_path,
    encode_opus,
    ensure_soundscape,
    synthesize,
)

SHORT = SoundscapeRecipe.from_dict({"seed": 7, "duration_s": 6, "layers": [
    {"kind": "surf", "gain": 0.8, "period_s": 3},
    {"kind": "wind", "gain": 0.3, "period_s": 2},
    {"kind": "leaves", "gain": 0.3, "period_s": 2},
    {"kind": "birds", "gain": 0.2, "period_s": 1},
    {"kind": "stream", "gain": 0.1},
    {"kind": "rain", "gain": 0.3, "period_s": 2},
]})


def decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        codec, rate, channels = stream.codec_context.name, stream.rate, stream.channels
        frames = [f.to_ndarray() for f in container.decode(audio=0)]
    pcm = np.concatenate(frames, axis=-1)
    return codec, rate, channels, pcm


def test_recipe_validation():
    with pytest.raises(RecipeError, match="seed"):
        SoundscapeRecipe.from_dict({"layers": [{"kind": "wind"}]})
    with pytest.raises(RecipeError, match="kind"):
        SoundscapeRecipe.from_dict({"seed": 1, "layers": [{"kind": "thunder"}]})
    with pytest.raises(RecipeError, match="gain"):
        SoundscapeRecipe.from_dict({"seed": 1, "layers": [{"kind": "wind", "gain": 3}]})
    with pytest.raises(RecipeError, match="sample_rate"):
        SoundscapeRecipe.from_dict({"seed": 1, "sample_rate": 44100, "layers": [{"kind": "wind"}]})
    with pytest.raises(RecipeError, match="volume"):
        SoundscapeRecipe.from_dict({"seed": 1, "layers": [{"kind": "wind", "volume": 1}]})
    r = SoundscapeRecipe.from_dict(SHORT.to_dict())
    assert r == SHORT and r.layers[0] == Layer("surf", 0.8, 3.0)


def test_synthesis_is_deterministic_periodic_and_calm():
    a, b = synthesize(SHORT), synthesize(SHORT)
    assert a.shape == (2, SHORT.samples) and a.dtype == np.float32
    assert np.array_equal(a, b)
    other = synthesize(SoundscapeRecipe.from_dict({**SHORT.to_dict(), "seed": 8}))
    assert not np.array_equal(a, other)
    assert np.abs(a).max() == pytest.approx(0.5, abs=1e-3)  # -6 dBFS peak
    assert np.sqrt(np.mean(a**2)) > 0.03
    # Seamless loop: the jump from the last sample back to the first is no bigger than the
    # signal's ordinary sample-to-sample steps.
    steps = np.abs(np.diff(a, axis=1))
    seam = np.abs(a[:, 0] - a[:, -1])
    assert np.all(seam <= np.percentile(steps, 99.9, axis=1))


def test_rain_is_a_soft_patter_with_drops_and_loops_seamlessly():
    rain = synthesize(SoundscapeRecipe.from_dict({"seed": 5, "duration_s": 6, "layers": [
        {"kind": "rain", "gain": 0.8, "period_s": 3, "brightness": 0.35}]}))
    spectrum = np.abs(np.fft.rfft(rain[0].astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(rain.shape[1], 1 / 48000)
    band = spectrum[(freqs > 250) & (freqs < 9000)].sum() / spectrum.sum()
    assert band > 0.8, band  # a patter, not a rumble or a hiss
    # the drops: short peaks well above the steady patter
    env = np.abs(rain[0])
    assert np.percentile(env, 99.99) > 3 * np.percentile(env, 50)
    assert abs(rain[0, 0] - rain[0, -1]) <= np.percentile(np.abs(np.diff(rain[0])), 99.9)


@pytest.mark.parametrize("env_id", [e.id for e in catalog.all_environments()])
def test_environment_soundscape_encodes_and_decodes(tmp_path, env_id):
    recipe = catalog.get_environment(env_id).soundscape
    started = time.perf_counter()
    path = ensure_soundscape(recipe, tmp_path, env_id)
    took = time.perf_counter() - started
    assert took < 15, f"generation took {took:.1f}s"
    assert path.name.startswith(f"{env_id}-") and path.suffix == ".ogg"
    assert path.read_bytes()[:4] == b"OggS"
    codec, rate, channels, pcm = decode(path)
    assert codec == "opus" and rate == 48000 and channels == recipe.channels
    duration = pcm.shape[-1] / rate
    assert duration == pytest.approx(recipe.duration_s, abs=0.05)
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    assert rms > 0.02, "the soundscape is (nearly) silent"
    assert np.abs(pcm).max() < 0.9  # calm, no clipping
    # the cache: a second call is a hit, returning the same file untouched
    mtime = path.stat().st_mtime_ns
    assert ensure_soundscape(recipe, tmp_path, env_id) == path
    assert path.stat().st_mtime_ns == mtime


def test_same_recipe_gives_byte_identical_files(tmp_path):
    pcm = synthesize(SHORT)
    encode_opus(pcm, 48000, tmp_path / "a.ogg")
    encode_opus(synthesize(SHORT), 48000, tmp_path / "b.ogg")
    a, b = (tmp_path / "a.ogg").read_bytes(), (tmp_path / "b.ogg").read_bytes()
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()


def test_cache_key_follows_the_recipe(tmp_path):
    other = SoundscapeRecipe.from_dict({**SHORT.to_dict(), "seed": 99})
    assert cache_path(SHORT, tmp_path, "x") != cache_path(other, tmp_path, "x")
    assert cache_path(SHORT, tmp_path, "x") == cache_path(SHORT, tmp_path, "x")
    assert cache_path(SHORT, tmp_path, "../../etc").parent == tmp_path


async def test_soundscape_route_serves_ogg_with_ranges(client):
    resp = await client.get("/soundscapes/beach.ogg")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "audio/ogg"
    assert resp.headers.get("Accept-Ranges") == "bytes"
    body = await resp.read()
    assert body[:4] == b"OggS"
    size = len(body)

    resp = await client.get("/soundscapes/beach.ogg", headers={"Range": "bytes=100-1099"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 100-1099/{size}"
    assert resp.headers["Content-Type"] == "audio/ogg"
    assert await resp.read() == body[100:1100]

    resp = await client.get("/soundscapes/beach.ogg", headers={"Range": "bytes=-64"})
    assert resp.status == 206 and await resp.read() == body[-64:]

    resp = await client.get("/soundscapes/beach.ogg", headers={"Range": f"bytes={size + 10}-"})
    assert resp.status == 416

    head = await client.client.head("/soundscapes/beach.ogg")
    assert head.status == 200 and int(head.headers["Content-Length"]) == size


async def test_soundscape_is_cached_in_the_data_folder(client):
    resp = await client.get("/soundscapes/forest.ogg")
    assert resp.status == 200
    from web import appkeys

    cache = client.client.server.app[appkeys.DATA_DIR].path / "cache" / "soundscapes"
    files = list(cache.glob("forest-*.ogg"))
    assert len(files) == 1 and files[0].read_bytes() == await resp.read()


async def test_unknown_soundscape_is_404(client):
    resp = await client.get("/soundscapes/moon.ogg")
    assert resp.status == 404
