"""The C allocator of a long-running ``haven serve``: fewer arenas, freed pages handed back.

An hour of churn (bench/soak.py: thousands of peer connections opened and closed) grew the
server's RSS by about 0.2 MiB a minute while Python's own heap stayed flat (tracemalloc): the
growth was native memory that glibc's malloc kept after it was freed, spread over one arena
per thread that ever allocated (aiortc's and the store's worker threads, the resolver's).
Two standard glibc knobs bound that (docs/performance.md, "Soak"):

* ``mallopt(M_ARENA_MAX, 2)`` at start, before any worker thread exists, so freed chunks are
  reused across threads instead of stranded in per-thread arenas;
* ``malloc_trim(0)`` once a minute, which returns free pages at the top of and inside the
  arenas to the system.

Both are glibc-only; on any other C library (musl, macOS) this module does nothing. The
environment variable ``MALLOC_ARENA_MAX`` set by an operator wins over the default here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import time
from collections.abc import AsyncIterator

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc malloc.h
ARENAS = 2
TRIM_EVERY_S = 60.0


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


def bound_arenas(arenas: int = ARENAS) -> bool:
    """Limit glibc to ``arenas`` malloc arenas (call before threads start); True if done."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False  # the operator's choice, read by glibc itself at start
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1)


async def trim_ctx(app) -> AsyncIterator[None]:
    """aiohttp cleanup context: trim once a minute while the server runs."""
    libc = _libc()
    if libc is None:
        yield
        return

    async def loop() -> None:
        while True:
            await asyncio.sleep(TRIM_EVERY_S)
            started = time.perf_counter()
            libc.malloc_trim(0)
            log.debug("malloc_trim took %.1f ms", 1000 * (time.perf_counter() - started))

    task = asyncio.get_running_loop().create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
