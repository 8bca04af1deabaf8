"""The record store: one SQLite file (WAL mode) behind a small interface.

Storage functions in this project are synchronous and take a ``sqlite_utils.Database``.
Async code runs them through :class:`Store`: every write goes through one writer thread
(SQLite allows one writer at a time, so queueing them here avoids ``database is locked``),
reads go through a small pool with one connection per thread. A later server-database
backend only has to provide the same two methods.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import sqlite_utils
from sqlite_utils import Migrations

T = TypeVar("T")


def open_database(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) a database file with Haven's connection settings."""
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    db = sqlite_utils.Database(conn, strict=True)
    if str(path) != ":memory:":
        db.enable_wal()
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
