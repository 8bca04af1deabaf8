"""ICE consent freshness (RFC 7675) that survives a slow answer.

aioice checks consent every 4–6 s with one STUN binding request and gives each answer
0.5 s (its RTO, no retransmission); six late answers in a row close the connection. An
answer that takes longer than half a second is not a lost consent, though: on a congested
uplink (bufferbloat), a phone that is busy, or a server core shared by a dozen peers, every
answer may come back late for a while, and the peer is still there and still answering.
Measured here (bench/rekey_bench.py, 12 people on two loaded cores): connections whose
peers answered every check, but late, were closed 30–34 s after they connected; the SFU's
fast path then hit their closed sockets (``OSError(9)``), dropped them, and their rejoining
forced new key generations for everyone.

RFC 7675 keeps a consent *timer* instead: consent expires when no check has been answered
for 30 s. This module does that for every aioice connection in the process (the server's
and the Python clients'): a check is sent once, as before, and its answer counts whenever
it arrives, as long as consent has not expired. ``install()`` is idempotent; the
replacement reaches aioice only through :mod:`media.aiortc_hooks`.
"""

from __future__ import annotations

import asyncio
import logging
import random

from aioice import stun

from media import aiortc_hooks

log = logging.getLogger(__name__)

CONSENT_INTERVAL_S = 5.0  # RFC 7675 section 5.1: randomised to 0.8–1.2 of this
CONSENT_TIMEOUT_S = 30.0  # RFC 7675 section 5.1: no answer for this long, consent expires


class ConsentCheck:
    """One sent check, registered as a STUN transaction of its protocol: an authenticated
    success answer, however late, refreshes consent."""

    __slots__ = ("key", "on_answer", "sent_at")

    def __init__(self, key: bytes, on_answer, sent_at: float) -> None:
        self.key = key
        self.on_answer = on_answer
        self.sent_at = sent_at

    def response_received(self, message: stun.Message, addr) -> None:
        if message.message_class == stun.Class.RESPONSE and message.check_message_integrity(
                self.key):
            self.on_answer()


async def query_consent(conn) -> None:
    """Replacement for ``aioice.Connection.query_consent`` (runs once ICE has completed)."""
    assert conn.remote_password is not None
    key = conn.remote_password.encode("utf8")
    loop = asyncio.get_running_loop()
    answered_at = loop.time()
    sent: list[tuple[object, bytes]] = []  # (protocol, transaction id), oldest first

    def answered() -> None:
        nonlocal answered_at
        answered_at = loop.time()

    def forget(upto: float) -> None:
        while sent:
            protocol, tid = sent[0]
            check = protocol.transactions.get(tid)
            if check is not None and check.sent_at > upto:
                break
            sent.pop(0)
            protocol.transactions.pop(tid, None)

    try:
        while True:
            await asyncio.sleep(CONSENT_INTERVAL_S * (0.8 + 0.4 * random.random()))
            now = loop.time()
            if now - answered_at >= CONSENT_TIMEOUT_S:
                log.info("ICE consent expired: no answer for %.0f s", now - answered_at)
                aiortc_hooks.consent_task_done(conn)
                await conn.close()
                return
            forget(now - CONSENT_TIMEOUT_S)
            for pair in aiortc_hooks.nominated_pairs(conn):
                request = conn.build_request(pair, nominate=False)
                request.add_message_integrity(key)
                pair.protocol.transactions[request.transaction_id] = ConsentCheck(
                    key, answered, now)
                sent.append((pair.protocol, request.transaction_id))
                try:
                    pair.protocol.send_stun(request, pair.remote_addr)
                except Exception:  # a closed transport: the connection is going anyway
                    log.debug("consent check not sent", exc_info=True)
    finally:
        forget(float("inf"))


def install() -> None:
    """Use :func:`query_consent` for every aioice connection (idempotent)."""
    aiortc_hooks.set_consent_function(query_consent)
