"""``haven backup`` and ``haven restore``: a consistent copy of the database, and a restore
that checks the key before it writes anything.

* ``haven backup --data-dir D --to FILE`` copies ``D/haven.db`` with SQLite's online backup
  API in one step, so the copy is one consistent snapshot even while ``haven serve`` writes
  (WAL mode lets the server go on meanwhile). The copy holds no key: notes stay sealed under
  the master key, whose file is backed up separately (README, "Backups").
* ``haven restore --from FILE --data-dir NEW --key-file K`` checks, before writing a byte,
  that the backup is an intact Haven database and that ``K`` holds the master key it
  records (id and fingerprint, and every key a patient key is wrapped under). Only then does
  it create ``NEW`` (which must not hold a database yet) with the database and a copy of
  the key file, both 0600, ready for ``haven serve --data-dir NEW``.

Failures raise :class:`BackupError` (a DataDirError: web.cli prints one line, exits 2).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from therapy.datadir import DB_NAME, KEY_NAME, DataDirError, prepare, ring_problem
from therapy.keyfile import KeyFileError, read_keyfile, write_keyfile
from therapy.storage import DB_FILE_MODE, restrict_database_files


class BackupError(DataDirError):
    """A backup or restore that cannot go on; the message says why in one line."""


@dataclass
class BackupInfo:
    path: Path
    size: int
    master_key_id: str
    notes: int


def add_parser(subparsers) -> None:
    backup = subparsers.add_parser(
        "backup", help="copy the database consistently, also while the server runs (the "
        "key file is not in the copy: back it up separately)")
    backup.add_argument("--data-dir", type=Path, default=Path("./haven-data"),
                        help="folder holding the database (default ./haven-data)")
    backup.add_argument("--to", type=Path, required=True, dest="target",
                        help="the backup file to write (must not exist)")
    restore = subparsers.add_parser(
        "restore", help="restore a backup into a new data folder, after checking that the "
        "key file belongs to it")
    restore.add_argument("--from", type=Path, required=True, dest="source",
                         help="the backup file")
    restore.add_argument("--data-dir", type=Path, required=True,
                         help="the new data folder (must not hold a database)")
    restore.add_argument("--key-file", type=Path, required=True,
                         help="the master key file that was backed up with it")


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError:
        return {}


def _notes(conn: sqlite3.Connection) -> int:
    with contextlib.suppress(sqlite3.DatabaseError):
        return conn.execute("SELECT count(*) FROM notes").fetchone()[0]
    return 0


def _intact(conn: sqlite3.Connection) -> bool:
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    except sqlite3.DatabaseError:
        return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(source: sqlite3.Connection, target: Path) -> None:
    """Copy with the online backup API in one step (one consistent snapshot) into a new
    0600 file, fsynced."""
    restrict_database_files(target)
    dest = sqlite3.connect(str(target))
    try:
        source.backup(dest)  # pages=-1: all pages under one read transaction
        dest.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
    finally:
        dest.close()
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(data_dir: Path, target: Path) -> BackupInfo:
    db_path = Path(data_dir) / DB_NAME
    if not db_path.is_file():
        raise BackupError(f"no Haven database in {data_dir}")
    target = Path(target)
    if target.exists():
        raise BackupError(f"{target} exists; choose a new file name (nothing was written)")
    if not target.parent.is_dir():
        raise BackupError(f"folder {target.parent} does not exist")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(str(db_path), timeout=30)
    try:
        source.execute("PRAGMA busy_timeout = 30000")
        _copy(source, partial)
    finally:
        source.close()
    check = sqlite3.connect(f"file:{partial}?mode=ro", uri=True)
    try:
        meta, intact, notes = _meta(check), _intact(check), _notes(check)
    finally:
        check.close()
    if not intact or "master_key_id" not in meta:
        partial.unlink(missing_ok=True)
        raise BackupError("the copy did not verify (integrity check failed); nothing was kept")
    os.replace(partial, target)
    _fsync_dir(target.parent)
    return BackupInfo(target, target.stat().st_size, meta["master_key_id"], notes)


def restore(source: Path, data_dir: Path, key_file: Path) -> BackupInfo:
    source, data_dir, key_file = Path(source), Path(data_dir), Path(key_file)
    if not source.is_file():
        raise BackupError(f"backup {source} does not exist")
    # --- check everything first: nothing is written before this block ends ----------------
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        meta = _meta(conn)
        if not _intact(conn) or "master_key_id" not in meta:
            raise BackupError(f"{source} is not an intact Haven backup")
        try:
            ring = read_keyfile(key_file)
        except KeyFileError as exc:
            raise BackupError(str(exc)) from None
        problem = ring_problem(conn, ring)
        if problem is not None:
            raise BackupError(f"key file {key_file} does not belong to this backup ({problem}); "
                              "nothing was written")
        notes = _notes(conn)
        if data_dir.exists() and (not data_dir.is_dir() or (data_dir / DB_NAME).exists()
                                  or any(data_dir.iterdir())):
            raise BackupError(f"{data_dir} is not empty; restore into a new folder "
                              "(nothing was written)")
        # --- write -------------------------------------------------------------------------
        data_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(data_dir, 0o700)
        _copy(conn, data_dir / DB_NAME)
    finally:
        conn.close()
    own_key = data_dir / KEY_NAME
    if key_file.resolve() != own_key.resolve():
        write_keyfile(own_key, ring)
    from web.app import migration_sets

    prepare(data_dir, migration_sets(), own_key, create=False)  # migrations + the key check
    db = data_dir / DB_NAME
    os.chmod(db, DB_FILE_MODE)
    return BackupInfo(db, db.stat().st_size, meta["master_key_id"], notes)


def run(args: argparse.Namespace) -> int:
    if args.command == "backup":
        info = backup(args.data_dir, args.target)
        print(f"backed up {info.notes} notes ({info.size} bytes) to {info.path}")
        print(f"It needs master key {info.master_key_id}: back up the key file "
              f"({Path(args.data_dir) / KEY_NAME}) separately, never beside this file.")
        return 0
    info = restore(args.source, args.data_dir, args.key_file)
    print(f"restored {info.notes} notes into {args.data_dir} (master key {info.master_key_id} "
          "checked)")
    print(f"Start it with: haven serve --data-dir {args.data_dir}")
    return 0
