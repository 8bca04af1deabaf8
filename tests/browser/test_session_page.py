"""The session page in real headless Chromium: two browsers with fake microphones (WAV tones)
and one Python client in one room, all hearing each other end to end encrypted; refusal
without encoded transforms; rejoin after a reload; an accessibility check."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser.chromium import CHROMIUM, LAUNCH_ARGS
from tests.conftest import ROOT
from tests.voice_support import band_share, read_wav, tone, write_wav

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
BROWSER_TONES = (500.0, 1100.0)
PY_TONE = 1700.0


def media_args(wav: Path) -> list[str]:
    args = [a for a in LAUNCH_ARGS if not a.startswith("--autoplay-policy")]
    return args + [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
        "--allow-loopback-in-peer-connection",
    ]


@pytest.fixture(scope="module")
def playwright_instance():
    if not Path(CHROMIUM).exists():
        pytest.skip("no system Chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def tone_browsers(playwright_instance, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mics")
    browsers = []
    for f in BROWSER_TONES:
        wav = write_wav(folder / f"tone{int(f)}.wav", tone(f, 20))
        browsers.append(playwright_instance.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=media_args(wav)))
    yield browsers
    for b in browsers:
        b.close()


def invite(live_server, room: str, count: int) -> list[str]:
    r = live_server.haven("invite", "--data-dir", str(live_server.data_dir), "--room", room,
                          "--count", str(count))
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


class SessionPage:
    def __init__(self, browser, url: str, *, init_script: str | None = None, **ctx):
        self.context = browser.new_context(**ctx)
        if init_script:
            self.context.add_init_script(init_script)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)

    def state(self) -> str | None:
        return self.page.evaluate("document.documentElement.dataset.sessionState || null")

    def join(self, name: str, audio_only: bool = False):
        self.page.wait_for_selector("html[data-session-state='lobby']", state="attached", timeout=30_000)
        self.page.fill("#display-name", name)
        if audio_only:
            self.page.check("#audio-only")
        self.page.click("#join")
        self.page.wait_for_selector("html[data-session-state='in-room']", state="attached", timeout=30_000)

    def energy(self) -> dict:
        return self.page.evaluate("window.havenSession.remoteEnergy()")

    def members(self) -> int:
        return self.page.evaluate("window.havenSession.state.members.size")

    def code(self) -> str:
        return self.page.text_content("#security-code").strip()

    def close(self):
        self.context.close()


def wait_until(predicate, timeout=30.0, step=0.25):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def start_python_client(live_server, url: str, folder: Path, seconds: float) -> subprocess.Popen:
    wav = write_wav(folder / "py.wav", tone(PY_TONE, seconds + 5))
    return subprocess.Popen(
        [sys.executable, "-m", "web.cli", "call", url, "--send", str(wav), "--record",
         str(folder / "py-heard.wav"), "--seconds", str(seconds), "--identity",
         str(folder / "py-id.json"), "--name", "Python"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_two_browsers_and_a_python_client_hear_each_other(live_server, tone_browsers, tmp_path):
    urls = invite(live_server, "browser-call", 3)
    pages = [SessionPage(b, u) for b, u in zip(tone_browsers, urls[:2], strict=True)]
    try:
        pages[0].join("Ana")
        pages[1].join("Ben", audio_only=True)
        py = start_python_client(live_server, urls[2], tmp_path, 14)
        wait_until(lambda: all(p.members() == 2 for p in pages))
        # every page hears both others (remote audio energy per participant)
        wait_until(lambda: all(len([v for v in p.energy().values() if v > 0.005]) == 2 for p in pages),
                   timeout=20)
        codes = {p.code() for p in pages}
        stats = [p.page.evaluate("window.havenSession.cryptoStats()") for p in pages]
        out, err = py.communicate(timeout=60)
    finally:
        for p in pages:
            p.close()
    assert py.returncode == 0, err
    py_codes = re.findall(r"security code: ([\d ]+?)  \(3 in the room", out)
    assert py_codes and codes == {py_codes[0]}, (codes, py_codes)
    for s in stats:
        assert s["decrypted"] > 100 and s["encrypted"] > 100
    heard = read_wav(tmp_path / "py-heard.wav")
    for f in BROWSER_TONES:
        assert band_share(heard, f) > 0.05, (f, band_share(heard, f))
    assert band_share(heard, PY_TONE) < 0.02
    m = re.search(r"failed to decrypt (\d+)", out)
    assert m and int(m.group(1)) == 0
    for p in pages:
        assert not p.errors, p.errors


REMOVE_TRANSFORMS = """
delete window.RTCRtpScriptTransform;
delete RTCRtpSender.prototype.createEncodedStreams;
delete RTCRtpReceiver.prototype.createEncodedStreams;
window.__sockets = 0;
const RealWebSocket = window.WebSocket;
window.WebSocket = function (...args) { window.__sockets += 1; return new RealWebSocket(...args); };
"""


def test_page_refuses_to_join_without_encoded_transforms(live_server, tone_browsers):
    url = invite(live_server, "no-transform", 1)[0]
    page = SessionPage(tone_browsers[0], url, init_script=REMOVE_TRANSFORMS)
    try:
        page.page.wait_for_selector("#unsupported", state="visible", timeout=15_000)
        text = " ".join(page.page.text_content("#unsupported").split())
        assert "never falls back to unencrypted voice" in text
        assert page.page.is_hidden("#lobby")
        time.sleep(1)
        assert page.page.evaluate("window.__sockets") == 0  # it never even tried to join
    finally:
        page.close()


def test_reload_mid_call_rejoins_and_audio_flows_again(live_server, tone_browsers):
    urls = invite(live_server, "reload-call", 2)
    a = SessionPage(tone_browsers[0], urls[0])
    b = SessionPage(tone_browsers[1], urls[1])
    try:
        a.join("Ana", audio_only=True)
        b.join("Ben", audio_only=True)
        wait_until(lambda: any(v > 0.005 for v in a.energy().values()), timeout=20)
        old_pid = b.page.evaluate("window.havenSession.state.participantId")
        b.page.reload()
        b.page.wait_for_selector("html[data-session-state='in-room']", state="attached", timeout=30_000)
        assert b.page.evaluate("window.havenSession.state.participantId") == old_pid
        wait_until(lambda: a.members() == 1 and b.members() == 1)
        wait_until(lambda: any(v > 0.005 for v in b.energy().values()), timeout=20)
        wait_until(lambda: any(v > 0.005 for v in a.energy().values()), timeout=20)
        assert a.code() == b.code()
    finally:
        a.close()
        b.close()


def test_session_page_has_no_serious_accessibility_violations(live_server, tone_browsers):
    url = invite(live_server, "a11y", 1)[0]
    page = SessionPage(tone_browsers[0], url, bypass_csp=True)
    try:
        page.page.wait_for_selector("html[data-session-state='lobby']", state="attached", timeout=30_000)
        results = []
        for phase in ("lobby", "room"):
            if phase == "room":
                page.page.click("#join")
                page.page.wait_for_selector("html[data-session-state='in-room']", state="attached",
                                            timeout=30_000)
            page.page.evaluate(AXE.read_text())
            violations = page.page.evaluate(
                "async () => (await axe.run(document)).violations"
                ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))")
            results.append((phase, [v for v in violations if v["impact"] in ("serious", "critical")]))
        assert all(not bad for _, bad in results), results
    finally:
        page.close()


def test_keyboard_mute_shortcut(live_server, tone_browsers):
    url = invite(live_server, "keys", 1)[0]
    page = SessionPage(tone_browsers[0], url)
    try:
        page.join("Ana", audio_only=True)
        page.page.focus("body")
        page.page.keyboard.press("m")
        assert page.page.get_attribute("#mute", "aria-pressed") == "true"
        assert page.page.evaluate("window.havenSession.state.muted") is True
        page.page.keyboard.press("m")
        assert page.page.get_attribute("#mute", "aria-pressed") == "false"
    finally:
        page.close()
