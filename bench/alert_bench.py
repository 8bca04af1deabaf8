#!/usr/bin/env python3
"""The private alert from the room, measured: in a group meeting over the real Haven app
and signaling hub on loopback (real SQLite file, sealing, audit), the time from a member
sending `help_alert` to the facilitators present receiving `safety_alert`, and to the member
getting `help_alert_sent`.

    .venv/bin/python bench/alert_bench.py                 # 12 members, 2 facilitators
    .venv/bin/python bench/alert_bench.py --members 20

Each member sends one alert (the hub allows one per person per 30 s), one after another.
Prints each alert, then median and max (milliseconds), and one JSON line.
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
from tests.moderation_support import Peer, build_meeting  # noqa: E402
from tests.voice_support import VoiceServer  # noqa: E402


async def main(members: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        async with VoiceServer(Path(tmp) / "data") as server:
            world = build_meeting(server.app, server.base_url, members=members)
            facs = [await Peer(world.link(w)).start() for w in ("Sage", "Cedar")]
            peers = [await Peer(world.link(f"M{i}")).start() for i in range(1, members + 1)]
            told, acked = [], []
            try:
                for i, peer in enumerate(peers, 1):
                    since = [len(f.messages) for f in facs]
                    start = time.monotonic()
                    await peer.send(sig.HelpAlert(f"bench alert {i}"))
                    ack = await peer.wait(lambda m: isinstance(m, sig.HelpAlertSent))
                    acked.append(time.monotonic() - start)
                    for f, n in zip(facs, since, strict=True):
                        await f.wait(lambda m, a=ack: isinstance(m, sig.SafetyAlert)
                                     and m.alert_id == a.alert_id, since=n)
                    told.append(time.monotonic() - start)
                    print(f"alert {i:2d}: facilitators told {told[-1] * 1000:6.1f} ms, "
                          f"sender acknowledged {acked[-1] * 1000:6.1f} ms")
            finally:
                for p in facs + peers:
                    await p.close()
    out = {"members": members, "alerts": len(told),
           "told_median_ms": round(statistics.median(told) * 1000, 1),
           "told_max_ms": round(max(told) * 1000, 1),
           "ack_median_ms": round(statistics.median(acked) * 1000, 1)}
    print(f"median {out['told_median_ms']} ms, max {out['told_max_ms']} ms "
          f"(both facilitators told); acknowledgement median {out['ack_median_ms']} ms")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=12)
    asyncio.run(main(parser.parse_args().members))
