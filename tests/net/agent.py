"""``haven call`` with a diagnostic report: the same VoiceClient and arguments, plus
``--stats FILE`` (JSON: when audio started, what was lost, recovered and concealed, every
reconnect, the key generation and the membership messages seen) and ``--no-fec``.

    python -m tests.net.agent URL --send in.wav --record out.wav --seconds 10 \
        --identity id.json --stats out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

from media.call import load_or_create_identity
from media.voice_client import VoiceClient, load_pcm


async def main(args: argparse.Namespace) -> int:
    pcm = load_pcm(args.send) if args.send else None
    client = VoiceClient(args.join_url, load_or_create_identity(args.identity), send_pcm=pcm,
                         display_name=args.name, fec=not args.no_fec)
    seen: Counter = Counter()

    before_leave: dict = {}

    def on_message(direction: str, text: str) -> None:
        if direction == "in":
            kind = json.loads(text).get("type", "?")
            seen[kind] += 1
            if kind == "member_left" and "generation" not in before_leave and client.manager:
                # (on_message runs before the message is handled, i.e. before re-keying)
                before_leave["generation"] = client.manager.sender.key.generation

    client.on_message = on_message
    failed_at: list[float] = []
    inner = client.on_payload

    def on_payload(mid, payload, *rest):
        before = client.summary.frames_failed
        inner(mid, payload, *rest)
        if client.summary.frames_failed > before and len(failed_at) < 1000:
            failed_at.append(time.monotonic())

    client.on_payload = on_payload
    started = time.monotonic()
    await client.start()
    Path(str(args.stats) + ".joined").write_text(str(time.monotonic()))
    generation = client.manager.sender.key.generation
    deadline = started + args.seconds
    marker = Path(str(args.stats) + ".audio")  # lets a test act once audio flows
    while time.monotonic() < deadline and not client.ended.is_set():
        await asyncio.sleep(0.1)
        if client.first_audio_at is not None and not marker.exists():
            marker.write_text(str(client.first_audio_at))
    manager = client.manager
    await client.close()
    if args.record:
        client.write_wav(args.record)
    stats = {
        "started_at": started,
        "first_audio_at": client.first_audio_at,
        "summary": client.summary.__dict__,
        "receive": client.receive_stats(),
        "recoveries": [r.to_dict() for r in client.recoveries],
        "generation_at_start": generation,
        "generation_at_end": manager.sender.key.generation if manager else None,
        # our key generation until someone left (then everyone re-keys, by design)
        "generation_before_any_leave": before_leave.get(
            "generation", manager.sender.key.generation if manager else None),
        "participant_id": client.participant_id,
        "messages": dict(seen),
        "ice_servers": [list(s.urls) for s in client.ice_servers],
        "fec_sent": client.speaker.fec,
        "failed_at": failed_at,
    }
    Path(args.stats).write_text(json.dumps(stats, indent=1))
    print(client.summary.line(), flush=True)
    return 0


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("join_url")
    p.add_argument("--send", type=Path)
    p.add_argument("--record", type=Path)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--identity", type=Path, required=True)
    p.add_argument("--name", default=None)
    p.add_argument("--stats", type=Path, required=True)
    p.add_argument("--no-fec", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse())))
