#!/usr/bin/env python3
"""Audio-forwarding load generator + SFU cost meter (127.0.0.1 only).

Connects R rooms x (P publishers + S subscribers) -- or R rooms x N peers that
each publish one Opus stream and subscribe to the other N-1 -- to an SFU through
a signaling adapter (sfubench/adapters.py), waits until every forwarded stream
flows, then measures a steady-state window:

  SFU:     utime+stime (/proc/PID/stat) and VmRSS of the given PID(s)
  clients: packets sent by publishers, RTP packets received by subscribers,
           onset-to-onset latency on up to --latency-probes streams,
           CPU of the load processes themselves
  host:    busy fraction of all CPUs (/proc/stat)

and prints one JSON line. Everything is bounded: room/peer counts are capped,
setup has a deadline, the window is --duration seconds, then all peer
connections are closed and the worker processes exit.

  load.py --sfu janus --sfu-pid @/tmp/sfu-bench/janus.pid --rooms 4 --peers 4
  load.py --sfu aiortc-relay http://127.0.0.1:8089 --sfu-pid @/tmp/sfu-bench/relay.pid --rooms 1 --publishers 1 --subscribers 4
"""

from __future__ import annotations

# Copied from ../shared/tools/sfu-bench/load.py (sfu-bench, 2026-11-24), unchanged; the
# "haven" adapter is registered by sfubench/adapters.py in this folder.

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sfubench import loopback, media, procstat  # noqa: E402
from sfubench.adapters import ADAPTERS, make_adapter  # noqa: E402

LIMITS = {"rooms": 64, "per_room": 32, "pcs": 400, "duration": 600.0}


# ---------------------------------------------------------------- plan


def build_plan(args) -> list[dict]:
    """One dict per room: publisher names, subscribers as lists of publisher
    indices to receive, and which (subscriber, position) streams are probes."""
    rooms = []
    stream_ix = 0
    for r in range(args.rooms):
        if args.peers:
            pubs = [f"r{r}p{i}" for i in range(args.peers)]
            subs = [[j for j in range(args.peers) if j != i] for i in range(args.peers)]
        else:
            pubs = [f"r{r}p{i}" for i in range(args.publishers)]
            subs = []
        subs += [list(range(len(pubs))) for _ in range(args.subscribers)]
        rooms.append({"index": r, "pubs": pubs, "subs": subs, "first_stream": stream_ix})
        stream_ix += sum(len(s) for s in subs)
    total = stream_ix
    stride = max(1, math.ceil(total / args.latency_probes)) if args.latency_probes > 0 else 0
    for room in rooms:
        ix = room["first_stream"]
        room["probe"] = []
        for s in room["subs"]:
            room["probe"].append([bool(stride) and (ix + k) % stride == 0 for k in range(len(s))])
            ix += len(s)
    return rooms


# ---------------------------------------------------------------- worker


async def _wait_state(pc, states, deadline: float) -> bool:
    while pc.connectionState not in states:
        if pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _sleep_until(t: float) -> None:
    d = t - time.monotonic()
    if d > 0:
        await asyncio.sleep(d)


