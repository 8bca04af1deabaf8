"""Shared fixtures: a real Haven app on a real SQLite file in a temporary data folder.

* ``make_app`` / ``client``: the aiohttp app in-process (pytest-aiohttp's test server).
* ``live_server``: ``haven serve --demo`` as a real subprocess on a free loopback port, for
  browser tests and CLI clients. It yields a ``LiveServer`` with the base URL, the data
  folder and the demo logins.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from therapy.accounts import ScryptCost
from web.app import create_app
from web.config import Config

# Cheap scrypt in tests: the real cost is 32 MiB and ~100 ms per hash.
TEST_COST = ScryptCost(n=2**10, r=8, p=1)
ROOT = Path(__file__).resolve().parent.parent


def test_config(data_dir: Path, **overrides) -> Config:
    cfg = dict(data_dir=data_dir, scrypt_cost=TEST_COST, ice_loopback_only=True)
    cfg.update(overrides)
    return Config(**cfg)


@pytest.fixture
def make_app(tmp_path):
    def factory(**overrides) -> web.Application:
        return create_app(test_config(tmp_path / "data", **overrides))

    return factory


class Browserish:
    """A test client that behaves like a browser: keeps cookies and sends the CSRF token."""

    def __init__(self, client):
        self.client = client

    @property
    def csrf(self) -> str:
        for cookie in self.client.session.cookie_jar:
            if cookie.key == "haven_csrf":
                return cookie.value
        return ""

    async def prime(self):
        await self.client.get("/healthz")
        if not self.csrf:
            await self.client.get("/")

    async def get(self, path, **kw):
        return await self.client.get(path, **kw)

    async def send(self, method, path, json=None, csrf=True, **kw):
        await self.prime()
        headers = dict(kw.pop("headers", {}) or {})
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return await self.client.request(method, path, json=json, headers=headers, **kw)

    async def post(self, path, json=None, **kw):
        return await self.send("POST", path, json=json, **kw)

    async def signup(self, username, password="correct horse battery", **extra):
        return await self.post("/api/signup", {"username": username, "password": password, **extra})

    async def login(self, username, password="correct horse battery"):
        return await self.post("/api/login", {"username": username, "password": password})


@pytest.fixture
async def client(aiohttp_client, make_app):
    c = await aiohttp_client(make_app())
    return Browserish(c)


@pytest.fixture
async def new_client():
    """Another browser on the same running app: ``await new_client(client)``."""
    from aiohttp.test_utils import TestClient

    made = []

    async def factory(existing: Browserish) -> Browserish:
        c = TestClient(existing.client.server)
        await c.start_server()
        made.append(c)
        return Browserish(c)

    yield factory
    for c in made:
        await c.session.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    base_url: str
    data_dir: Path
    logins: dict[str, str]
    process: subprocess.Popen
    log_path: Path

    def haven(self, *args: str, input: str | None = None, timeout: float = 60):
        """Run another ``haven`` command against this server's data folder."""
        return subprocess.run(
            [sys.executable, "-m", "web.cli", *args],
            capture_output=True, text=True, input=input, timeout=timeout, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )


def start_live_server(tmp_dir: Path, extra_args: list[str] | None = None) -> LiveServer:
    port = free_port()
    data_dir = tmp_dir / "data"
    log_path = tmp_dir / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "serve", "--demo", "--port", str(port),
             "--data-dir", str(data_dir), "--ice-loopback-only", *(extra_args or [])],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"haven serve exited early:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError(f"haven serve did not listen:\n{log_path.read_text()}")
    logins = {}
    for line in (data_dir / "demo-logins.txt").read_text().splitlines():
        m = re.fullmatch(r"(\S+) (\S+)", line)
        if m and not line.startswith("#"):
            logins[m.group(1)] = m.group(2)
    return LiveServer(base_url, data_dir, logins, proc, log_path)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    server = start_live_server(tmp_path_factory.mktemp("live"))
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
