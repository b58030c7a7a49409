"""master/login_throttle.py: failures lock a key for a while, then it is forgotten."""

from __future__ import annotations

from master.login_throttle import LoginThrottle


def test_key_is_locked_after_n_failures_and_free_after_the_lock() -> None:
    """Two failures allowed, the third locks for 60 s; at 60 s it may try again."""
    t = LoginThrottle(max_failures=3, lockout_s=60)
    t.failed("k", now=0)
    t.failed("k", now=1)
    assert t.locked_for("k", now=2) == 0
    t.failed("k", now=2)
    assert t.locked_for("k", now=3) == 59
    assert t.locked_for("k", now=62) == 0


def test_success_forgets_earlier_failures() -> None:
    """A successful login resets the count."""
    t = LoginThrottle(max_failures=2, lockout_s=60)
    t.failed("k", now=0)
    t.succeeded("k")
    t.failed("k", now=1)
    assert t.locked_for("k", now=1) == 0


def test_table_is_bounded() -> None:
    """Past max_keys the oldest keys are forgotten, so a flood of names cannot grow memory."""
    t = LoginThrottle(max_failures=1, lockout_s=60, max_keys=10)
    for i in range(100):
        t.failed(f"k{i}", now=0)
    assert t.locked_for("k0", now=1) == 0 and t.locked_for("k99", now=1) > 0
