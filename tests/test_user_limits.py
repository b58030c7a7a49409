"""master/user_limits.py: question rate, open tasks and the daily quota, each with a time to try again."""

from __future__ import annotations

import pytest

from master.user_limits import Limits, LimitExceeded, UserLimiter, seconds_to_midnight_utc, utc_day

DAY0 = 1_800_000_000.0 - (1_800_000_000.0 % 86_400)  # a UTC midnight


def limiter(**kw: object) -> UserLimiter:
    values: dict[str, object] = dict(per_minute=0, burst=1, open_tasks=0, daily_quota=0)
    values.update(kw)
    return UserLimiter(Limits(**values))  # type: ignore[arg-type]


def test_burst_then_rate_limited_with_a_retry_time() -> None:
    """Burst 3 at 60 a minute: 3 at once pass, the 4th is refused with about 1 s to wait; after it, one more."""
    lim = limiter(per_minute=60, burst=3)
    for _ in range(3):
        lim.check(1, False, 0, now=DAY0 + 10)
    with pytest.raises(LimitExceeded) as refused:
        lim.check(1, False, 0, now=DAY0 + 10)
    assert refused.value.code == "rate_limited" and refused.value.retry_after_s == pytest.approx(1.0)
    assert "Try again in 1 s" in refused.value.message
    lim.check(1, False, 0, now=DAY0 + 11)


def test_rate_limit_is_per_user() -> None:
    """One user's empty bucket does not limit another."""
    lim = limiter(per_minute=60, burst=1)
    lim.check(1, False, 0, now=DAY0)
    with pytest.raises(LimitExceeded):
        lim.check(1, False, 0, now=DAY0)
    lim.check(2, False, 0, now=DAY0)


def test_open_tasks_cap() -> None:
    """At the cap of open tasks the next question is refused, below it accepted."""
    lim = limiter(open_tasks=4)
    lim.check(1, False, 3, now=DAY0)
    with pytest.raises(LimitExceeded) as refused:
        lim.check(1, False, 4, now=DAY0)
    assert refused.value.code == "too_many_open" and refused.value.retry_after_s is None


def test_daily_quota_counts_from_the_store_and_resets_at_midnight_utc() -> None:
    """With 9 already used today (read from the store) and a quota of 10: one more, then refused until midnight."""
    lim = limiter(daily_quota=10)
    assert lim.needs_daily_count(1, now=DAY0 + 100)
    lim.load_daily_count(1, "2000-01-01", 0)  # another day: irrelevant
    lim.load_daily_count(1, utc_day(DAY0 + 100), 9)
    lim.check(1, False, 0, now=DAY0 + 100)
    with pytest.raises(LimitExceeded) as refused:
        lim.check(1, False, 0, now=DAY0 + 200)
    assert refused.value.code == "daily_quota"
    assert refused.value.retry_after_s == pytest.approx(seconds_to_midnight_utc(DAY0 + 200))
    lim.check(1, False, 0, now=DAY0 + 86_400 + 1)  # the next day


def test_refused_question_is_not_counted() -> None:
    """A question refused by the rate limit does not use up the daily quota."""
    lim = limiter(per_minute=60, burst=1, daily_quota=5)
    lim.check(1, False, 0, now=DAY0)
    with pytest.raises(LimitExceeded):
        lim.check(1, False, 0, now=DAY0)
    assert list(lim.take_dirty().values()) == [1]


def test_admins_are_limited_unless_exempt() -> None:
    """An admin meets the limits by default; with exempt_admins they pass."""
    with pytest.raises(LimitExceeded):
        limiter(open_tasks=1).check(1, True, 1, now=DAY0)
    limiter(open_tasks=1, exempt_admins=True).check(1, True, 1, now=DAY0)
