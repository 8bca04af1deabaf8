"""``haven invite`` and ``haven call`` as a user runs them, against a real ``haven serve``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from .conftest import ROOT
from .voice_support import band_share, read_wav, tone, write_wav

pytestmark = pytest.mark.slow


def haven(*args, timeout=60):
    return subprocess.Popen([sys.executable, "-m", "web.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_invite_then_two_calls_hear_each_other(live_server, tmp_path):
    r = live_server.haven("invite", "--data-dir", str(live_server.data_dir), "--room", "cli-room",
                          "--count", "2")
    assert r.returncode == 0, r.stderr
    urls = r.stdout.split()
    assert len(urls) == 2 and all(u.startswith(live_server.base_url + "/s/r-") for u in urls)
    assert urls[0].split("#")[0] == urls[1].split("#")[0]  # one room, two tokens
    # the same room name again gives the same room
    again = live_server.haven("invite", "--data-dir", str(live_server.data_dir), "--room",
                              "cli-room", "--count", "1")
    assert again.stdout.split("#")[0] == urls[0].split("#")[0]

    calls = []
    for i, (url, freq) in enumerate(zip(urls, (600.0, 1500.0), strict=True)):
        wav = write_wav(tmp_path / f"in{i}.wav", tone(freq, 10))
        calls.append(haven("call", url, "--send", str(wav), "--record", str(tmp_path / f"out{i}.wav"),
                           "--seconds", "6", "--identity", str(tmp_path / f"id{i}.json")))
    outs = [c.communicate(timeout=90) for c in calls]
    for c, (out, err) in zip(calls, outs, strict=True):
        assert c.returncode == 0, err
        summary = out.strip().splitlines()[-1]
        # (a lossy or reconnecting call adds ", lost N (M recovered by FEC)" and the like)
        m = re.match(r"frames sent (\d+), received (\d+), failed to decrypt (\d+)", summary)
        assert m, summary
        assert int(m.group(1)) > 100 and int(m.group(2)) > 100 and int(m.group(3)) == 0
    codes = [re.findall(r"security code: ([\d ]+?)  \(2 in the room", out)[0] for out, _ in outs]
    assert codes[0] == codes[1]
    heard0 = read_wav(tmp_path / "out0.wav")
    heard1 = read_wav(tmp_path / "out1.wav")
    assert band_share(heard0, 1500.0) > 0.3 and band_share(heard0, 600.0) < 0.02
    assert band_share(heard1, 600.0) > 0.3 and band_share(heard1, 1500.0) < 0.02
    assert (tmp_path / "id0.json").stat().st_mode & 0o077 == 0


def test_call_with_a_bad_url_fails_with_one_line(tmp_path):
    p = haven("call", "http://127.0.0.1:9/not-a-join-url", "--identity", str(tmp_path / "i.json"))
    out, err = p.communicate(timeout=30)
    assert p.returncode == 2
    assert err.strip().splitlines() == ["haven: error: a join URL looks like https://host/s/r-...#token"]


def test_invite_without_a_known_server_asks_for_base_url(tmp_path):
    p = haven("invite", "--data-dir", str(tmp_path / "fresh"), "--room", "x")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 2 and "--base-url" in err and len(err.strip().splitlines()) == 1
