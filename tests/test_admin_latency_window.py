"""The admin page's answer rate and latency percentiles: accurate to 2.2 %, in memory that does not grow."""

from __future__ import annotations

import math
import tracemalloc
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from master.admin_feed import WINDOW_S, RecentAnswers
from master.dispatcher import Outcome

RELATIVE_ERROR = 2 ** (1 / 32) - 1  # half a bucket: 2.2 %


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def answer(recent: RecentAnswers, clock: Clock, latency_s: float) -> None:
    recent.finished(SimpleNamespace(created=clock.now - latency_s), Outcome("t", answer="a"))  # type: ignore[arg-type]


def exact(latencies: list[float], p: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=1e-5, max_value=3600.0), min_size=1, max_size=400))
def test_percentiles_are_within_half_a_bucket_of_the_exact_ones(latencies: list[float]) -> None:
    """p50, p95 and p99 over the window are within 2.2 % of the sorted samples' (the old exact figures)."""
    clock = Clock()
    recent = RecentAnswers(clock)
    for i, latency in enumerate(latencies):
        clock.now += 0.37 * (i % 3)
        answer(recent, clock, latency)
    summary = recent.summary()
    for p in (50, 95, 99):
        want = exact(latencies, p)
        assert math.isclose(summary[f"p{p}_s"], want, rel_tol=RELATIVE_ERROR + 1e-9), (p, summary, want)


def test_rate_counts_the_last_ten_seconds_and_old_answers_are_forgotten() -> None:
    """Answers leave the rate after 10 s and the percentiles after the 5-minute window."""
    clock = Clock()
    recent = RecentAnswers(clock)
    for _ in range(50):
        answer(recent, clock, 2.0)
    assert recent.summary()["answers_per_s"] == 5.0
    clock.now += 11
    for _ in range(10):
        answer(recent, clock, 0.01)
    summary = recent.summary()
    assert summary["answers_per_s"] == 1.0
    assert math.isclose(summary["p50_s"], 2.0, rel_tol=RELATIVE_ERROR)  # 50 slow answers still in the window
    clock.now += WINDOW_S - 5
    summary = recent.summary()
    assert summary["answers_per_s"] == 0.0
    assert math.isclose(summary["p50_s"], 0.01, rel_tol=RELATIVE_ERROR)  # the slow ones are out
    clock.now += 10
    assert recent.summary() == {"answers_per_s": 0.0, "p50_s": None, "p95_s": None, "p99_s": None}


def test_memory_does_not_grow_with_answers_or_time() -> None:
    """200 answers a second: the memory held after 16 minutes is what it was after 6 (the old list grew to 5.6 MB)."""
    clock = Clock()
    recent = RecentAnswers(clock)

    def run(seconds: int) -> None:
        for _ in range(seconds):
            for i in range(200):
                answer(recent, clock, 0.001 * (1 + i % 50))
            clock.now += 1

    tracemalloc.start()
    try:
        run(WINDOW_S + 60)
        held_at_6_min = tracemalloc.get_traced_memory()[0]
        run(600)
        held_at_16_min = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held_at_16_min - held_at_6_min < 64 * 1024, (held_at_6_min, held_at_16_min)
    assert held_at_16_min < 2**20, held_at_16_min
    assert recent.summary()["answers_per_s"] == 200.0
