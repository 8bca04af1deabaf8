"""The README's command-line flow, exactly as a new user types it, with the shipped
defaults (no --ice-loopback-only, nothing test-only), on one machine: a fresh network
namespace with loopback and one network card (what a laptop or a CI machine has), and one
with loopback alone.

    make serve                 # = haven serve --demo, on 127.0.0.1:8080
    haven invite --data-dir ./haven-data --room intake --count 2
    haven call 'http://127.0.0.1:8080/s/r-…#token' --send voice.ogg --record heard.wav
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.net.lab import ROOT, one_machine
from tests.net.services import HAVEN, finish, summary
from tests.voice_support import band_share, read_wav, tone, write_wav

pytestmark = [pytest.mark.net, pytest.mark.slow]


@pytest.mark.parametrize("interface", [True, False], ids=["lo+eth0", "lo-only"])
def test_readme_flow_records_the_other_side(lab, tmp_path, interface):
    machine = one_machine(lab, interface=interface)
    os.chdir(tmp_path)  # the README runs from the checkout; ./haven-data is relative
    try:
        server = machine.popen([*HAVEN, "serve", "--demo"], log=tmp_path / "serve.log",
                               cwd=tmp_path)
        machine.wait_listening(8080, server, what="haven serve --demo")
        invite = subprocess.run(
            [*HAVEN, "invite", "--data-dir", "./haven-data", "--room", "intake", "--count", "2"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert invite.returncode == 0, invite.stderr
        urls = invite.stdout.split()
        assert len(urls) == 2 and all(re.fullmatch(r"http://127\.0\.0\.1:8080/s/r-[0-9a-f]{16}#"
                                                   r"[A-Za-z0-9_-]+", u) for u in urls), urls
        calls = []
        for i, (url, freq) in enumerate(zip(urls, (600.0, 1500.0), strict=True)):
            write_wav(tmp_path / f"voice{i}.wav", tone(freq, 12))
            home = tmp_path / f"home{i}"  # each person has their own ~/.config/haven/
            calls.append(machine.popen(
                [*HAVEN, "call", url, "--send", f"voice{i}.wav", "--record", f"heard{i}.wav",
                 "--seconds", "6"], cwd=tmp_path,
                env={"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}))
        outs = [finish(c, timeout=120) for c in calls]
    finally:
        os.chdir(ROOT)
    for rc, out, err in outs:
        assert rc == 0, err
        sent, received, failed = summary(out)
        assert sent > 100 and received > 100 and failed == 0, out
        assert re.search(r"security code: [\d ]+  \(2 in the room", out)
    heard0, heard1 = read_wav(tmp_path / "heard0.wav"), read_wav(tmp_path / "heard1.wav")
    assert band_share(heard0, 1500.0) > 0.3 and band_share(heard0, 600.0) < 0.02
    assert band_share(heard1, 600.0) > 0.3 and band_share(heard1, 1500.0) < 0.02
    assert (tmp_path / "home0" / ".config" / "haven" / "identity.json").exists()
