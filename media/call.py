"""``haven call``: join a room by its join URL, speak a file, record what is heard."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from media import signaling as sig
from media.e2ee import E2EEError, IdentityKeys
from media.voice_client import VoiceClient, load_pcm


class CallError(Exception):
    """A call that could not start or ran into a problem; one line for the user."""


def default_identity_path() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "haven" / "identity.json"


def load_or_create_identity(path: Path) -> IdentityKeys:
    if path.exists():
        try:
            return IdentityKeys.load(path)
        except E2EEError as exc:
            raise CallError(str(exc)) from None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = IdentityKeys.generate()
    keys.save(path)
    return keys


async def run_call(args: argparse.Namespace) -> int:
    if not 0 < args.seconds <= 24 * 3600:
        raise CallError("--seconds must be more than 0")
    try:
        sig.parse_join_url(args.join_url)
    except sig.ProtocolError as exc:
        raise CallError(exc.message) from None
    pcm = None
    if args.send is not None:
        try:
            pcm = load_pcm(args.send)
        except (OSError, ValueError) as exc:
            raise CallError(f"cannot read {args.send}: {exc}") from None
    identity = load_or_create_identity(args.identity or default_identity_path())
    client = VoiceClient(args.join_url, identity, send_pcm=pcm, display_name=args.name)
    shown = ""

    def show_code() -> None:
        nonlocal shown
        if client.security_code and client.security_code != shown:
            shown = client.security_code
            people = client.summary.members
            print(f"security code: {shown}  ({people} in the room; compare it aloud)",
                  flush=True)

    try:
        await client.start()
    except (OSError, TimeoutError, ConnectionError) as exc:
        await client.close()
        reason = client.summary.ended or str(exc) or exc.__class__.__name__
        raise CallError(f"could not join: {reason}") from None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.seconds
    while loop.time() < deadline and not client.ended.is_set():
        show_code()
        await asyncio.sleep(min(0.25, max(0.0, deadline - loop.time())))
    show_code()
    summary = client.summary
    await client.close()
    if args.record is not None:
        client.write_wav(args.record)
    print(summary.line(), flush=True)
    if summary.ended not in (None, "room_closed"):
        print(f"haven: call ended: {summary.ended}", file=sys.stderr)
        return 1
    return 0
