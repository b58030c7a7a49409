"""Failed logins, counted per account name and per client address; too many lock that key for a while.

Unknown names are counted like known ones, so a lock says nothing about whether an account exists.
The table is bounded: the oldest keys are forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Failures:
    count: int
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(self, max_failures: int, lockout_s: float, max_keys: int = 100_000) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.max_keys = max_keys
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def locked_for(self, key: str, now: float | None = None) -> float:
        """Seconds until `key` may try again (0 when it may now); an expired lock is forgotten."""
        now = time.monotonic() if now is None else now
        entry = self._keys.get(key)
        if entry is None or entry.locked_until == 0.0:
            return 0.0
        if now >= entry.locked_until:
            del self._keys[key]
            return 0.0
        return entry.locked_until - now

    def failed(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        entry = self._keys.pop(key, None) or _Failures(0)
        entry.count += 1
        if entry.count >= self.max_failures:
            entry.locked_until = now + self.lockout_s
        self._keys[key] = entry  # most recent last
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._keys.pop(key, None)
