"""web/allocator.py: glibc's arenas bounded at start (unless the operator chose), freed pages
trimmed while the server runs. The memory effect itself is measured by bench/soak.py."""

from __future__ import annotations

import asyncio

import pytest

from web import allocator


def test_bound_arenas_leaves_an_operators_choice_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert allocator.bound_arenas() is False


def test_bound_arenas_on_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    if allocator._libc() is None:
        pytest.skip("not glibc")
    assert allocator.bound_arenas() is True


async def test_trim_runs_while_the_server_runs_and_stops_with_it(monkeypatch):
    if allocator._libc() is None:
        pytest.skip("not glibc")
    monkeypatch.setattr(allocator, "TRIM_EVERY_S", 0.01)
    trims = []
    real = allocator._libc

    def counting_libc():
        libc = real()

        class Counting:
            def malloc_trim(self, pad):
                trims.append(pad)
                return libc.malloc_trim(pad)
        return Counting()

    monkeypatch.setattr(allocator, "_libc", counting_libc)
    ctx = allocator.trim_ctx(None)
    await ctx.__anext__()
    await asyncio.sleep(0.1)
    assert len(trims) >= 3
    with pytest.raises(StopAsyncIteration):
        await ctx.__anext__()
    done = len(trims)
    await asyncio.sleep(0.05)
    assert len(trims) == done  # stopped with the server
