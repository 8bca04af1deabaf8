"""The data folder: the SQLite database, the master key file beside it, and start-up checks.

``prepare()`` is the one place that decides whether Haven may start on a folder:

* a new folder gets a database (migrations applied) and a fresh 0600 key file;
* an existing database is migrated (safe to run twice) and must find its key file, with
  tight permissions and the fingerprint the database recorded. Haven never makes a new key
  for old data: that would seal new records with a key that cannot open the old ones.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database, Migrations

from therapy import audit
from therapy.keyfile import KeyFileError, MasterKeyring, fingerprint, read_keyfile, write_keyfile
from therapy.sealing import WRAPPED_KEY_TABLES
from therapy.storage import apply_migrations, open_database

DB_NAME = "haven.db"
KEY_NAME = "master.key"
SERVER_INFO_NAME = "server.json"


class DataDirError(Exception):
    """Haven cannot start on this data folder; the message says why in one line."""


@dataclass
class DataDir:
    path: Path
    db_path: Path
    key_path: Path
    keyring: MasterKeyring

    def record_server(self, base_url: str) -> None:
        """Remember where the server on this folder listens (``haven invite`` reads it)."""
        info = {"base_url": base_url, "pid": os.getpid()}
        path = self.path / SERVER_INFO_NAME
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # like everything in the data folder: owner only
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(info))

    def server_base_url(self) -> str | None:
        try:
            return json.loads((self.path / SERVER_INFO_NAME).read_text())["base_url"]
        except (FileNotFoundError, KeyError, ValueError):
            return None


def ring_problem(db: Database | sqlite3.Connection, ring: MasterKeyring) -> str | None:
    """Why ``ring`` cannot open this database's records, or None if it can: it must hold the
    master key the database records (same id and fingerprint) and every master key a live
    patient key is wrapped under. The one check for start-up, a running server's reload of
    the key file, and ``haven restore``."""
    conn = db.conn if isinstance(db, Database) else db
    meta = dict(conn.execute(
        "SELECT key, value FROM meta WHERE key IN ('master_key_id', 'master_key_fingerprint')"
    ).fetchall())
    wanted = meta.get("master_key_id")
    if wanted is None:
        return None  # a database that has not recorded a key yet (prepare() records it)
    key = ring.keys.get(wanted)
    if key is None or fingerprint(key) != meta.get("master_key_fingerprint"):
        return f"it expects master key {wanted}"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for table in WRAPPED_KEY_TABLES:
        if table not in tables:
            continue
        for (key_id,) in conn.execute(
                f"SELECT DISTINCT master_key_id FROM {table} "
                "WHERE wrapped IS NOT NULL AND destroyed_at IS NULL"):
            if key_id not in ring.keys:
                what = table.removesuffix("_keys")
                return f"{what} keys are wrapped under master key {key_id}, not in the file"
    return None


def prepare(
    data_dir: Path | str,
    migration_sets: Iterable[Migrations],
    key_path: Path | str | None = None,
    *,
    create: bool = True,
) -> DataDir:
    path = Path(data_dir)
    key_file = Path(key_path) if key_path else path / KEY_NAME
    db_path = path / DB_NAME
    if not path.exists():
        if not create:
            raise DataDirError(f"data folder {path} does not exist")
        path.mkdir(parents=True, mode=0o700)
    elif not path.is_dir():
        raise DataDirError(f"data folder {path} is not a folder")
    new_database = not db_path.exists()

    if new_database and not key_file.exists():
        if not create:
            raise DataDirError(f"no Haven database in {path}")
        ring = MasterKeyring.generate()
        write_keyfile(key_file, ring)
    try:
        ring = read_keyfile(key_file)
    except KeyFileError as exc:
        raise DataDirError(f"refusing to start: {exc}") from None

    db = open_database(db_path)
    try:
        apply_migrations(db, migration_sets)
        meta = db.table("meta")
        recorded = {r["key"]: r["value"] for r in meta.rows}
        if "master_key_fingerprint" not in recorded:
            with db.atomic():
                meta.upsert_all(
                    [
                        {"key": "master_key_id", "value": ring.current},
                        {"key": "master_key_fingerprint", "value": fingerprint(ring.current_key)},
                    ],
                    pk="key",
                )
                audit.record(db, audit.Actor.system(), "keys.master_key_created",
                             key_id=ring.current)
        else:
            problem = ring_problem(db, ring)
            if problem is not None:
                raise DataDirError(
                    f"refusing to start: key file {key_file} does not belong to the database "
                    f"{db_path} ({problem}); restore the right key file"
                )
    finally:
        db.close()
    return DataDir(path=path, db_path=db_path, key_path=key_file, keyring=ring)
