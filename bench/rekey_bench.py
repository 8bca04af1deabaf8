#!/usr/bin/env python3
"""Rekey on removal, measured: in a group meeting of 12 real aiortc Python clients through
the real Haven app and SFU on loopback, the time from the facilitator sending `remove` to
the last remaining client sending its first frame under the new key generation.

    .venv/bin/python bench/rekey_bench.py                 # 12 people, 20 removals
    .venv/bin/python bench/rekey_bench.py --people 8 --removals 5

After each removal a new member joins, so every removal happens in a meeting of --people.
The clients send silence (still Opus, still SFrame-encrypted, 50 frames a second) and count
what they receive without decoding it: the figure is the key exchange (signaling, the
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
from tests.voice_support import VoiceServer  # noqa: E402


class BenchClient(VoiceClient):
    """A real client that counts what it receives instead of decoding it, and notes when it
    first sends under each key generation."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.first_sent: dict[int, float] = {}  # generation -> monotonic time

    def _play(self, mid, stats, seq, plain):
        stats.received += 1
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


async def run(people: int, removals: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="haven-rekey-") as tmp:
        async with VoiceServer(Path(tmp) / "data") as server:
            world = build_meeting(server.app, server.base_url, members=people - 1 + removals,
                                  co=False, admit=False)
            names = [f"M{i}" for i in range(1, people - 1 + removals + 1)]
            queue = list(names)

            async def add(who: str) -> BenchClient:
                if who != "Sage":
                    world.admit(who)
                c = BenchClient(world.link(who), IdentityKeys.generate())
                await c.start()
                await wait_for(lambda: c.connected.is_set() or c.first_sent, 20,
                               f"{who} connecting")
                return c

            lead = await add("Sage")
            present = {}
            for _ in range(people - 1):
                who = queue.pop(0)
                present[who] = await add(who)
            times = []
            for n in range(removals):
                everyone = [lead, *present.values()]
                await wait_for(lambda: all(len(c.members) == people - 1 for c in everyone)
                               and all(c.first_sent for c in everyone), 30, "a full meeting")
                await asyncio.sleep(0.5)  # every client sending under its current keys
                victim_name = next(iter(present))
                victim = present.pop(victim_name)
                remaining = [lead, *present.values()]
                old = {id(c): c.manager.sender.key.generation for c in remaining}
                t0 = time.monotonic()
                await lead._send(sig.Remove(victim.participant_id))
                await wait_for(lambda: all(max(c.first_sent) > old[id(c)] for c in remaining),
                               30, "every remaining client under a new generation")
                last = max(min(t for g, t in c.first_sent.items() if g > old[id(c)])
                           for c in remaining)
                times.append(last - t0)
                print(f"removal {n + 1:2d}: {times[-1] * 1000:7.1f} ms "
                      f"({len(remaining)} remaining)", flush=True)
                await victim.close()
                who = queue.pop(0)
                present[who] = await add(who)
            for c in [lead, *present.values()]:
                await c.close()
            return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, default=12, help="meeting size, 3..16")
    ap.add_argument("--removals", type=int, default=20, help="removals to time, 1..50")
    args = ap.parse_args()
    if not 3 <= args.people <= 16 or not 1 <= args.removals <= 50:
        ap.error("--people must be 3..16 and --removals 1..50")
    times = asyncio.run(run(args.people, args.removals))
    med, worst = statistics.median(times), max(times)
    print(f"rekey on removal, {args.people}-person meeting, {len(times)} removals: "
          f"median {med * 1000:.1f} ms, max {worst * 1000:.1f} ms")
    print(json.dumps({"people": args.people, "removals": len(times),
                      "median_s": round(med, 4), "max_s": round(worst, 4),
                      "all_s": [round(t, 4) for t in times]}))


if __name__ == "__main__":
    main()