async def worker_async(conn, args, rooms: list[dict]) -> None:
    loopback.install()
    media.install_receive_hook()
    loop = asyncio.get_running_loop()
    adapter = make_adapter(args.sfu_name, args.sfu_url)
    pcs = []
    pub_stats: dict[str, media.PublisherStats] = {}  # feed -> stats
    probes: list[media.StreamProbe] = []
    sem = asyncio.Semaphore(8)
    t_setup = time.monotonic()
    deadline = t_setup + args.setup_timeout

    async def add_publisher(room_obj, name: str, seed: int):
        async with sem:
            stats = media.PublisherStats(name)
            pc = loopback.new_pc()
            pcs.append(pc)
            tr = pc.addTransceiver(media.OpusLoopTrack(media.get_loop(seed), stats), direction="sendonly")
            tr.setCodecPreferences(media.opus_capabilities())
            feed = await adapter.publish(room_obj, pc, name)
            pub_stats[feed] = stats
            return feed, pc

    async def add_subscriber(room_obj, feeds: list[str], probe_flags: list[bool]):
        async with sem:
            pc = loopback.new_pc()
            pcs.append(pc)
            mids = await adapter.subscribe(room_obj, pc, feeds)
            flag_by_feed = dict(zip(feeds, probe_flags))
            for t in pc.getTransceivers():
                feed = mids.get(t.mid)
                if feed is None:
                    continue
                probe = media.StreamProbe(feed, pub_stats.get(feed), flag_by_feed.get(feed, False))
                t.receiver._sfubench_probe = probe
                probes.append(probe)
            return pc

    try:
        await adapter.open()

        async def setup():
            room_objs = [await adapter.create_room(r["index"], len(r["pubs"])) for r in rooms]
            feeds_by_room = []
            for r, ro in zip(rooms, room_objs):
                res = await asyncio.gather(*(add_publisher(ro, n, r["index"] * 7 + i)
                                             for i, n in enumerate(r["pubs"])))
                feeds_by_room.append([f for f, _ in res])
            pub_pcs = [pc for pc in pcs]
            ok = await asyncio.gather(*(_wait_state(pc, ("connected",), deadline) for pc in pub_pcs))
            if not all(ok):
                raise RuntimeError(f"{ok.count(False)} publisher PCs did not connect: "
                                   f"{[pc.connectionState for pc in pub_pcs]}")
            tasks = []
            for r, ro, feeds in zip(rooms, room_objs, feeds_by_room):
                for sub, flags in zip(r["subs"], r["probe"]):
                    tasks.append(add_subscriber(ro, [feeds[i] for i in sub], flags))
            sub_pcs = await asyncio.gather(*tasks)
            ok = await asyncio.gather(*(_wait_state(pc, ("connected",), deadline) for pc in sub_pcs))
            if not all(ok):
                raise RuntimeError(f"{ok.count(False)} subscriber PCs did not connect")
            while any(p.count == 0 for p in probes) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)

        await asyncio.wait_for(setup(), args.setup_timeout)
        flowing = sum(1 for p in probes if p.count > 0)
        conn.send(("ready", {"streams": len(probes), "flowing": flowing, "pcs": len(pcs),
                             "setup_s": round(time.monotonic() - t_setup, 2)}))
        msg = await loop.run_in_executor(None, conn.recv)
        if msg[0] != "window":
            return
        t0, t1 = msg[1], msg[2]

        def snap():
            return ({f: (s.sent, s.late) for f, s in pub_stats.items()},
                    [(p.count, p.unmatched) for p in probes], media.UNMAPPED[0])

        await _sleep_until(t0)
        s0 = snap()
        await _sleep_until(t1)
        s1 = snap()
        sent = {f: s1[0][f][0] - s0[0][f][0] for f in pub_stats}
        late = sum(s1[0][f][1] - s0[0][f][1] for f in pub_stats)
        received = [c1 - c0 for (c0, _), (c1, _) in zip(s0[1], s1[1])]
        expected = sum(sent.get(p.feed, 0) for p in probes)
        lat = [l for p in probes for (t, l) in p.latencies if t0 <= t <= t1]
        conn.send(("result", {
            "packets_sent": sum(sent.values()),
            "packets_forwarded": sum(received),
            "packets_expected": expected,
            "streams_silent": sum(1 for x in received if x == 0),
            "late": late,
            "latencies": lat,
            "latency_unmatched": sum(u1 - u0 for (_, u0), (_, u1) in zip(s0[1], s1[1])),
            "latency_probes": sum(1 for p in probes if p.decoder is not None),
            "unmapped": s1[2],
            "dropped_candidates": loopback.DROPPED[0],
        }))
    except Exception:
        conn.send(("error", traceback.format_exc()))
    finally:
        try:
            await asyncio.wait_for(asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True), 15)
        except Exception:
            pass
        try:
            await asyncio.wait_for(adapter.close(), 15)
        except Exception:
            pass


def worker_main(conn, args, rooms) -> None:
    try:
        asyncio.run(worker_async(conn, args, rooms))
    finally:
        conn.close()


# ---------------------------------------------------------------- parent


def resolve_pids(spec: str) -> list[int]:
    pids = []
    for part in spec.split(","):
        part = part.strip()
        if part.startswith("@"):
            with open(part[1:]) as f:
                part = f.read().strip()
        pids.append(int(part))
    for pid in pids:
        os.kill(pid, 0)  # raises if it does not exist
    return pids


