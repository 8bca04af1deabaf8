"""The record store: one SQLite file (WAL mode) behind a small interface.

Storage functions in this project are synchronous and take a ``sqlite_utils.Database``.
Async code runs them through :class:`Store`: every write goes through one writer thread
(SQLite allows one writer at a time, so queueing them here avoids ``database is locked``),
reads go through a small pool with one connection per thread. A later server-database
backend only has to provide the same two methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import sqlite_utils
from sqlite_utils import Migrations

T = TypeVar("T")
log = logging.getLogger("haven.storage")


DB_FILE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")


def restrict_database_files(path: Path | str) -> None:
    """Make the database file and its WAL, shared-memory and journal files 0600 (owner
    only), also when they already exist with looser modes. SQLite gives the side files it
    creates the database file's mode, so a 0600 database keeps them 0600 too."""
    path = Path(path)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE))
    for file in [path] + [path.with_name(path.name + s) for s in SIDE_FILES]:
        try:
            if file.stat().st_mode & 0o777 != DB_FILE_MODE:
                os.chmod(file, DB_FILE_MODE)
        except FileNotFoundError:
            continue
        except PermissionError:  # not ours (another account's file): say so, go on
            log.warning("cannot make %s owner-only (0600): it belongs to another user", file)


def open_database(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) a database file with Haven's connection settings; the file
    and its side files are owner-only (0600)."""
    if str(path) != ":memory:":
        restrict_database_files(path)
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    db = sqlite_utils.Database(conn, strict=True)
    if str(path) != ":memory:":
        db.enable_wal()
        restrict_database_files(path)  # the WAL and SHM files exist from here on
    return db


def apply_migrations(db: sqlite_utils.Database, sets: Iterable[Migrations]) -> list[str]:
    """Apply every pending migration of each set, in order. Safe to run any number of times.

    Returns the names of the migrations applied by this call."""
    applied: list[str] = []
    for migration_set in sets:
        pending = [m.name for m in migration_set.pending(db)]
        migration_set.apply(db)
        applied.extend(f"{migration_set.name}:{name}" for name in pending)
    return applied


class Store:
    """Runs synchronous storage functions for async code: one writer, a few readers."""

    def __init__(self, path: Path | str, readers: int = 4):
        self.path = Path(path)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="haven-db-write")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="haven-db-read")
        self._local = threading.local()
        self._all: list[sqlite_utils.Database] = []
        self._lock = threading.Lock()

    def _db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = open_database(self.path)
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    def _run(self, fn: Callable[..., T], args: tuple) -> T:
        return fn(self._db(), *args)

    async def write(self, fn: Callable[..., T], *args) -> T:
        """Run ``fn(db, *args)`` on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._run, fn, args)

    async def read(self, fn: Callable[..., T], *args) -> T:
        """Run ``fn(db, *args)`` on a reader thread (must not write)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run, fn, args)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
