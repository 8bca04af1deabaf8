"""Soak benchmark: a real ``haven serve`` under steady mixed load for a bounded time.

Load, all on 127.0.0.1, for ``--minutes``:

* ``--rooms`` instant voice rooms (``haven invite``), each with ``--per-room`` Python voice
  clients (media.voice_client: real aiortc peers, E2EE, a tone). Every client joins, stays a
  few seconds, leaves, waits a moment and joins again (the same identity, as a device that
  reconnects), so rooms open, fill, empty and close over and over;
* a therapist writing a sealed note every ``--note-every`` seconds;
* the therapist's and a patient's pages and API reads, one every ``--read-every`` seconds.

Reported (and written to ``--out`` as JSON): the server's RSS at the start (after a one
minute warm-up, and at the very first sample) and at the end, open file descriptors, every
HTTP 5xx, every log line at error level or above (and any line that is not JSON, such as a
traceback), joins and leaves, and client failures. The goal: RSS flat within 10% from the
warmed-up start to the end, and zero errors; the exit status is 0 only if both hold.

    .venv/bin/python bench/soak.py --minutes 60 --out /tmp/haven-soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from media.e2ee import IdentityKeys  # noqa: E402
from media.voice_client import VoiceClient  # noqa: E402

RATE = 48000


def tone(freq: float, seconds: float = 20.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (6000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_figures(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    return {"rss_kib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": threads}


@dataclass
class Tally:
    joins: int = 0
    leaves: int = 0
    join_failures: list[str] = field(default_factory=list)
    http: dict[int, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    notes: int = 0
    reads: int = 0

    def saw(self, method: str, path: str, status: int) -> None:
        self.http[status] = self.http.get(status, 0) + 1
        if status >= 500:
            self.server_errors.append(f"{method} {path} -> {status}")


class Browser:
    """A logged-in HTTP session with the CSRF token wired, like the pages."""

    def __init__(self, base: str, tally: Tally):
        self.base, self.tally = base, tally
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    def csrf(self) -> str:
        return next((c.value for c in self.http.cookie_jar if c.key == "haven_csrf"), "")

    async def request(self, method: str, path: str, **kw) -> tuple[int, object]:
        headers = {"X-CSRF-Token": self.csrf()} if method != "GET" else {}
        async with self.http.request(method, self.base + path, headers=headers, **kw) as r:
            body = await r.read()
            self.tally.saw(method, path, r.status)
            ctype = r.headers.get("Content-Type", "")
            return r.status, json.loads(body) if ctype.startswith("application/json") else body

    async def login(self, username: str, password: str) -> None:
        await self.request("GET", "/healthz")
        status, body = await self.request("POST", "/api/login", json={
            "username": username, "password": password})
        if status != 200:
            raise RuntimeError(f"login {username}: {status} {body}")


async def voice_slot(url: str, freq: float, until: float, tally: Tally, rng: random.Random):
    identity = IdentityKeys.generate()
    while time.monotonic() < until:
        client = VoiceClient(url, identity, send_pcm=tone(freq))
        try:
            await client.start()
            tally.joins += 1
            await asyncio.sleep(min(rng.uniform(3, 8), max(0.0, until - time.monotonic())))
        except Exception as exc:  # noqa: BLE001 - counted and reported, the soak goes on
            tally.join_failures.append(f"{type(exc).__name__}: {str(exc)[:120]}")
        finally:
            await client.close()
            tally.leaves += 1
        await asyncio.sleep(rng.uniform(1, 3))


async def note_writer(therapist: Browser, patient_id: int, every: float, until: float,
                      tally: Tally):
    i = 0
    while time.monotonic() < until:
        status, _ = await therapist.request("POST", f"/api/patients/{patient_id}/notes", json={
            "kind": "progress", "template": "free",
            "sections": {"text": f"soak note {i}: " + "calm words " * 20}})
        tally.notes += status == 201
        i += 1
        await asyncio.sleep(every)


async def page_reader(readers: list[tuple[Browser, str]], every: float, until: float,
                      tally: Tally):
    i = 0
    while time.monotonic() < until:
        who, path = readers[i % len(readers)]
        await who.request("GET", path)
        tally.reads += 1
        i += 1
        await asyncio.sleep(every)


async def sampler(pid: int, samples: list[dict], started: float, until: float, every: float):
    while time.monotonic() < until:
        samples.append({"t": round(time.monotonic() - started, 1), **proc_figures(pid)})
        await asyncio.sleep(every)
    samples.append({"t": round(time.monotonic() - started, 1), **proc_figures(pid)})


def haven(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "web.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=120)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return done.stdout


def log_errors(log_path: Path) -> list[str]:
    bad = []
    for line in log_path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            if not re.match(r"^(Demo clinic ready|  \S+ +\S+ +\S+$|Haven is listening)", line):
                bad.append(line[:200])
            continue
        if entry.get("level") in ("error", "critical"):
            bad.append(line[:300])
    return bad


async def soak(args) -> dict:
    work = Path(args.work or tempfile.mkdtemp(prefix="haven-soak-"))
    data_dir, log_path = work / "data", work / "server.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "serve", "--demo", "--port", str(port),
             "--data-dir", str(data_dir), "--ice-loopback-only"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    tally = Tally()
    browsers: list[Browser] = []
    try:
        for _ in range(300):
            if server.poll() is not None:
                raise RuntimeError(log_path.read_text())
            try:
                with __import__("socket").create_connection(("127.0.0.1", port), 0.5):
                    break
            except OSError:
                await asyncio.sleep(0.2)
        for _ in range(100):  # (the demo's logins may be written just after the port opens)
            if (data_dir / "demo-logins.txt").exists():
                break
            await asyncio.sleep(0.2)
        logins = dict(line.split(" ", 1) for line in
                      (data_dir / "demo-logins.txt").read_text().splitlines()
                      if line and not line.startswith("#"))
        therapist, patient = Browser(base, tally), Browser(base, tally)
        browsers += [therapist, patient]
        await therapist.login("therapist", logins["therapist"])
        await patient.login("patient", logins["patient"])
        _, listed = await therapist.request("GET", "/api/practice/patients")
        patient_id = next(p["id"] for p in listed["patients"] if p["username"] == "patient")
        urls = []
        for r in range(args.rooms):
            urls.append(haven("invite", "--data-dir", str(data_dir), "--room", f"soak-{r}",
                              "--count", str(args.per_room), "--hours", "24").split())
        readers = [(therapist, "/practice"), (therapist, "/api/practice/dashboard"),
                   (therapist, f"/practice/patients/{patient_id}"),
                   (therapist, "/api/appointments"), (patient, "/practice"),
                   (patient, "/practice/record"), (patient, "/api/me/record"),
                   (therapist, "/practice/waiting-room")]
        started = time.monotonic()
        until = started + args.minutes * 60
        samples: list[dict] = []
        rng = random.Random(args.seed)
        tasks = [sampler(server.pid, samples, started, until, args.sample_every),
                 note_writer(therapist, patient_id, args.note_every, until, tally),
                 page_reader(readers, args.read_every, until, tally)]
        for r, room in enumerate(urls):
            for i, url in enumerate(room):
                tasks.append(voice_slot(url, 300 + 100 * r + 37 * i, until, tally,
                                        random.Random(rng.random())))
        await asyncio.gather(*tasks)
        await asyncio.sleep(3)  # let the last leaves settle
        end = proc_figures(server.pid)
    finally:
        for b in browsers:
            await b.http.close()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    warm = next((s for s in samples if s["t"] >= args.warmup), samples[0])
    errors = log_errors(log_path)
    growth = (end["rss_kib"] - warm["rss_kib"]) / warm["rss_kib"]
    return {
        "minutes": args.minutes, "rooms": args.rooms, "clients_per_room": args.per_room,
        "rss_kib_first": samples[0]["rss_kib"], "rss_kib_start": warm["rss_kib"],
        "rss_kib_end": end["rss_kib"], "rss_kib_max": max(s["rss_kib"] for s in samples),
        "rss_growth_pct": round(100 * growth, 1),
        "fds_start": warm["fds"], "fds_end": end["fds"],
        "fds_max": max(s["fds"] for s in samples),
        "threads_start": warm["threads"], "threads_end": end["threads"],
        "joins": tally.joins, "leaves": tally.leaves, "join_failures": len(tally.join_failures),
        "join_failure_examples": tally.join_failures[:5],
        "notes_written": tally.notes, "reads": tally.reads,
        "http_statuses": dict(sorted(tally.http.items())),
        "http_5xx": len(tally.server_errors), "http_5xx_examples": tally.server_errors[:5],
        "error_log_lines": len(errors), "error_log_examples": errors[:5],
        "samples": samples, "server_log": str(log_path),
        "goal_met": abs(growth) <= 0.10 and not tally.server_errors and not errors,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--rooms", type=int, default=4)
    p.add_argument("--per-room", type=int, default=3)
    p.add_argument("--note-every", type=float, default=2.0, help="seconds between notes")
    p.add_argument("--read-every", type=float, default=0.5, help="seconds between page reads")
    p.add_argument("--sample-every", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=60.0,
                   help="seconds before the RSS that counts as the start")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work", default=None, help="folder for the data and the server log")
    p.add_argument("--out", default=None, help="write the report as JSON here")
    args = p.parse_args(argv)
    if not 0 < args.minutes <= 24 * 60 or not 1 <= args.rooms <= 16 or not 1 <= args.per_room <= 8:
        p.error("--minutes must be in (0, 1440], --rooms 1-16, --per-room 1-8")
    report = asyncio.run(soak(args))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    short = {k: v for k, v in report.items() if k != "samples"}
    print(json.dumps(short, indent=2))
    return 0 if report["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
