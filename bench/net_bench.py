"""Voice on simulated real networks, measured (needs root: network namespaces, nftables,
coturn, Chromium). Self-contained: builds the lab of tests/net/lab.py, starts coturn and
`haven serve`, runs the real clients, removes everything. Prints a Markdown table.

    sudo .venv/bin/python bench/net_bench.py               # everything (~10 minutes)
    sudo .venv/bin/python bench/net_bench.py --only join,loss --repeats 5

Figures:
* join: from the client starting to join (WebSocket opened; for the browser: the click on
  "Join") to the first decrypted frame of the other side's voice, Python client and browser,
  direct (client behind a home NAT) and through coturn over TCP (a network dropping all UDP).
  Median and worst of --repeats. The Python client's figure through TURN includes its
  reachability check of the TURN URLs (up to 1.5 s when UDP is blocked).
* loss: the share of 20 ms frames the receiver lost, rebuilt from FEC, and concealed (PLC),
  with random loss of 0, 5 and 15 % on every UDP packet arriving in its network
  (nftables), the sender's Opus FEC on and off. 20 s calls.
* move: from the client's address changing mid-call to its first decrypted frame after it
  reconnected (the Python client; median and worst of --moves).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.net.lab import Lab, build_world, unavailable  # noqa: E402
from tests.net.services import call, finish, load_stats, start_coturn, start_haven  # noqa: E402
from tests.voice_support import syllables, write_wav  # noqa: E402


def median_worst(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values) * 1000:.0f} ms / {max(values) * 1000:.0f} ms"


class Bench:
    def __init__(self, folder: Path, lab: Lab) -> None:
        self.folder = folder
        self.world = w = build_world(lab)
        self.turn = start_coturn(w.relay, w.RELAY, folder / "coturn")
        self.env = {"SSL_CERT_FILE": str(self.turn.ca)}
        self.direct = start_haven(w.pub, folder / "direct", port=8080,
                                  base_url=f"http://{w.PUB}:8080")
        turn_args = [a for u in self.turn.urls("udp", "tcp", "tls") for a in ("--ice-server", u)]
        self.relayed = start_haven(w.pub, folder / "relayed", port=8081,
                                   base_url=f"http://{w.PUB}:8081",
                                   args=(*turn_args, "--turn-secret", self.turn.secret))
        self.near_wav = write_wav(folder / "near.wav", syllables(600, 120))
        self.far_wav = write_wav(folder / "far.wav", syllables(1500, 120))
        self.n = 0

    def _dir(self, name: str) -> Path:
        self.n += 1
        d = self.folder / f"{self.n:03d}-{name}"
        d.mkdir()
        return d

    def speaker(self, server, room: str, seconds: float):
        """Someone already in the room, talking (from the public cafe network)."""
        urls = server.invite(room, 12)
        d = self._dir(f"speaker-{room}")
        proc = call(self.world.cafe, urls[0], d, "speaker", send=self.far_wav, seconds=seconds,
                    env=self.env, agent=True)
        deadline = time.monotonic() + 90
        while not (d / "speaker.json.joined").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3.0)  # its media connection is up and it is talking
        return proc, urls[1:]

    def python_joins(self, server, ns, room: str, repeats: int) -> list[float]:
        speaker, urls = self.speaker(server, room, seconds=repeats * 12 + 30)
        out = []
        for i in range(repeats):
            d = self._dir(f"pyjoin-{room}")
            proc = call(ns, urls[i % len(urls)], d, "joiner", send=self.near_wav, seconds=4,
                        env=self.env, agent=True)
            rc, _, err = finish(proc)
            stats = load_stats(d / "joiner.json")
            if stats["first_audio_at"] is not None:
                out.append(stats["first_audio_at"] - stats["started_at"])
            else:
                print(f"  python join {i}: no audio ({err[-300:]!r})", file=sys.stderr)
        speaker.terminate()
        finish(speaker)
        return out

    def browser_joins(self, server, ns, room: str, repeats: int) -> list[float]:
        from playwright.sync_api import sync_playwright

        from tests.net.browser import SessionTab, launch_in

        speaker, urls = self.speaker(server, room, seconds=repeats * 15 + 60)
        out = []
        d = self._dir(f"browser-{room}")
        with sync_playwright() as p:
            browser = launch_in(p, ns, d, self.near_wav, origin=server.base_url)
            try:
                for i in range(repeats):
                    tab = SessionTab(browser, urls[i % len(urls)])
                    try:
                        clicked = tab.join(f"B{i}")
                        deadline = clicked + 30
                        while time.monotonic() < deadline:
                            if any(s["samples"] - s["concealed"] > 0 for s in tab.inbound()):
                                out.append(time.monotonic() - clicked)
                                break
                            time.sleep(0.02)
                        else:
                            print(f"  browser join {i}: no audio", file=sys.stderr)
                    finally:
                        tab.close()
            finally:
                browser.close()
        speaker.terminate()
        finish(speaker)
        return out

    def loss(self, percent: int, fec: bool, seconds: float) -> dict:
        w = self.world
        urls = self.direct.invite(f"loss-{percent}-{fec}-{self.n}", 2)
        d = self._dir(f"loss{percent}-{'fec' if fec else 'nofec'}")
        w.drop_incoming_udp(w.home, 0)
        recv = call(w.home, urls[0], d, "receiver", send=self.near_wav, seconds=seconds + 4,
                    env=self.env, agent=True)
        send = call(w.cafe, urls[1], d, "sender", send=self.far_wav, seconds=seconds + 4,
                    env=self.env, agent=True, extra=() if fec else ("--no-fec",))
        deadline = time.monotonic() + 60
        while not (d / "receiver.json.audio").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        w.drop_incoming_udp(w.home, percent)
        try:
            finish(recv)
            finish(send)
        finally:
            w.drop_incoming_udp(w.home, 0)
        r = load_stats(d / "receiver.json")["receive"]
        frames = max(r.get("frames", 0), 1)
        return {"frames": r.get("frames", 0),
                "lost": (r.get("recovered", 0) + r.get("concealed", 0)) / frames,
                "recovered": r.get("recovered", 0) / frames,
                "concealed": r.get("concealed", 0) / frames}

    def move(self) -> float | None:
        w = self.world
        urls = self.direct.invite(f"move-{self.n}", 2)
        d = self._dir("move")
        near = call(w.home, urls[0], d, "near", send=self.near_wav, seconds=16, env=self.env,
                    agent=True)
        far = call(w.cafe, urls[1], d, "far", send=self.far_wav, seconds=16, env=self.env,
                   agent=True)
        deadline = time.monotonic() + 60
        while not (d / "near.json.audio").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)
        moved = time.monotonic()
        w.move_home()
        try:
            finish(near)
            finish(far)
        finally:
            w.move_back_home()
        recs = load_stats(d / "near.json")["recoveries"]
        if not recs or recs[0]["audio_at"] is None:
            print(f"  move: no recovery ({recs})", file=sys.stderr)
            return None
        return recs[0]["audio_at"] - moved


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="join,loss,move")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--moves", type=int, default=5)
    ap.add_argument("--loss-seconds", type=float, default=20)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    args = ap.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"net_bench: {reason}", file=sys.stderr)
        return 2
    parts = set(args.only.split(","))
    raw: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="haven-net-bench-") as tmp, Lab() as lab:
        b = Bench(Path(tmp), lab)
        w = b.world
        if "join" in parts:
            raw["join"] = {
                "python direct": b.python_joins(b.direct, w.home, "pyd", args.repeats),
                "python TURN/TCP": b.python_joins(b.relayed, w.corp, "pyt", args.repeats),
            }
            if not args.no_browser:
                raw["join"]["browser direct"] = b.browser_joins(b.direct, w.home, "brd",
                                                                args.repeats)
                raw["join"]["browser TURN/TCP"] = b.browser_joins(b.relayed, w.corp, "brt",
                                                                  args.repeats)
        if "loss" in parts:
            raw["loss"] = {f"{p}% {'FEC on' if fec else 'FEC off'}": b.loss(p, fec, args.loss_seconds)
                           for p in (0, 5, 15) for fec in (True, False)}
        if "move" in parts:
            raw["move"] = [t for t in (b.move() for _ in range(args.moves)) if t is not None]
    raw["load_after"] = os.getloadavg()
    print(f"\nHaven voice on simulated networks, {raw['date']}; load average before "
          f"{raw['load_before'][0]:.1f}, after {raw['load_after'][0]:.1f} (2 cores)\n")
    if "join" in raw:
        print("| join to first decrypted audio | runs | median / worst |\n|---|---|---|")
        for name, values in raw["join"].items():
            print(f"| {name} | {len(values)} | {median_worst(values)} |")
        print()
    if "loss" in raw:
        print("| random loss, sender FEC | frames | lost | rebuilt by FEC | concealed (PLC) |")
        print("|---|---|---|---|---|")
        for name, r in raw["loss"].items():
            print(f"| {name} | {r['frames']} | {r['lost']:.1%} | {r['recovered']:.1%} | "
                  f"{r['concealed']:.1%} |")
        print()
    if "move" in raw:
        print(f"| address change to audio again | {len(raw['move'])} runs | "
              f"{median_worst(raw['move'])} |\n|---|---|---|")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