def percentile(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sfu", nargs="+", required=True, metavar="NAME [URL]",
                   help=f"adapter ({', '.join(ADAPTERS)}) and optional base URL on 127.0.0.1")
    p.add_argument("--sfu-pid", required=True,
                   help="SFU PID(s) to meter: 123 or 123,456 or @pidfile")
    p.add_argument("--rooms", type=int, default=1)
    p.add_argument("--peers", type=int, default=0,
                   help="conference mode: N peers per room, each publishes and receives the other N-1")
    p.add_argument("--publishers", type=int, default=0, help="publishers per room (if no --peers)")
    p.add_argument("--subscribers", type=int, default=0,
                   help="receive-only subscribers per room, each receives every publisher")
    p.add_argument("--duration", type=float, default=20.0, help="steady-state window, s")
    p.add_argument("--warmup", type=float, default=3.0, help="s between all-streams-flowing and the window")
    p.add_argument("--idle", type=float, default=2.0, help="s of SFU idle CPU metering before connecting (0=skip)")
    p.add_argument("--setup-timeout", type=float, default=90.0)
    p.add_argument("--procs", type=int, default=1, help="load worker processes (rooms are split between them)")
    p.add_argument("--latency-probes", type=int, default=16,
                   help="max subscriber streams that decode audio to measure latency (0=off)")
    p.add_argument("--label", default="")
    p.add_argument("--out", help="also append the JSON line to this file")
    args = p.parse_args(argv)
    args.sfu_name = args.sfu[0]
    args.sfu_url = args.sfu[1] if len(args.sfu) > 1 else None
    if args.sfu_name not in ADAPTERS or len(args.sfu) > 2:
        p.error(f"--sfu NAME [URL], NAME in {list(ADAPTERS)}")
    per_room_pubs = args.peers or args.publishers
    per_room_subs = args.peers + args.subscribers
    if per_room_pubs < 1 or per_room_subs < 1 or (args.peers == 1 and not args.subscribers):
        p.error("need at least one publisher and one subscriber per room")
    if not (1 <= args.rooms <= LIMITS["rooms"]) or max(per_room_pubs, per_room_subs) > LIMITS["per_room"]:
        p.error(f"limits: rooms <= {LIMITS['rooms']}, peers/publishers/subscribers <= {LIMITS['per_room']}")
    if args.rooms * (per_room_pubs + per_room_subs) > LIMITS["pcs"]:
        p.error(f"more than {LIMITS['pcs']} peer connections")
    if not (1.0 <= args.duration <= LIMITS["duration"]) or args.warmup < 0 or args.idle < 0:
        p.error("duration must be 1..600 s")
    args.procs = max(1, min(args.procs, args.rooms, 8))
    args.setup_timeout = min(max(args.setup_timeout, 5.0), 600.0)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    sfu_pids = resolve_pids(args.sfu_pid)
    plan = build_plan(args)
    for seed in range(4):  # pre-encode before forking; children inherit the cache
        media.get_loop(seed)

    idle_util = None
    if args.idle > 0:
        c0, w0 = sum(map(procstat.cpu_seconds, sfu_pids)), time.monotonic()
        time.sleep(args.idle)
        idle_util = (sum(map(procstat.cpu_seconds, sfu_pids)) - c0) / (time.monotonic() - w0)

    ctx = mp.get_context("fork")
    workers = []
    for w in range(args.procs):
        parent_conn, child_conn = ctx.Pipe()
        rooms = [r for i, r in enumerate(plan) if i % args.procs == w]
        proc = ctx.Process(target=worker_main, args=(child_conn, args, rooms), daemon=True)
        proc.start()
        child_conn.close()
        workers.append((proc, parent_conn))

    def recv_all(kind: str, timeout: float) -> list:
        out, end = [], time.monotonic() + timeout
        for proc, conn in workers:
            if not conn.poll(max(0.0, end - time.monotonic())):
                raise RuntimeError(f"worker {proc.pid}: no '{kind}' within {timeout:.0f} s")
            msg = conn.recv()
            if msg[0] == "error":
                raise RuntimeError(f"worker {proc.pid} failed:\n{msg[1]}")
            out.append(msg[1])
        return out

    def stop_workers(msg) -> None:
        for proc, conn in workers:
            try:
                conn.send(msg)
            except (BrokenPipeError, OSError):
                pass
        for proc, _ in workers:
            proc.join(30)
            if proc.is_alive():  # our own child, by PID
                proc.terminate()
                proc.join(5)

    try:
        ready = recv_all("ready", args.setup_timeout + 30)
        client_pids = [os.getpid()] + [p.pid for p, _ in workers]
        t0 = time.monotonic() + args.warmup
        t1 = t0 + args.duration
        for _, conn in workers:
            conn.send(("window", t0, t1))

        def cpu(pids):
            return sum(procstat.cpu_seconds(p) for p in pids)

        time.sleep(max(0.0, t0 - time.monotonic()))
        sfu0, cli0, host0, w0 = cpu(sfu_pids), cpu(client_pids), procstat.host_cpu(), time.monotonic()
        psi0 = procstat.cpu_pressure_us()
        rss_samples = []
        while time.monotonic() < t1 - 1.0:
            rss_samples.append(sum(map(procstat.rss_mb, sfu_pids)))
            time.sleep(min(1.0, max(0.0, t1 - 1.0 - time.monotonic())) or 0.01)
        time.sleep(max(0.0, t1 - time.monotonic()))
        sfu1, cli1, host1, w1 = cpu(sfu_pids), cpu(client_pids), procstat.host_cpu(), time.monotonic()
        psi1 = procstat.cpu_pressure_us()
        rss_end = sum(map(procstat.rss_mb, sfu_pids))
        threads = sum(map(procstat.thread_count, sfu_pids))
        results = recv_all("result", 60)
    except Exception as exc:
        stop_workers(("abort",))
        print(json.dumps({"sfu": args.sfu_name, "error": str(exc)}), flush=True)
        return 1
    stop_workers(("done",))

    window = w1 - w0
    tot = {k: sum(r[k] for r in results) for k in
           ("packets_sent", "packets_forwarded", "packets_expected", "streams_silent", "late",
            "latency_unmatched", "latency_probes", "unmapped", "dropped_candidates")}
    lat = sorted(l * 1000.0 for r in results for l in r["latencies"])
    sfu_cpu = sfu1 - sfu0
    cli_cpu = cli1 - cli0
    host_busy = (host1[0] - host0[0]) / max(1, host1[1] - host0[1])
    fwd = tot["packets_forwarded"]
    per_room_pubs = args.peers or args.publishers
    streams = sum(sum(len(s) for s in r["subs"]) for r in plan)
    out = {
        "sfu": args.sfu_name,
        "label": args.label,
        "mode": "conference" if args.peers else "pubsub",
        "rooms": args.rooms,
        "publishers_per_room": per_room_pubs,
        "subscribers_per_room": args.peers + args.subscribers,
        "streams": streams,
        "duration_s": round(window, 3),
        "packets_sent": tot["packets_sent"],
        "packets_forwarded": fwd,
        "delivery_ratio": round(fwd / tot["packets_expected"], 4) if tot["packets_expected"] else None,
        "sfu_cpu_s": round(sfu_cpu, 3),
        "sfu_cpu_util": round(sfu_cpu / window, 3),
        "us_per_packet": round(sfu_cpu * 1e6 / fwd, 2) if fwd else None,
        "sfu_idle_cpu_util": round(idle_util, 4) if idle_util is not None else None,
        "sfu_rss_mb": round(rss_end, 1),
        "sfu_rss_mb_max": round(max(rss_samples + [rss_end]), 1),
        "sfu_threads": threads,
        "latency_ms_p50": round(percentile(lat, 0.50), 2) if lat else None,
        "latency_ms_p99": round(percentile(lat, 0.99), 2) if lat else None,
        "latency_ms_max": round(lat[-1], 2) if lat else None,
        "latency_samples": len(lat),
        "latency_probes": tot["latency_probes"],
        "latency_unmatched": tot["latency_unmatched"],
        "client_cpu_s": round(cli_cpu, 3),
        "client_cpu_util": round(cli_cpu / window, 3),
        "client_procs": args.procs,
        "host_cpu_busy": round(host_busy, 3),
        "cpu_pressure_some": (round((psi1 - psi0) / 1e6 / window, 3)
                              if psi0 is not None and psi1 is not None else None),
        "host_cpus": os.cpu_count(),
        "setup_s": max(r["setup_s"] for r in ready),
        "streams_flowing_at_start": sum(r["flowing"] for r in ready),
        "publisher_late_packets": tot["late"],
        "nonloopback_candidates_dropped": tot["dropped_candidates"],
    }
    warnings = []
    if out["streams_flowing_at_start"] < streams or tot["streams_silent"]:
        warnings.append(f"{streams - out['streams_flowing_at_start']} streams not flowing at start, "
                        f"{tot['streams_silent']} silent in window")
    if out["delivery_ratio"] is not None and out["delivery_ratio"] < 0.98:
        warnings.append("delivery_ratio < 0.98: packets lost or SFU/client overloaded")
    if out["delivery_ratio"] is not None and out["delivery_ratio"] < 0.9 and lat:
        warnings.append("latency not meaningful: backlog grows during the window "
                        "(and onsets alias beyond 1.9 s)")
    if cli_cpu / window > 0.85 * args.procs:
        warnings.append("load generator near CPU saturation (client_cpu_util ~ procs)")
    if host_busy > 0.9 or (out["cpu_pressure_some"] or 0) > 0.25:
        warnings.append("CPU contention (host > 90% busy or runnable tasks waiting > 25% of the "
                        "time): SFU and clients compete, figures are contention-bound")
    if tot["late"] > 0.01 * max(1, tot["packets_sent"]):
        warnings.append("publishers missed their 20 ms slots (client overloaded)")
    if tot["latency_unmatched"] > 0.05 * max(1, len(lat)):
        warnings.append("many unmatched latency onsets")
    out["warnings"] = warnings
    line = json.dumps(out)
    print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
