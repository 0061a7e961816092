"""A circuit breaker per store: after a few consecutive *connection* failures, calls to the
store are skipped for a while instead of each one waiting for a timeout.

Only failures that say the store is away open it (a refused or lost connection); a slow
read of one large customer that times out does not, so one customer's bad luck never
switches a tier off for everybody. After ``reset_s`` one call is let through to probe;
its success closes the breaker.
"""

from __future__ import annotations

import threading
import time


class CircuitBreaker:
    def __init__(self, name: str, *, threshold: int = 2, reset_s: float = 5.0) -> None:
        self.name = name
        self.threshold = threshold
        self.reset_s = reset_s
        self._failures = 0
        self._open_until = 0.0
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        return self._failures >= self.threshold and time.monotonic() < self._open_until

    def allow(self) -> bool:
        """Whether a call may go to the store now (closed, or half-open and due a probe)."""
        with self._lock:
            if self._failures < self.threshold:
                return True
            if time.monotonic() >= self._open_until:
                self._open_until = time.monotonic() + self.reset_s  # one probe per period
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._open_until = 0.0

    def failure(self) -> None:
        """Record a connection failure (not a timeout of one slow call)."""
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                self._open_until = time.monotonic() + self.reset_s
