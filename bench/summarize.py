#!/usr/bin/env python3
"""Markdown tables from load.py JSON lines.

  summarize.py results.jsonl            one row per run
  summarize.py --median results.jsonl   one row per (sfu, case): median [min-max]
"""

# Copied from ../shared/tools/sfu-bench/summarize.py (sfu-bench, 2026-11-24), unchanged.
import json
import statistics
import sys

COLS = [
    ("sfu", "sfu"), ("label", "case"), ("streams", "streams"),
    ("packets_forwarded", "fwd pkts"), ("delivery_ratio", "delivered"),
    ("sfu_cpu_s", "SFU CPU s"), ("sfu_cpu_util", "SFU cores"), ("us_per_packet", "us/pkt"),
    ("sfu_rss_mb_max", "RSS MB"), ("latency_ms_p50", "lat p50 ms"), ("latency_ms_p99", "lat p99 ms"),
    ("client_cpu_util", "client cores"), ("cpu_pressure_some", "CPU wait"),
]
KEYS = ("sfu", "label", "streams")


def fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def main() -> None:
    args = sys.argv[1:]
    median = "--median" in args
    paths = [a for a in args if a != "--median"]
    rows = [json.loads(line) for path in paths for line in open(path) if line.strip()]
    errors = [r for r in rows if "error" in r]
    rows = [r for r in rows if "error" not in r]
    print("| " + " | ".join(h for _, h in COLS) + (" | runs |" if median else " | warnings |"))
    print("|" + "---|" * (len(COLS) + 1))
    if not median:
        for r in rows:
            print("| " + " | ".join(fmt(r.get(k)) for k, _ in COLS) + " | "
                  + "; ".join(r.get("warnings", [])) + " |")
    else:
        groups: dict[tuple, list] = {}
        for r in rows:
            groups.setdefault(tuple(r.get(k) for k in KEYS), []).append(r)
        for key, rs in groups.items():
            cells = []
            for k, _ in COLS:
                if k in KEYS:
                    cells.append(fmt(rs[0].get(k)))
                    continue
                vals = [r.get(k) for r in rs if isinstance(r.get(k), (int, float))]
                if not vals:
                    cells.append("")
                elif len(vals) == 1 or min(vals) == max(vals):
                    cells.append(fmt(vals[0]))
                else:
                    cells.append(f"{fmt(statistics.median(vals))} [{fmt(min(vals))}-{fmt(max(vals))}]")
            print("| " + " | ".join(cells) + f" | {len(rs)} |")
    for r in errors:
        print(f"\nerror ({r.get('sfu')}): {r['error'][:300]}")


if __name__ == "__main__":
    main()
