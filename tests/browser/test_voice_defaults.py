"""Voice with the shipped defaults, in real headless Chromium: `haven serve --demo` with no
ICE flags, browsers with no --allow-loopback-in-peer-connection, and the Python client, on
one machine (a fresh network namespace with loopback and one network card, like a laptop or
CI machine). Two browsers and `haven call` in one room: every one hears the other two.

Browsers gather no loopback candidates and hide their host addresses behind mDNS names;
the server gathers on every interface including loopback, and learns each browser's address
from its checks (peer-reflexive); the Python client, with a 127.0.0.1 join URL, keeps its
media on loopback. This is the combination users run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.chromium import CHROMIUM
from tests.net.browser import SessionTab, launch_in
from tests.net.lab import Lab, one_machine, unavailable
from tests.net.services import HAVEN, finish, summary, wait_until
from tests.voice_support import band_share, read_wav, tone, write_wav

pytestmark = [pytest.mark.browser, pytest.mark.net, pytest.mark.slow]

BROWSER_TONES = (500.0, 1100.0)
PY_TONE = 1700.0


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    if not Path(CHROMIUM).exists():
        pytest.skip("no system Chromium at /usr/bin/chromium")
    folder = tmp_path_factory.mktemp("defaults")
    with Lab() as lab:
        m = one_machine(lab)
        server = m.popen([*HAVEN, "serve", "--demo", "--data-dir", str(folder / "haven-data")],
                         log=folder / "serve.log")
        m.wait_listening(8080, server, what="haven serve --demo")
        yield m, folder


def invite(folder: Path, room: str, count: int) -> list[str]:
    import subprocess

    from tests.net.lab import ROOT

    r = subprocess.run([*HAVEN, "invite", "--data-dir", str(folder / "haven-data"), "--room", room,
                        "--count", str(count)], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_two_browsers_and_haven_call_hear_each_other_with_shipped_defaults(machine):
    from playwright.sync_api import sync_playwright

    m, folder = machine
    urls = invite(folder, "defaults", 3)
    assert all(u.startswith("http://127.0.0.1:8080/s/") for u in urls)
    py_wav = write_wav(folder / "py.wav", tone(PY_TONE, 30))
    with sync_playwright() as p:
        browsers = [launch_in(p, m, folder, write_wav(folder / f"mic{int(f)}.wav", tone(f, 30)))
                    for f in BROWSER_TONES]
        tabs = []
        try:
            tabs = [SessionTab(b, u) for b, u in zip(browsers, urls[:2], strict=True)]
            for tab, name in zip(tabs, ("Ana", "Ben"), strict=True):
                tab.join(name)
            py = m.popen([*HAVEN, "call", urls[2], "--send", str(py_wav), "--record",
                          str(folder / "py-heard.wav"), "--seconds", "12", "--identity",
                          str(folder / "py-id.json"), "--name", "Python"])
            wait_until(lambda: all(t.people() == 3 for t in tabs), timeout=60, what="3 people")
            # each browser decrypts and plays both other voices
            wait_until(lambda: all(t.voices_heard() >= 2 for t in tabs), timeout=45,
                       what="each browser hearing two voices")
            codes = {t.code() for t in tabs}
            configs = [t.ice_configs() for t in tabs]
            rc, out, err = finish(py, timeout=120)
            errors = [e for t in tabs for e in t.errors]
        finally:
            for t in tabs:
                t.close()
            for b in browsers:
                b.close()
    assert rc == 0, err
    sent, received, failed = summary(out)
    assert received > 200 and failed == 0, out
    heard = read_wav(folder / "py-heard.wav")
    for f in BROWSER_TONES:
        assert band_share(heard, f) > 0.05, (f, band_share(heard, f))
    assert band_share(heard, PY_TONE) < 0.02
    py_codes = re.findall(r"security code: ([\d ]+?)  \(3 in the room", out)
    assert py_codes and codes == {py_codes[-1]}, (codes, py_codes)
    # no STUN/TURN configured: the pages used exactly what `joined` handed them
    assert all(c and all(cfg.get("iceServers") == [] for cfg in c) for c in configs), configs
    assert not errors, errors
