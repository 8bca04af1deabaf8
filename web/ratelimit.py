"""Login throttling that cannot be turned into a lockout (OWASP Authentication Cheat Sheet).

Locking an account after a few failures lets anyone lock a therapist out just before a
session. Instead, every refusal here is a delay, and whoever has logged in to an account
from an address before keeps a way in from there:

* **per (account, address)**: the first ``free`` failures cost nothing; after that each one
  doubles the wait before that address may try that account again (1 s, 2 s, 4 s, ... up to
  ``max_delay``). The pair is forgotten a day after its last failure, or at a success.
* **per address**: more than ``per_address`` failures within ``window``, over all accounts,
  and the address waits until the oldest of them leaves the window (one address cannot
  spray passwords over many accounts).
* **per account, from unknown addresses**: more than ``per_user`` failures within
  ``window`` from addresses that never logged in to it, and every unknown address shares a
  growing wait for that account (a guess spread over many addresses is slowed too).
* **known-good addresses**: an address that logged in to the account within ``known_for``
  is exempt from the last two. Its own pair's wait is capped at ``known_max_delay``, so a
  correct password from there always gets in, whatever others do.

State is in memory (a restart forgets it) and bounded (``max_keys`` per table).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

DAY = 24 * 3600.0


class _Bounded(OrderedDict):
    """An insertion-ordered dict that forgets its oldest half when it grows past a limit."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def touch(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.limit:
            for old in list(self)[: self.limit // 2]:
                del self[old]


class LoginLimiter:
    def __init__(
        self,
        per_user: int,
        per_address: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        *,
        free: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 15 * 60,
        known_max_delay: float = 30.0,
        known_for: float = 30 * DAY,
    ):
        self.per_user = per_user
        self.per_address = per_address
        self.window = window_seconds
        self.clock = clock
        self.free = free
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.known_max_delay = known_max_delay
        self.known_for = known_for
        self._pairs = _Bounded(max_keys)  # (user, address) -> (failures, last failure time)
        self._addresses = _Bounded(max_keys)  # address -> deque of failure times
        self._accounts = _Bounded(max_keys)  # user -> deque of failure times (unknown addrs)
        self._known = _Bounded(max_keys)  # (user, address) -> last success time

    def _delay(self, failures_over: int, cap: float) -> float:
        if failures_over <= 0:
            return 0.0
        return min(cap, self.base_delay * 2 ** min(failures_over - 1, 40))

    def _recent(self, table: _Bounded, key: str, now: float) -> deque[float]:
        q = table.get(key)
        if q is None:
            return deque()
        while q and now - q[0] > self.window:
            q.popleft()
        if not q:
            del table[key]
        return q

    def is_known(self, username: str, address: str) -> bool:
        seen = self._known.get((username, address))
        return seen is not None and self.clock() - seen <= self.known_for

    def retry_after(self, username: str, address: str) -> float | None:
        """Seconds to wait if this attempt must be refused now, else None."""
        now = self.clock()
        known = self.is_known(username, address)
        waits = []
        pair = self._pairs.get((username, address))
        if pair is not None:
            failures, last = pair
            if now - last > DAY:
                del self._pairs[(username, address)]
            else:
                cap = self.known_max_delay if known else self.max_delay
                waits.append(last + self._delay(failures - self.free, cap) - now)
        if not known:
            q = self._recent(self._addresses, address, now)
            if len(q) >= self.per_address:
                waits.append(q[0] + self.window - now)
            q = self._recent(self._accounts, username, now)
            if len(q) >= self.per_user:
                waits.append(q[-1] + self._delay(len(q) - self.per_user + 1, self.max_delay)
                             - now)
        wait = max(waits, default=0.0)
        return max(1.0, wait) if wait > 0 else None

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        failures, _ = self._pairs.get((username, address), (0, now))
        self._pairs.touch((username, address), (failures + 1, now))
        if self.is_known(username, address):
            return
        for table, key in ((self._addresses, address), (self._accounts, username)):
            q = self._recent(table, key, now)
            q.append(now)
            table.touch(key, q)

    def succeeded(self, username: str, address: str) -> None:
        self._pairs.pop((username, address), None)
        self._known.touch((username, address), self.clock())
