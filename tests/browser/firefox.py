"""Debian's firefox-esr for browser tests, driven over WebDriver BiDi by puppeteer-core
(tests/browser/firefox_driver.mjs; no downloaded browser build), and a private PulseAudio
daemon with a null sink: headless Firefox on a machine without a sound card never starts an
AudioContext, so the tests that listen give it a sound server, as a desktop has."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT

FIREFOX = "/usr/bin/firefox-esr"
DRIVER = Path(__file__).with_name("firefox_driver.mjs")
FAKE_MEDIA_PREFS = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
}


def available() -> str | None:
    """Why Firefox tests cannot run here, or None if they can."""
    if not Path(FIREFOX).exists():
        return "no firefox-esr at /usr/bin/firefox-esr (scripts/setup.sh --test installs it)"
    if not (ROOT / "node_modules" / "puppeteer-core").is_dir():
        return "no puppeteer-core in node_modules (scripts/setup.sh installs it)"
    if shutil.which("node") is None:
        return "no node"
    return None


class PulseServer:
    """``pulseaudio`` with one null sink, on a socket in ``folder``; stop() ends it."""

    def __init__(self, folder: Path):
        self.folder = folder
        runtime = folder / "pulse-runtime"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket = runtime / "native"
        self.env = {"PULSE_SERVER": f"unix:{self.socket}", "XDG_RUNTIME_DIR": str(runtime)}
        binary = shutil.which("pulseaudio")
        if binary is None:
            raise RuntimeError("no pulseaudio (scripts/setup.sh --test installs it)")
        self.process = subprocess.Popen(
            [binary, "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "-n",
             "--use-pid-file=no", "--load=module-null-sink sink_name=haven_null",
             f"--load=module-native-protocol-unix socket={self.socket} auth-anonymous=1"],
            env={**os.environ, **self.env, "HOME": str(folder)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pulseaudio did not start: {self.process.stderr.read()}")
            time.sleep(0.1)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process.stderr.close()


class FirefoxPage:
    def __init__(self, driver: Firefox, page: int):
        self.driver = driver
        self.id = page

    def eval(self, expression: str):
        return self.driver.call("eval", page=self.id, expression=expression).get("value")

    def click(self, selector: str):
        self.driver.call("click", page=self.id, selector=selector)

    def fill(self, selector: str, text: str):
        self.driver.call("fill", page=self.id, selector=selector, text=text)

    def errors(self) -> list[str]:
        return self.driver.call("errors", page=self.id)["value"]

    def close(self):
        self.driver.call("close", page=self.id)


class Firefox:
    """One headless firefox-esr (its own temporary profile) and its pages."""

    def __init__(self, prefs: dict | None = None, env: dict | None = None,
                 prefix: list[str] | None = None):
        """``prefix``: e.g. ``ip netns exec NAME`` to run the browser in a namespace."""
        options = {"executablePath": FIREFOX, "prefs": {**FAKE_MEDIA_PREFS, **(prefs or {})},
                   "env": env or {}}
        self.process = subprocess.Popen(
            [*(prefix or []), shutil.which("node") or "node", str(DRIVER), json.dumps(options)],
            cwd=ROOT, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self._next = 1
        hello = self._read(timeout=90)
        if not hello.get("ready"):
            raise RuntimeError(f"firefox driver did not start: {hello}")
        self.version = hello["version"]

    def _read(self, timeout: float) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=5)
            raise RuntimeError(f"firefox driver exited: {self.process.stderr.read()}")
        return json.loads(line)

    def call(self, op: str, **args) -> dict:
        cid = self._next
        self._next += 1
        self.process.stdin.write(json.dumps({"id": cid, "op": op, **args}) + "\n")
        self.process.stdin.flush()
        answer = self._read(timeout=120)
        if not answer.get("ok"):
            raise RuntimeError(f"firefox {op} failed: {answer.get('error')}")
        return answer

    def open(self, url: str, width: int = 1280, height: int = 800) -> FirefoxPage:
        return FirefoxPage(self, self.call("open", url=url, width=width, height=height)["page"])

    def quit(self):
        try:
            if self.process.poll() is None:
                self.call("quit")
        except (RuntimeError, BrokenPipeError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            stream.close()
