"""The ``haven`` command: a thin layer that parses arguments and calls the library.

Every failure ends with one clear line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import sys
from pathlib import Path

from aiohttp import web

from groups.crisis import CrisisLinesError
from media.call import CallError
from media.turn import DEFAULT_TTL_S, IceServers, IceUrlError
from therapy import accounts
from therapy.accounts import AccountError, Role, ValidationError
from therapy.audit import Actor
from therapy.datadir import DataDirError
from therapy.storage import open_database
from web import allocator, cli_backup, cli_keys, demo, logs
from web.app import create_app, load_crisis_lines, open_data_dir
from web.config import Config


class CliError(Exception):
    """A failure to report as one line and exit 2."""


TURN_SECRET_ENV = "HAVEN_TURN_SECRET"


def parse_port_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    low, sep, high = text.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise CliError(f"--udp-port-range must look like 40000-40199, not {text[:40]!r}")
    lo, hi = int(low), int(high)
    if not 1024 <= lo <= hi <= 65535:
        raise CliError("--udp-port-range must lie within 1024-65535 with LOW <= HIGH")
    return lo, hi


def parse_public_address(text: str | None) -> str | None:
    import ipaddress

    if text is None:
        return None
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        raise CliError(f"--public-address must be an IPv4 address, not {text[:40]!r}") from None
    if addr.version != 4 or addr.is_unspecified or addr.is_loopback or addr.is_multicast:
        raise CliError("--public-address must be a unicast IPv4 address (not 0.0.0.0, "
                       "127.x or multicast)")
    return str(addr)


def parse_ice_servers(urls: list[str], secret: str | None, ttl_text: str) -> IceServers:
    import os

    if secret is None:
        secret = os.environ.get(TURN_SECRET_ENV) or None
    if not ttl_text.strip().isdigit():
        raise CliError("--turn-ttl must be a whole number of seconds")
    try:
        return IceServers.from_urls(urls, secret, int(ttl_text))
    except IceUrlError as exc:
        raise CliError(str(exc)) from None


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=Path("./haven-data"),
                   help="folder holding the database (default ./haven-data)")
    p.add_argument("--key-file", type=Path, default=None,
                   help="master key file (default <data-dir>/master.key)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="haven", description="Haven: virtual therapy and peer support")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    _data_dir_arg(serve)
    serve.add_argument("--demo", action="store_true", help="seed a demo clinic and print its logins")
    serve.add_argument("--public-url", default=None,
                       help="the address people use, when behind a proxy (https://...)")
    serve.add_argument("--secure-cookies", action="store_true",
                       help="mark cookies Secure (when served over HTTPS)")
    serve.add_argument("--invite-only", action="store_true", help="turn off open patient sign-up")
    serve.add_argument("--ice-loopback-only", action="store_true",
                       help="offer only 127.0.0.1 ICE candidates (single-host testing)")
    logs.add_arguments(serve)
    serve.add_argument("--public-address", metavar="IP", default=None,
                       help="IPv4 address announced in ICE candidates, for a server behind "
                            "1:1 NAT (cloud VM, container)")
    serve.add_argument("--udp-port-range", metavar="LOW-HIGH", default=None,
                       help="UDP ports for media (e.g. 40000-40199), so a firewall can open "
                            "a known range; about 2 ports per participant")
    serve.add_argument("--ice-server", metavar="URL", action="append", default=[],
                       help="STUN/TURN server handed to participants (repeatable): "
                            "stun:HOST[:PORT], turn:HOST[:PORT][?transport=tcp], turns:HOST[:PORT]")
    serve.add_argument("--turn-secret", metavar="SECRET", default=None,
                       help="secret shared with the TURN server (coturn use-auth-secret); "
                            f"default: the {TURN_SECRET_ENV} environment variable")
    serve.add_argument("--crisis-lines", metavar="FILE", type=Path, default=None,
                       help="crisis lines that replace or extend the shipped ones (JSON, "
                            "format haven-crisis-lines/1; see docs/safety.md); "
                            "<data-dir>/crisis_lines.json is read too when present")
    serve.add_argument("--turn-ttl", metavar="SECONDS", type=str, default=str(DEFAULT_TTL_S),
                       help="lifetime of the TURN credentials handed out (default 3600)")

    user = sub.add_parser("user", help="manage accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create an account (e.g. the first admin)")
    _data_dir_arg(add)
    add.add_argument("username")
    add.add_argument("--role", choices=[r.value for r in Role], default="patient")
    add.add_argument("--display-name", default=None)
    add.add_argument("--time-zone", default="UTC")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of prompting")
    invite = sub.add_parser("invite", help="print join URLs for an ad-hoc voice room")
    _data_dir_arg(invite)
    invite.add_argument("--room", required=True, help="room name (created if needed)")
    invite.add_argument("--count", type=int, default=2, help="how many join URLs (first: host)")
    invite.add_argument("--base-url", default=None,
                        help="address in the URLs (default: where the server on --data-dir listens)")
    invite.add_argument("--hours", type=float, default=12, help="how long the links stay valid")

    call = sub.add_parser("call", help="join a voice room from the command line")
    call.add_argument("join_url")
    call.add_argument("--send", type=Path, default=None, help="audio file to speak (any format)")
    call.add_argument("--record", type=Path, default=None, help="write what is heard to this WAV")
    call.add_argument("--seconds", type=float, default=10.0)
    call.add_argument("--identity", type=Path, default=None,
                      help="identity key file (default ~/.config/haven/identity.json; created)")
    call.add_argument("--name", default=None, help="display name or pseudonym")

    cli_keys.add_parser(sub)
    cli_backup.add_parser(sub)
    return parser


def cmd_invite(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from therapy import rooms

    if not 1 <= args.count <= 64:
        raise CliError("--count must be 1 to 64")
    if not 0 < args.hours <= 24 * 14:
        raise CliError("--hours must be more than 0 and at most 336")
    data_dir = open_data_dir(Config(data_dir=args.data_dir, key_file=args.key_file))
    base_url = args.base_url or data_dir.server_base_url()
    if not base_url:
        raise CliError("no server has run on this data folder yet; pass --base-url")
    db = open_database(data_dir.db_path)
    try:
        with db.atomic():
            room_id = rooms.adhoc_room(db, args.room)
            tokens = [
                rooms.issue_token(db, room_id, "Host" if i == 0 else f"Guest {i}",
                                  room_role="host" if i == 0 else "member",
                                  ttl=timedelta(hours=args.hours), actor=Actor.system())
                for i in range(args.count)
            ]
    except rooms.RoomError as exc:
        raise CliError(exc.message) from None
    finally:
        db.close()
    for token in tokens:
        print(rooms.join_url(base_url, room_id, token))
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    from media.call import run_call

    return asyncio.run(run_call(args))


def cmd_serve(args: argparse.Namespace) -> int:
    config = Config(
        data_dir=args.data_dir, key_file=args.key_file, host=args.host, port=args.port,
        demo=args.demo, public_base_url=args.public_url, secure_cookies=args.secure_cookies,
        open_signup=not args.invite_only, ice_loopback_only=args.ice_loopback_only,
        public_address=parse_public_address(args.public_address),
        udp_port_range=parse_port_range(args.udp_port_range),
        ice_servers=parse_ice_servers(args.ice_server, args.turn_secret, args.turn_ttl),
        crisis_lines_file=args.crisis_lines,
    )
    crisis_lines = load_crisis_lines(config)  # a bad file stops here, before anything runs
    allocator.bound_arenas()  # before any worker thread exists (web/allocator.py)
    logs.configure(args.log_level, loggers=dict(args.log_level_for))
    data_dir = open_data_dir(config)
    if config.demo:
        db = open_database(data_dir.db_path)
        try:
            rows = demo.seed(db, data_dir.path, config.scrypt_cost, data_dir.keyring)
        finally:
            db.close()
        print("Demo clinic ready. Logins (also in "
              f"{data_dir.path / demo.LOGINS_FILE}):", flush=True)
        for username, password, role in rows:
            print(f"  {role:<10} {username:<10} {password}", flush=True)
    data_dir.record_server(config.base_url)
    app = create_app(config, data_dir, crisis_lines)
    app.cleanup_ctx.append(allocator.trim_ctx)
    # Everything imported and built so far lives for the whole run: keep it out of the
    # collector's way, so full collections do not pause the media path (docs/performance.md).
    gc.collect()
    gc.freeze()
    print(f"Haven is listening on {config.base_url}", flush=True)
    web.run_app(app, host=config.host, port=config.port, access_log=None, print=None)
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    data_dir = open_data_dir(Config(data_dir=args.data_dir, key_file=args.key_file))
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password for the new account: ")
    db = open_database(data_dir.db_path)
    try:
        user = accounts.create_user(db, args.username, password, Role(args.role),
                                    args.display_name, args.time_zone, actor=Actor.system())
    finally:
        db.close()
    print(f"created {user.role.value} {user.username} (id {user.id})")
    return 0


COMMANDS = {"serve": cmd_serve, "invite": cmd_invite, "call": cmd_call,
            "keys": cli_keys.run, ("user", "add"): cmd_user_add,
            "backup": cli_backup.run, "restore": cli_backup.run}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    key = args.command if args.command != "user" else ("user", args.user_command)
    try:
        return COMMANDS[key](args)
    except (CliError, DataDirError, AccountError, CallError, CrisisLinesError) as exc:
        print(f"haven: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"haven: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
