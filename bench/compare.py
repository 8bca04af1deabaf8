#!/usr/bin/env python3
"""Haven vs Janus vs aiortc MediaRelay, same load shape, same run.

  python bench/compare.py                                   # 1x2 4x4 2x8, 3 repeats, 20 s
  python bench/compare.py --cases 4x4,2x8 --repeats 3 --duration 20 --sfus janus,haven,relay

Where the shared harness exists (<repo>/../shared/tools/sfu-bench, override with
SFU_BENCH_DIR; set it up once with `bash ../shared/tools/sfu-bench/setup.sh`), every
SFU is driven by the *same* shared load.py (Haven through bench/shared_load.py,
which only adds Haven's signaling adapter), from the harness's venv
(/tmp/sfu-bench-venv or SFU_BENCH_VENV). Janus and the relay are started and
stopped with the harness's sfu.sh; Haven's SFU runs as its own process
(bench/haven_sfu_server.py, this repo's Python) so its CPU is metered alone.
Every SFU is restarted before every run, and runs are interleaved
(repeat -> case -> sfu) so background load hits all SFUs alike.

Without the shared harness only Haven is measured, with this folder's copy of the
load generator (bench/load.py).

JSON lines go to --out (default /tmp/haven-bench/results-<time>.jsonl); a Markdown
table with medians [min-max] and Haven/Janus ratios is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED = os.environ.get("SFU_BENCH_DIR") or os.path.join(os.path.dirname(REPO), "shared", "tools",
                                                          "sfu-bench")
SHARED_VENV = os.environ.get("SFU_BENCH_VENV", "/tmp/sfu-bench-venv")
RUN = os.environ.get("HAVEN_BENCH_RUN", "/tmp/haven-bench")
HAVEN_PORT = int(os.environ.get("HAVEN_BENCH_PORT", "8090"))

CASES = {
    "1x2": ["--rooms", "1", "--peers", "2"],
    "1x1+8": ["--rooms", "1", "--publishers", "1", "--subscribers", "8"],
    "4x4": ["--rooms", "4", "--peers", "4"],
    "2x8": ["--rooms", "2", "--peers", "8"],
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def wait_http(url: str, pid: int, timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except Exception:
            time.sleep(0.1)
    return False


class HavenServer:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.pidfile = os.path.join(RUN, "haven.pid")

    def start(self) -> int:
        logf = open(os.path.join(RUN, "haven.log"), "a")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "haven_sfu_server.py"), "--port", str(HAVEN_PORT),
             "--pidfile", self.pidfile],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        if not wait_http(f"http://127.0.0.1:{HAVEN_PORT}/health", self.proc.pid):
            self.stop()
            raise RuntimeError("haven_sfu_server did not come up (see haven.log)")
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # our own child, by PID
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def run_load(cmd: list[str], timeout: float) -> dict:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": "load generator timed out"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": (out.stderr or out.stdout)[-500:]}
    return json.loads(lines[-1])


def one_run(sfu: str, case: str, args, shared: bool) -> dict:
    common = CASES[case] + ["--duration", str(args.duration), "--warmup", str(args.warmup),
                            "--label", case]
    limit = args.duration + 240
    if sfu == "haven":
        server = HavenServer()
        pid = server.start()
        try:
            if shared:
                cmd = [os.path.join(SHARED_VENV, "bin", "python"), os.path.join(HERE, "shared_load.py")]
            else:
                cmd = [sys.executable, os.path.join(HERE, "load.py")]
            cmd += ["--sfu", "haven", f"http://127.0.0.1:{HAVEN_PORT}", "--sfu-pid", str(pid)] + common
            return run_load(cmd, limit)
        finally:
            server.stop()
    name, adapter = {"janus": ("janus", ["janus", "http://127.0.0.1:8088/janus"]),
                     "relay": ("relay", ["aiortc-relay", "http://127.0.0.1:8089"])}[sfu]
    sfu_sh = os.path.join(SHARED, "sfu.sh")
    subprocess.run([sfu_sh, name, "start"], check=True, stdout=subprocess.DEVNULL, timeout=60)
    try:
        pidfile = os.path.join(os.environ.get("SFU_BENCH_RUN", "/tmp/sfu-bench"), f"{name}.pid")
        cmd = [os.path.join(SHARED_VENV, "bin", "python"), os.path.join(SHARED, "load.py"),
               "--sfu", *adapter, "--sfu-pid", "@" + pidfile] + common
        return run_load(cmd, limit)
    finally:
        subprocess.run([sfu_sh, name, "stop"], stdout=subprocess.DEVNULL, timeout=60)


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def med(rows: list[dict], key: str) -> str:
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    if not vals:
        return "-"
    m = statistics.median(vals)
    if len(vals) == 1 or min(vals) == max(vals):
        return fmt(m)
    return f"{fmt(m)} [{fmt(min(vals))}-{fmt(max(vals))}]"


def table(rows: list[dict], cases: list[str], sfus: list[str]) -> str:
    out = ["| case | sfu | runs | us/pkt | x Janus | delivered | lat p50 ms | lat p99 ms | RSS MB "
           "| SFU cores | client cores | CPU wait |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for case in cases:
        janus = [r["us_per_packet"] for r in rows if r.get("sfu") == "janus" and r.get("label") == case
                 and r.get("us_per_packet")]
        jmed = statistics.median(janus) if janus else None
        for sfu in sfus:
            key = {"relay": "aiortc-relay"}.get(sfu, sfu)
            rs = [r for r in rows if r.get("sfu") == key and r.get("label") == case and "error" not in r]
            if not rs:
                continue
            us = [r["us_per_packet"] for r in rs if r.get("us_per_packet")]
            ratio = f"{statistics.median(us) / jmed:.2f}" if (jmed and us) else "-"
            out.append(f"| {case} | {sfu} | {len(rs)} | {med(rs, 'us_per_packet')} | {ratio} "
                       f"| {med(rs, 'delivery_ratio')} | {med(rs, 'latency_ms_p50')} "
                       f"| {med(rs, 'latency_ms_p99')} | {med(rs, 'sfu_rss_mb_max')} "
                       f"| {med(rs, 'sfu_cpu_util')} | {med(rs, 'client_cpu_util')} "
                       f"| {med(rs, 'cpu_pressure_some')} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="1x2,4x4,2x8")
    ap.add_argument("--sfus", default="janus,haven,relay")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--relay-repeats", type=int, default=1,
                    help="the relay collapses at 4x4/2x8 and is stable; fewer repeats save time")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--out")
    ap.add_argument("--summarize", metavar="JSONL", help="only print the table of an earlier run")
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    sfus = [s for s in args.sfus.split(",") if s]
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c}; known: {list(CASES)}")
    if args.summarize:
        rows = [json.loads(ln) for ln in open(args.summarize) if ln.strip()]
        print(table(rows, cases, sfus))
        return 0
    shared = os.path.isfile(os.path.join(SHARED, "load.py"))
    if not shared:
        log(f"shared harness not found at {SHARED}: measuring Haven only, with bench/load.py")
        sfus = ["haven"]
    elif not os.path.exists(os.path.join(SHARED_VENV, "bin", "python")):
        log(f"{SHARED_VENV} missing: run `bash {SHARED}/setup.sh` first")
        return 2
    os.makedirs(RUN, exist_ok=True)
    out_path = args.out or os.path.join(RUN, f"results-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    rows: list[dict] = []
    for rep in range(1, args.repeats + 1):
        for case in cases:
            for sfu in sfus:
                if sfu == "relay" and rep > args.relay_repeats:
                    continue
                log(f"== {sfu} {case} run {rep}")
                try:
                    row = one_run(sfu, case, args, shared)
                except Exception as exc:
                    row = {"error": repr(exc)}
                row.setdefault("sfu", {"relay": "aiortc-relay"}.get(sfu, sfu))
                row.setdefault("label", case)
                row["repeat"] = rep
                rows.append(row)
                with open(out_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                if "error" in row:
                    log(f"   error: {row['error'][:300]}")
                else:
                    log(f"   us/pkt {row.get('us_per_packet')} delivered {row.get('delivery_ratio')} "
                        f"p50 {row.get('latency_ms_p50')} p99 {row.get('latency_ms_p99')} "
                        f"warnings {row.get('warnings')}")
                time.sleep(1)
    log(f"results in {out_path}")
    print(table(rows, cases, sfus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
