#!/usr/bin/env python3
"""Side rooms, measured: in a group meeting of real aiortc Python clients through the real
Haven app and SFU on loopback (in this process), how long from a member's `side_room_accept`
until the facilitator and the member each decrypt the other's frames under the side room's
new key generation, and from `side_room_return` until the member decrypts every group
member's current key and every group member decrypts the member's.

    .venv/bin/python bench/side_room_bench.py                 # 6 people, 10 round trips
    .venv/bin/python bench/side_room_bench.py --members 6 --rounds 20

The figure is what a person notices (the first words they can hear after stepping out or
back): the SFU's switch is synchronous, so it is the key exchange (the moderation state
reaching each client, its new generation or ratchet step, the wrapped keys relayed) plus
one frame. Prints each round, then median and max (seconds), and one JSON line.
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
from media.sframe import decode_header, split_kid  # noqa: E402
from media.voice_client import VoiceClient  # noqa: E402
from tests.moderation_support import build_meeting  # noqa: E402
from tests.voice_support import VoiceServer, tone  # noqa: E402


def watch_decrypts(client: VoiceClient) -> dict:
    """{sender id: (generation, step, time)} of the newest key each sender's frames
    decrypted under at this client."""
    seen: dict[int, tuple[int, int, float]] = {}
    receiver = client.manager.receiver
    decrypt = receiver.decrypt

    def recording(payload, *args, **kwargs):
        out = decrypt(payload, *args, **kwargs)
        header, _ = decode_header(payload)
        sender, gen, step = split_kid(header.kid)
        if seen.get(sender, (None, None))[:2] != (gen, step):
            seen[sender] = (gen, step, time.monotonic())
        return out

    receiver.decrypt = recording
    return seen


def current(client: VoiceClient) -> tuple[int, int]:
    key = client.manager.sender.key
    return key.generation % 128, key.ratchet_step % 32


async def until(cond, timeout: float = 20.0) -> float:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("not reached")
        await asyncio.sleep(0.002)
    return time.monotonic()


async def main(members: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        async with VoiceServer(Path(tmp) / "data") as server:
            world = build_meeting(server.app, server.base_url, members=members - 2)
            names = ["Sage", "Cedar"] + [f"M{i}" for i in range(1, members - 1)]
            clients, seen = {}, {}
            for i, who in enumerate(names):
                c = VoiceClient(world.link(who), IdentityKeys.generate(),
                                send_pcm=tone(300 + 100 * i, seconds=600))
                await c.start()
                clients[who] = c
            try:
                for who, c in clients.items():
                    seen[who] = watch_decrypts(c)
                sage, m1 = clients["Sage"], clients["M1"]
                group = [w for w in names if w not in ("Sage", "M1")]

                def hears(rx: str, tx: str, since: float) -> bool:
                    got = seen[rx].get(clients[tx].sender_id)
                    return got is not None and got[:2] == current(clients[tx]) and got[2] > since

                await until(lambda: all(hears(rx, tx, 0) for rx in names for tx in names
                                        if rx != tx), 30)
                out, back = [], []
                for n in range(rounds):
                    await sage._send(sig.SideRoomInvite(m1.participant_id))
                    await until(lambda: server.hub.rooms[world.room_id].meeting.side_room_of(
                        m1.participant_id) is not None)
                    t0 = time.monotonic()
                    await m1._send(sig.SideRoomAccept())
                    await until(lambda t0=t0: len(m1.manager.audience) == 1
                                and hears("Sage", "M1", t0) and hears("M1", "Sage", t0))
                    out.append(time.monotonic() - t0)
                    await asyncio.sleep(0.5)
                    t1 = time.monotonic()
                    await m1._send(sig.SideRoomReturn())
                    await until(lambda t1=t1: len(m1.manager.audience) == members - 1
                                and all(hears("M1", w, t1) and hears(w, "M1", t1)
                                        for w in group))
                    back.append(time.monotonic() - t1)
                    print(f"round {n + 1}: stepped out {out[-1] * 1000:.0f} ms, "
                          f"back {back[-1] * 1000:.0f} ms", flush=True)
                    await asyncio.sleep(0.5)
            finally:
                for c in clients.values():
                    await c.close()
    return {"members": members, "rounds": rounds,
            "step_out_median_s": round(statistics.median(out), 3),
            "step_out_max_s": round(max(out), 3),
            "return_median_s": round(statistics.median(back), 3),
            "return_max_s": round(max(back), 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=6, help="people in the meeting (>= 4)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if args.members < 4:
        parser.error("--members must be at least 4")
    result = asyncio.run(main(args.members, args.rounds))
    print(f"step out: median {result['step_out_median_s']} s, max {result['step_out_max_s']} s; "
          f"return: median {result['return_median_s']} s, max {result['return_max_s']} s")
    print(json.dumps(result))
