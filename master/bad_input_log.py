"""One log line per client and interval for bad input, however much of it comes: a count of the rest."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("master.bad_input")


class BadInputLog:
    def __init__(self, interval_s: float = 60.0, max_clients: int = 10_000) -> None:
        self.interval_s = interval_s
        self.max_clients = max_clients
        self._last: dict[str, tuple[float, int]] = {}  # client -> (time of its last line, suppressed since)

    def report(self, client: str, what: str, now: float | None = None) -> bool:
        """Log `what` for `client` unless it was logged within the interval; True when a line was written."""
        now = time.monotonic() if now is None else now
        last, suppressed = self._last.get(client, (float("-inf"), 0))
        if now - last < self.interval_s:
            self._last[client] = (last, suppressed + 1)
            return False
        more = f" ({suppressed} more bad inputs from it since the last line)" if suppressed else ""
        logger.warning("bad input from session %s: %s%s", client, what, more)
        if len(self._last) >= self.max_clients and client not in self._last:
            self._last.pop(next(iter(self._last)))
        self._last[client] = (now, 0)
        return True

    def forget(self, client: str) -> None:
        self._last.pop(client, None)
