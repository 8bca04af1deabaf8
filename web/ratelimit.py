"""Login rate limiting: failures counted per username and per client address in a window."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class LoginLimiter:
    def __init__(
        self,
        per_user: int,
        per_address: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ):
        self.per_user = per_user
        self.per_address = per_address
        self.window = window_seconds
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and now - q[0] > self.window:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def retry_after(self, username: str, address: str) -> float | None:
        """Seconds to wait if this attempt must be refused, else None."""
        for key, limit in ((f"u:{username}", self.per_user), (f"a:{address}", self.per_address)):
            q = self._recent(key)
            if len(q) >= limit:
                return max(1.0, self.window - (self.clock() - q[0]))
        return None

    def failed(self, username: str, address: str) -> None:
        if len(self._failures) >= self.max_keys:
            # Bounded memory: forget the oldest half rather than grow without limit.
            for key in list(self._failures)[: self.max_keys // 2]:
                del self._failures[key]
        now = self.clock()
        for key in (f"u:{username}", f"a:{address}"):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str) -> None:
        self._failures.pop(f"u:{username}", None)
