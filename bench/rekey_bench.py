#!/usr/bin/env python3
"""Rekey on removal, measured: in a group meeting of 12 real aiortc Python clients through
the real Haven app and SFU on loopback, the time from the facilitator sending `remove` to
the last remaining client sending its first frame under the new key generation.

    .venv/bin/python bench/rekey_bench.py                 # 12 people, 20 removals
    .venv/bin/python bench/rekey_bench.py --people 8 --removals 5

The server runs in its own process (as `haven serve` does), the members' clients in
--workers processes, the facilitator's in this one; times come from the system's monotonic
clock, which all processes share. After each removal a new member joins, so every removal
happens in a meeting of --people.
The clients send silence (still Opus, still SFrame-encrypted, 50 frames a second) and count
what they receive without decrypting it: the figure is the key exchange (signaling, the
remaining clients' new generation, its wrapped keys), not the audio path. Prints each
removal, then median and max (seconds), and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media import signaling as sig  # noqa: E402
from media.e2ee import IdentityKeys  # noqa: E402
from media.voice_client import VoiceClient  # noqa: E402
from tests.moderation_support import build_meeting  # noqa: E402


class BenchClient(VoiceClient):
    """A real client that counts what it receives instead of decrypting and decoding it
    (eleven incoming streams per client, several clients per process: decrypting them all
    would measure the bench's CPU, not the key exchange), and notes when it first sends
    under each key generation."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.first_sent: dict[int, float] = {}  # generation -> monotonic time

    def on_payload(self, mid, payload, seq=None):
        self.summary.frames_received += 1

    def _encrypt(self, frame: bytes) -> bytes:
        out = super()._encrypt(frame)
        if frame:
            self.first_sent.setdefault(self.manager.sender.key.generation, time.monotonic())
        return out


async def wait_for(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError(what)
        await asyncio.sleep(0.005)


def serve(data: str, port: int, ready) -> None:
    """The real Haven app on 127.0.0.1:port, in its own process (as `haven serve` runs)."""
    from aiohttp import web

    from tests.conftest import test_config
    from web.app import create_app

    async def main() -> None:
        runner = web.AppRunner(create_app(test_config(Path(data))))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def worker(conn) -> None:
    """Hosts some of the members' clients in its own process; answers the orchestrator."""

    async def main() -> None:
        clients: dict[str, BenchClient] = {}
        loop = asyncio.get_running_loop()
        while True:
            while not conn.poll():
                await asyncio.sleep(0.005)
            cmd, who, arg = conn.recv()
            if cmd == "add":
                c = BenchClient(arg, IdentityKeys.generate())
                await c.start()
                await wait_for(lambda c=c: bool(c.first_sent), 30, f"{who} sending")
                clients[who] = c
                conn.send(c.participant_id)
            elif cmd == "state":
                c = clients[who]
                conn.send((len(c.members), c.manager.sender.key.generation))
            elif cmd == "first_after":  # when it first sent under a generation > arg
                times = [t for g, t in clients[who].first_sent.items() if g > arg]
                conn.send(min(times) if times else None)
            elif cmd == "close":
                c = clients.pop(who)
                loop.create_task(c.close())
                conn.send(True)
            elif cmd == "stop":
                for c in clients.values():
                    await c.close()
                conn.send(True)
                return

    asyncio.run(main())


async def run(people: int, removals: int, workers: int) -> list[float]:
    import multiprocessing as mp

    from tests.conftest import free_port, test_config
    from web import appkeys
    from web.app import open_data_dir

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="haven-rekey-") as tmp:
        data, port = Path(tmp) / "data", free_port()
        ready = ctx.Event()
        server = ctx.Process(target=serve, args=(str(data), port, ready), daemon=True)
        server.start()
        pipes, procs = [], []
        try:
            if not ready.wait(60):
                raise RuntimeError("the server did not start")
            cfg = test_config(data)
            app = {appkeys.DATA_DIR: open_data_dir(cfg), appkeys.CONFIG: cfg}
            base = f"http://127.0.0.1:{port}"
            world = build_meeting(app, base, members=people - 1 + removals, co=False,
                                  admit=False)
            for _ in range(workers):
                here, there = ctx.Pipe()
                p = ctx.Process(target=worker, args=(there,), daemon=True)
                p.start()
                pipes.append(here)
                procs.append(p)

            async def ask(pipe, *cmd):
                pipe.send(cmd if len(cmd) == 3 else (*cmd, None))
                while not pipe.poll():
                    await asyncio.sleep(0.002)
                return pipe.recv()

            lead = BenchClient(world.link("Sage"), IdentityKeys.generate())
            await lead.start()
            queue = [f"M{i}" for i in range(1, people - 1 + removals + 1)]
            present: dict[str, tuple] = {}  # who -> (pipe, participant id)
            turn = 0

            async def add() -> None:
                nonlocal turn
                who = queue.pop(0)
                world.admit(who)
                pipe = pipes[turn % len(pipes)]
                turn += 1
                present[who] = (pipe, await ask(pipe, "add", who, world.link(who)))

            for _ in range(people - 1):
                await add()
            times = []
            for n in range(removals):
                async def full() -> bool:
                    states = [await ask(pipe, "state", who) for who, (pipe, _p) in present.items()]
                    return (len(lead.members) == people - 1
                            and all(m == people - 1 for m, _g in states))

                end = time.monotonic() + 60
                while not await full():
                    if time.monotonic() > end:
                        raise TimeoutError("the meeting did not fill")
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # everyone sending under its current keys
                victim = next(iter(present))
                vpipe, vpid = present.pop(victim)
                old = {who: (await ask(pipe, "state", who))[1] for who, (pipe, _p) in present.items()}
                lead_old = lead.manager.sender.key.generation
                t0 = time.monotonic()
                await lead._send(sig.Remove(vpid))
                firsts: dict[str, float] = {}
                end = time.monotonic() + 30
                while len(firsts) < len(present) or not any(g > lead_old for g in lead.first_sent):
                    for who, (pipe, _p) in present.items():
                        if who not in firsts:
                            t = await ask(pipe, "first_after", who, old[who])
                            if t is not None:
                                firsts[who] = t
                    if time.monotonic() > end:
                        raise TimeoutError("not every client moved to a new generation")
                    await asyncio.sleep(0.01)
                lead_t = min(t for g, t in lead.first_sent.items() if g > lead_old)
                times.append(max([lead_t, *firsts.values()]) - t0)
                print(f"removal {n + 1:2d}: {times[-1] * 1000:7.1f} ms "
                      f"({len(present) + 1} remaining)", flush=True)
                await ask(vpipe, "close", victim)
                await add()
            await lead.close()
            for pipe in pipes:
                await ask(pipe, "stop", "")
            return times
        finally:
            for p in procs:
                p.join(5)
                if p.is_alive():
                    p.terminate()
            server.terminate()
            server.join(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, default=12, help="meeting size, 3..16")
    ap.add_argument("--removals", type=int, default=20, help="removals to time, 1..50")
    ap.add_argument("--workers", type=int, default=3,
                    help="processes hosting the members' clients (the server has its own), 1..8")
    args = ap.parse_args()
    if not 3 <= args.people <= 16 or not 1 <= args.removals <= 50 or not 1 <= args.workers <= 8:
        ap.error("--people must be 3..16, --removals 1..50 and --workers 1..8")
    times = asyncio.run(run(args.people, args.removals, args.workers))
    med, worst = statistics.median(times), max(times)
    print(f"rekey on removal, {args.people}-person meeting, {len(times)} removals: "
          f"median {med * 1000:.1f} ms, max {worst * 1000:.1f} ms")
    print(json.dumps({"people": args.people, "removals": len(times),
                      "median_s": round(med, 4), "max_s": round(worst, 4),
                      "all_s": [round(t, 4) for t in times]}))


if __name__ == "__main__":
    main()
