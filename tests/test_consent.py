"""ICE consent freshness (media/consent.py) between two real aioice connections on loopback.

A peer that answers every consent check, but later than aioice's 0.5 s, keeps its
connection; a peer that stops answering loses it once the consent timer runs out. The
timer and interval are shortened here (the shipped values are RFC 7675's 30 s and 5 s);
the same test with aioice's own consent task shows the connection it used to close.
"""

from __future__ import annotations

import asyncio

import aioice
import aioice.ice
import pytest

from media import aiortc_hooks, consent
from media.ice import IcePolicy


async def connected_pair() -> tuple[aioice.Connection, aioice.Connection]:
    a = aioice.Connection(ice_controlling=True, components=1, use_ipv6=False)
    b = aioice.Connection(ice_controlling=False, components=1, use_ipv6=False)
    with IcePolicy.loopback().gathering():
        await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    for me, other in ((a, b), (b, a)):
        for candidate in other.local_candidates:
            await me.add_remote_candidate(candidate)
        await me.add_remote_candidate(None)
        me.remote_username, me.remote_password = other.local_username, other.local_password
    await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 10)
    return a, b


def answer_late(conn: aioice.Connection, delay: float | None) -> None:
    """From now on ``conn`` answers each check after ``delay`` seconds (None: never)."""
    original = conn.request_received
    loop = asyncio.get_running_loop()

    def request_received(message, addr, protocol):
        if delay is not None:
            loop.call_later(delay, original, message, addr, protocol)

    conn.request_received = request_received


def is_open(conn: aioice.Connection) -> bool:
    return bool(aiortc_hooks.nominated_pairs(conn))


@pytest.fixture
def quick_consent(monkeypatch):
    """Consent checks every ~0.2 s, expiry after 1.5 s without an answer (ours), or
    after 6 unanswered checks (aioice's: about 1.2 s)."""
    monkeypatch.setattr(consent, "CONSENT_INTERVAL_S", 0.2)
    monkeypatch.setattr(consent, "CONSENT_TIMEOUT_S", 1.5)
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.2)
    consent.install()
    yield
    consent.install()


async def run_late(delay: float | None, seconds: float) -> tuple[bool, bool]:
    a, b = await connected_pair()
    try:
        answer_late(b, delay)
        await asyncio.sleep(seconds)
        return is_open(a), is_open(b)
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_late_answers_keep_consent(quick_consent):
    # every answer 0.7 s late (later than aioice's 0.5 s): a keeps sending for 4 s,
    # over twice its consent timeout
    a_open, b_open = await run_late(0.7, 4.0)
    assert a_open and b_open


async def test_no_answers_expire_consent(quick_consent):
    a_open, _ = await run_late(None, 3.0)
    assert not a_open


async def test_aioice_own_consent_closed_a_peer_that_answers_late(quick_consent, monkeypatch):
    """The fault this module fixes, shown with aioice's consent task put back."""
    monkeypatch.setattr(consent, "install", lambda: None)  # (gathering would put ours back)
    monkeypatch.setattr(aioice.Connection, "query_consent",
                        aiortc_hooks.aioice_consent_function())
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 3)  # 3 x (0.2 s + 0.5 s) < 4 s
    a_open, _ = await run_late(0.7, 4.0)
    assert not a_open


async def test_consent_checks_are_forgotten_once_too_old(quick_consent):
    a, b = await connected_pair()
    try:
        answer_late(b, None)
        await asyncio.sleep(1.2)
        protocol = aiortc_hooks.nominated_pairs(a)[0].protocol
        pending = [t for t in protocol.transactions.values()
                   if isinstance(t, consent.ConsentCheck)]
        assert 0 < len(pending) <= 1.5 / (0.2 * 0.8) + 1
    finally:
        await asyncio.gather(a.close(), b.close())
    assert not any(isinstance(t, consent.ConsentCheck) for t in protocol.transactions.values())
