"""``haven keys``: rotate the master key, crypto-shred a patient.

Wire into web.cli with ``cli_keys.add_parser(sub)`` and dispatch ``args.command == "keys"``
to ``cli_keys.run(args)``. Failures raise :class:`KeysCliError` (one line for stderr)."""

from __future__ import annotations

import argparse
from pathlib import Path

from therapy import accounts, rotation, sealing
from therapy.accounts import Role
from therapy.audit import Actor
from therapy.datadir import DB_NAME, KEY_NAME, DataDirError
from therapy.keyfile import KeyFileError
from therapy.storage import apply_migrations, open_database


class KeysCliError(DataDirError):
    """A ``haven keys`` failure, reported as one line (a DataDirError, so web.cli's existing
    handler already prints it and exits 2)."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    keys = subparsers.add_parser("keys", help="manage the master key and patient keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, default=Path("./haven-data"),
                       help="folder holding the database (default ./haven-data)")
        p.add_argument("--key-file", type=Path, default=None,
                       help="master key file (default <data-dir>/master.key)")

    rotate = keys_sub.add_parser(
        "rotate", help="re-wrap every patient key under a new master key (safe to rerun "
        "after an interruption; the server may keep running)")
    data_args(rotate)

    shred = keys_sub.add_parser(
        "shred", help="crypto-shred a patient: destroy their key so all their notes become "
        "unreadable for good (audited)")
    data_args(shred)
    shred.add_argument("--patient", required=True, help="the patient's username")
    shred.add_argument("--yes", action="store_true",
                       help="confirm: this cannot be undone")
    return keys


def _open(args: argparse.Namespace):
    from web.app import migration_sets

    data_dir = Path(args.data_dir)
    db_path = data_dir / DB_NAME
    if not db_path.exists():
        raise KeysCliError(f"no Haven database in {data_dir}")
    key_path = Path(args.key_file) if args.key_file else data_dir / KEY_NAME
    db = open_database(db_path)
    apply_migrations(db, migration_sets())
    return db, key_path


def cmd_rotate(args: argparse.Namespace) -> int:
    db, key_path = _open(args)
    try:
        result = rotation.rotate(db, key_path)
    except (rotation.RotationError, KeyFileError, sealing.SealingError) as exc:
        raise KeysCliError(f"rotation stopped: {exc}") from None
    finally:
        db.close()
    how = "finished an interrupted rotation" if result.resumed else "rotated"
    print(f"{how}: master key is now {result.new_key_id} "
          f"({result.rewrapped} patient keys re-wrapped; "
          f"removed from the key file: {', '.join(result.dropped) or 'none'})")
    print("Back up the key file now; older copies of it cannot open new data.")
    return 0


def cmd_shred(args: argparse.Namespace) -> int:
    if not args.yes:
        raise KeysCliError("shredding cannot be undone; add --yes to confirm")
    db, _ = _open(args)
    try:
        patient = accounts.find_user(db, args.patient)
        if patient is None or patient.role != Role.PATIENT:
            raise KeysCliError(f"no patient called {args.patient!r}")
        count = sealing.shred_patient(db, patient.id, actor=Actor(None, "cli"))
    finally:
        db.close()
    print(f"erased: {count} key(s) of patient {patient.username} destroyed; "
          "their notes can no longer be read")
    print("Older database backups still hold the key under the current master key; run "
          "`haven keys rotate` and discard old key files to make them unreadable too.")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.keys_command == "rotate":
        return cmd_rotate(args)
    if args.keys_command == "shred":
        return cmd_shred(args)
    raise KeysCliError(f"unknown keys command {args.keys_command!r}")
