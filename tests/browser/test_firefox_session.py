"""The session page in Debian's firefox-esr (headless, fake media through prefs), driven over
WebDriver BiDi by puppeteer-core:

* as a new user meets it: a browser that cannot start its sound output (no sound device) or
  that is still asking for microphone permission still shows the microphone and joins;
* one room with a Firefox page, a Chromium page (the standard RTCRtpScriptTransform path) and
  a Python client: each hears the other two, and both pages show the same security code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser import firefox, netns
from tests.browser.chromium import CHROMIUM
from tests.browser.test_session_page import SessionPage, invite, media_args, wait_until
from tests.conftest import ROOT, LiveServer
from tests.voice_support import band_share, read_wav, tone, write_wav

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIREFOX_TONE = 800.0  # media.navigator.audio.fake_frequency
CHROMIUM_TONE = 500.0
PY_TONE = 1700.0
NS_PORT = 8080


@pytest.fixture(scope="module")
def firefox_ready():
    why = firefox.available()
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module")
def pulse(firefox_ready, tmp_path_factory):
    server = firefox.PulseServer(tmp_path_factory.mktemp("pulse"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def namespace():
    why = netns.available()
    if why:
        pytest.skip(why)
    ns = netns.Namespace(f"haven-ff-{os.getpid()}")
    yield ns
    ns.remove()


@pytest.fixture(scope="module")
def ns_server(namespace, firefox_ready, tmp_path_factory):
    """``haven serve --demo`` inside the namespace, with the default ICE policy."""
    folder = tmp_path_factory.mktemp("ns-live")
    log_path = folder / "server.log"
    port = NS_PORT
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [*namespace.prefix(), sys.executable, "-m", "web.cli", "serve", "--demo",
             "--host", namespace.address, "--port", str(port), "--data-dir",
             str(folder / "data")],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while "listening on" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"haven serve did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    yield LiveServer(f"http://{namespace.address}:{port}", folder / "data", {}, proc, log_path)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def secure_origin_prefs(namespace) -> dict:
    """Firefox's counterpart of Chromium's --unsafely-treat-insecure-origin-as-secure."""
    return {"dom.securecontext.allowlist": namespace.address,
            # ... and so would upgrade the page's own http images (icon masks) to https.
            "security.mixed_content.upgrade_display_content": False}


def state(page: firefox.FirefoxPage) -> str | None:
    return page.eval("document.documentElement.dataset.sessionState || null")


DIAGNOSE = """JSON.stringify({state: document.documentElement.dataset.sessionState,
  phase: window.havenSession?.state?.phase, secure: isSecureContext, url: location.href,
  lobby: document.getElementById('lobby-status')?.textContent})"""


def wait_for_state(page: firefox.FirefoxPage, wanted: str, timeout: float) -> None:
    try:
        wait_until(lambda: state(page) == wanted, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"not {wanted}: {page.eval(DIAGNOSE)} {page.errors()}") from None


def test_firefox_without_sound_device_or_permission_answer_still_lists_the_mic_and_joins(
        namespace, ns_server, tmp_path):
    """Reproduces the report: Firefox ESR with fake media, no sound output (no pulse server)
    and a permission prompt nobody answers. The lobby must list the microphone that
    enumerateDevices() reports and 'Join' must open the room (before: neither)."""
    url = invite(ns_server, "ff-lobby", 1)[0]
    # No sound server at all (an empty runtime folder) and the permission prompt left on.
    browser = firefox.Firefox(prefs={"media.navigator.permission.disabled": False,
                                     **secure_origin_prefs(namespace)},
                              env={"PULSE_SERVER": f"unix:{tmp_path}/none",
                                   "XDG_RUNTIME_DIR": str(tmp_path)},
                              prefix=namespace.prefix())
    try:
        page = browser.open(url)
        wait_for_state(page, "lobby", 30)
        devices = page.eval("navigator.mediaDevices.enumerateDevices()"
                            ".then(d => d.filter(x => x.kind === 'audioinput').length)")
        options = page.eval("[...document.querySelectorAll('#mic-select option')]"
                            ".map(o => o.textContent)")
        assert devices >= 1 and len(options) == devices, (devices, options)
        assert options != ["Default microphone"]
        wait_until(lambda: "permission" in page.eval(
            "document.getElementById('lobby-status').textContent"), timeout=10)
        page.click("#join")
        wait_for_state(page, "in-room", 40)
        # Sound could not start on this machine: the page offers to turn it on, visibly.
        assert page.eval("!document.getElementById('resume-audio').hidden") is True
        assert page.eval("window.havenSession.state.transformMode") == "script"
        assert page.errors() == []
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def chromium_tone_browser(namespace, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("no system Chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    folder = tmp_path_factory.mktemp("chromium-ns")
    wav = write_wav(folder / "tone.wav", tone(CHROMIUM_TONE, 30))
    args = [a for a in media_args(wav) if a != "--allow-loopback-in-peer-connection"]
    # Plain HTTP on a non-loopback address is not a secure context (no WebCrypto, no
    # microphone); a deployment serves HTTPS, the test says the namespace address is trusted.
    args.append(f"--unsafely-treat-insecure-origin-as-secure=http://{namespace.address}:{NS_PORT}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(namespace.wrapper(folder, CHROMIUM)),
                                    headless=True, args=args)
        yield browser
        browser.close()


def python_client(namespace, url: str, folder: Path, seconds: float) -> subprocess.Popen:
    wav = write_wav(folder / "py.wav", tone(PY_TONE, seconds + 5))
    return subprocess.Popen(
        [*namespace.prefix(), sys.executable, "-m", "web.cli", "call", url, "--send", str(wav),
         "--record", str(folder / "py-heard.wav"), "--seconds", str(seconds), "--identity",
         str(folder / "py-id.json"), "--name", "Python"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_firefox_chromium_and_python_hear_each_other(namespace, ns_server, pulse,
                                                     chromium_tone_browser, tmp_path):
    """All three in one room, on a real interface inside the test's own namespace, with the
    shipped defaults: no loopback-only ICE on the server or in either browser."""
    urls = invite(ns_server, "ff-three", 3)
    fox = firefox.Firefox(prefs={"media.navigator.audio.fake_frequency": int(FIREFOX_TONE),
                                 **secure_origin_prefs(namespace)},
                          env=pulse.env, prefix=namespace.prefix())
    chrome = SessionPage(chromium_tone_browser, urls[1])
    py = None
    try:
        ff = fox.open(urls[0])
        wait_for_state(ff, "lobby", 30)
        ff.fill("#display-name", "Fern")
        ff.click("#join")
        wait_for_state(ff, "in-room", 40)
        chrome.join("Chris")
        py = python_client(namespace, urls[2], tmp_path, 16)
        members = "window.havenSession.state.members.size"
        wait_until(lambda: ff.eval(members) == 2 and chrome.members() == 2, timeout=40)

        def hears_both(energy: dict) -> bool:
            return len([v for v in energy.values() if v > 0.005]) == 2

        wait_until(lambda: hears_both(ff.eval("window.havenSession.remoteEnergy()"))
                   and hears_both(chrome.energy()), timeout=30)
        assert ff.eval("window.havenSession.state.transformMode") == "script"
        assert chrome.page.evaluate("window.havenSession.state.transformMode") == "script"
        wait_until(lambda: re.fullmatch(r"[\d ]+", chrome.code() or "") is not None
                   and chrome.code() == ff.eval(
                       "document.getElementById('security-code').textContent.trim()"),
                   timeout=20)
        codes = {chrome.code(), ff.eval("document.getElementById('security-code').textContent.trim()")}
        ff_stats = ff.eval("window.havenSession.cryptoStats()")
        out, err = py.communicate(timeout=90)
        ff_errors = ff.errors()
    finally:
        if py and py.poll() is None:
            py.kill()
        chrome.close()
        fox.quit()
    assert py.returncode == 0, err
    py_codes = re.findall(r"security code: ([\d ]+?)  \(3 in the room", out)
    assert py_codes and codes == {py_codes[0]}, (codes, py_codes)
    assert ff_stats["decrypted"] > 100 and ff_stats["encrypted"] > 100, ff_stats
    heard = read_wav(tmp_path / "py-heard.wav")
    for f in (FIREFOX_TONE, CHROMIUM_TONE):
        assert band_share(heard, f) > 0.05, (f, band_share(heard, f))
    assert band_share(heard, PY_TONE) < 0.02
    m = re.search(r"failed to decrypt (\d+)", out)
    assert m and int(m.group(1)) == 0
    assert ff_errors == [] and chrome.errors == [], (ff_errors, chrome.errors)

