"""Per-user limits on asking: a question rate (token bucket), tasks open at once, and a daily quota.

Checked in memory on every question; the daily counts are written to the store in batches by the
master's periodic sweep and read back once per user and day, so they survive a restart.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import sqlite3
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    per_minute: float  # 0 = no rate limit
    burst: int
    open_tasks: int  # 0 = no limit
    daily_quota: int  # 0 = no quota
    exempt_admins: bool = False


class LimitExceeded(Exception):
    """A question over a limit; `message` says which limit and when to try again."""

    def __init__(self, code: str, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


@dataclass
class _Bucket:
    tokens: float
    updated: float


def utc_day(now: float | None = None) -> str:
    return _day_name(int((time.time() if now is None else now) // 86_400))


@functools.lru_cache(maxsize=4)
def _day_name(day: int) -> str:
    """'YYYY-MM-DD' of the UTC day `day` days after the epoch (computed once per day, not per question)."""
    return dt.datetime.fromtimestamp(day * 86_400, dt.timezone.utc).strftime("%Y-%m-%d")


def seconds_to_midnight_utc(now: float | None = None) -> float:
    now = time.time() if now is None else now
    return 86_400 - (now % 86_400)


@dataclass
class UserLimiter:
    limits: Limits
    _buckets: dict[int, _Bucket] = field(default_factory=dict)
    # (user id, day) -> questions counted; `_dirty` are those not yet written to the store.
    _daily: dict[tuple[int, str], int] = field(default_factory=dict)
    _dirty: set[tuple[int, str]] = field(default_factory=set)

    def needs_daily_count(self, user_id: int, now: float | None = None) -> bool:
        """Whether the store's count for today must be read before `check` (once per user and day)."""
        return self.limits.daily_quota > 0 and (user_id, utc_day(now)) not in self._daily

    def load_daily_count(self, user_id: int, day: str, count: int) -> None:
        self._daily.setdefault((user_id, day), count)

    def check(self, user_id: int, is_admin: bool, open_tasks: int, now: float | None = None) -> None:
        """Count one question for the user, or raise LimitExceeded (and count nothing)."""
        limits = self.limits
        if is_admin and limits.exempt_admins:
            return
        wall = time.time() if now is None else now
        mono = time.monotonic() if now is None else now
        if limits.open_tasks and open_tasks >= limits.open_tasks:
            raise LimitExceeded(
                "too_many_open",
                f"You have {open_tasks} questions waiting for answers (the limit is {limits.open_tasks}). "
                "Ask again when one is answered.", None)
        key = (user_id, utc_day(wall))
        if limits.daily_quota and self._daily.get(key, 0) >= limits.daily_quota:
            retry = seconds_to_midnight_utc(wall)
            raise LimitExceeded(
                "daily_quota",
                f"You have used today's {limits.daily_quota} questions. Try again in {human_duration(retry)} (at midnight UTC).",
                retry)
        if limits.per_minute:
            bucket = self._buckets.get(user_id)
            rate = limits.per_minute / 60.0
            if bucket is None:
                bucket = self._buckets[user_id] = _Bucket(float(limits.burst), mono)
            bucket.tokens = min(float(limits.burst), bucket.tokens + (mono - bucket.updated) * rate)
            bucket.updated = mono
            if bucket.tokens < 1.0:
                retry = (1.0 - bucket.tokens) / rate
                raise LimitExceeded(
                    "rate_limited",
                    f"You are asking faster than {limits.per_minute:g} questions a minute. Try again in {human_duration(retry)}.",
                    retry)
            bucket.tokens -= 1.0
        if limits.daily_quota:
            self._daily[key] = self._daily.get(key, 0) + 1
            self._dirty.add(key)

    def take_dirty(self) -> dict[tuple[int, str], int]:
        """Daily counts changed since the last call (to write to the store)."""
        out = {k: self._daily[k] for k in self._dirty}
        self._dirty.clear()
        today = utc_day()
        for key in [k for k in self._daily if k[1] != today and k not in out]:
            del self._daily[key]
        return out

    def forget_user(self, user_id: int) -> None:
        self._buckets.pop(user_id, None)


def human_duration(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{math.ceil(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def read_daily_count(conn: sqlite3.Connection, user_id: int, day: str) -> int:
    row = conn.execute("SELECT questions FROM daily_usage WHERE user_id = ? AND day = ?", (user_id, day)).fetchone()
    return int(row[0]) if row else 0


def write_daily_counts(conn: sqlite3.Connection, counts: dict[tuple[int, str], int]) -> None:
    with conn:
        conn.executemany(
            "INSERT INTO daily_usage (user_id, day, questions) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id, day) DO UPDATE SET questions = MAX(questions, excluded.questions)",
            [(u, d, n) for (u, d), n in counts.items()],
        )
