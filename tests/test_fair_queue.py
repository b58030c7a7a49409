"""master/fair_queue.py: priority first, round-robin across owners, FIFO within an owner."""

from __future__ import annotations

from master.fair_queue import HIGH, LOW, NORMAL, FairQueue


def take_all(q: FairQueue, can_place=lambda _t: True) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    while (t := q.take(can_place)) is not None:
        out.append(t)
    return out


def test_owners_take_turns_and_each_keeps_its_order() -> None:
    """A with 4 queued and B with 2: A1 B1 A2 B2 A3 A4."""
    q = FairQueue()
    for i in range(1, 5):
        q.push(f"a{i}", "A")
    q.push("b1", "B")
    q.push("b2", "B")
    assert take_all(q) == ["a1", "b1", "a2", "b2", "a3", "a4"]


def test_one_question_waits_one_turn_behind_five_hundred() -> None:
    """B's single question, queued after A's 500, is the second one taken."""
    q = FairQueue()
    for i in range(500):
        q.push(f"a{i}", "A")
    q.push("b", "B")
    assert [q.take(lambda _t: True), q.take(lambda _t: True)] == ["a0", "b"]
    assert len(q) == 499


def test_higher_priority_first_whatever_the_owner() -> None:
    """Priority beats the rotation; the rotation applies within a priority."""
    q = FairQueue()
    q.push("a-low", "A", 0)
    q.push("b-high", "B", 5)
    q.push("a-high", "A", 5)
    assert take_all(q) == ["b-high", "a-high", "a-low"]


def test_discarded_task_is_never_taken() -> None:
    """A cancelled task leaves the queue and its count at once."""
    q = FairQueue()
    q.push("a1", "A")
    q.push("a2", "A")
    assert q.discard("a1") and not q.discard("a1")
    assert len(q) == 1 and take_all(q) == ["a2"]


def test_requeued_task_goes_first_in_its_owners_line() -> None:
    """A task that comes back (its worker died) is its owner's next one."""
    q = FairQueue()
    q.push("a2", "A")
    q.push("a1", "A", first=True)
    assert take_all(q) == ["a1", "a2"]


def test_an_owner_whose_next_task_cannot_be_placed_does_not_block_others() -> None:
    """A's first task needs a model no free worker has: B is served, A keeps its order."""
    q = FairQueue()
    q.push("a-rare", "A")
    q.push("a-common", "A")
    q.push("b-common", "B")
    assert q.take(lambda t: t != "a-rare") == "b-common"
    assert q.take(lambda t: t != "a-rare") is None  # FIFO within A: a-common waits behind a-rare
    assert take_all(q) == ["a-rare", "a-common"]


def test_a_task_queued_again_elsewhere_is_taken_once() -> None:
    """Discarded then pushed again (at another priority): taken exactly once, at the new place."""
    q = FairQueue()
    q.push("t", "A", 0)
    q.discard("t")
    q.push("t", "A", 3)
    q.push("u", "B", 0)
    assert take_all(q) == ["t", "u"]


def test_owners_parked_on_a_group_come_back_in_order_one_per_take() -> None:
    """Owners waiting for a busy group (model) are parked; when it frees, they are served first, in the order they waited."""
    q = FairQueue(group_of=lambda t: t.split("-")[1])
    free = {"rare": False, "common": True}
    for owner in "ABC":
        q.push(f"{owner}-rare", owner)
    q.push("D-common", "D")
    assert q.take(lambda t: free[t.split("-")[1]]) == "D-common"
    assert q.take(lambda t: free[t.split("-")[1]]) is None
    free["rare"] = True
    q.push("E-common", "E")
    assert take_all(q) == ["A-rare", "B-rare", "C-rare", "E-common"]


def test_a_parked_owners_first_task_discarded_or_pushed_first_is_looked_at_again() -> None:
    """Parked behind a task that then leaves (or one put back before it): the owner's new first task is taken."""
    q = FairQueue(group_of=lambda t: t.split("-")[0])
    q.push("rare-1", "A")
    q.push("common-2", "A")
    can = lambda t: t.startswith("common")  # noqa: E731
    assert q.take(can) is None
    q.discard("rare-1")
    assert q.take(can) == "common-2"
    q.push("rare-3", "B")
    assert q.take(can) is None
    q.push("common-4", "B", first=True)
    assert q.take(can) == "common-4" and len(q) == 1


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_without_aging_high_normal_low_in_that_order_whatever_the_wait() -> None:
    """aging_s=0: strict priority; a low task queued long ago still waits for a fresh high one."""
    clock = Clock()
    q = FairQueue(clock=clock)
    q.push("low", "A", LOW)
    clock.now += 10_000
    q.push("normal", "B", NORMAL)
    q.push("high", "C", HIGH)
    assert take_all(q) == ["high", "normal", "low"]


def test_aging_raises_a_level_per_interval_and_ties_go_to_the_older() -> None:
    """aging_s=10: a normal task 10 s old ties with a fresh high one and goes first (older); 9.9 s old it does not."""
    clock = Clock()
    q = FairQueue(aging_s=10, clock=clock)
    q.push("normal", "A", NORMAL)
    clock.now += 9.9
    q.push("high-1", "B", HIGH)
    assert q.take(lambda _t: True) == "high-1"
    clock.now += 0.1
    q.push("high-2", "B", HIGH)
    assert take_all(q) == ["normal", "high-2"]


def test_low_task_waits_a_bounded_time_under_constant_high_load() -> None:
    """One high task arrives and one task is taken every second: the low task is taken after 2 x aging_s."""
    clock = Clock()
    q = FairQueue(aging_s=5, clock=clock)
    q.push("low", "L", LOW)
    start, taken_at = clock.now, None
    for i in range(100):
        q.push(f"high-{i}", "H", HIGH)
        if q.take(lambda _t: True) == "low":
            taken_at = clock.now
            break
        clock.now += 1
    assert taken_at is not None and taken_at - start == 10  # 2 levels up, 5 s each
    assert len(q) == 1  # the high task of that second is still queued, taken next


def test_a_parked_task_does_not_age_its_level_past_others() -> None:
    """A high task parked on a busy model does not keep its level "old": a low task still waits only 2 x aging_s."""
    clock = Clock()
    q = FairQueue(group_of=lambda t: t.split("-")[0], aging_s=5, clock=clock)
    can = lambda t: not t.startswith("x")  # noqa: E731  (model x stays busy)
    q.push("x-parked", "P", HIGH)
    q.push("y-low", "L", LOW)
    start, taken_at = clock.now, None
    for i in range(100):
        q.push(f"y-high-{i}", "H", HIGH)
        if q.take(can) == "y-low":
            taken_at = clock.now
            break
        clock.now += 1
    assert taken_at is not None and taken_at - start == 10  # as without the parked task
    assert "x-parked" in q
    assert q.take(lambda _t: True) == "x-parked"  # model x free again: the parked task comes back first


def test_aging_is_capped_at_the_highest_level_queued() -> None:
    """Aging never lifts a task above the highest queued level: two aged levels go oldest first."""
    clock = Clock()
    q = FairQueue(aging_s=1, clock=clock)
    q.push("normal-old", "A", NORMAL)
    clock.now += 1
    q.push("low-older-still", "B", LOW)  # younger than normal-old
    clock.now += 50
    q.push("normal-new", "A", NORMAL)
    assert take_all(q) == ["normal-old", "low-older-still", "normal-new"]


def test_requeued_task_keeps_its_age() -> None:
    """A task that goes back (first=True, since=its first queue time) is as old as before, not new."""
    clock = Clock()
    q = FairQueue(aging_s=10, clock=clock)
    q.push("normal", "A", NORMAL)
    first_queued = clock.now
    assert q.take(lambda _t: True) == "normal"
    clock.now += 15
    q.push("normal", "A", NORMAL, first=True, since=first_queued)
    q.push("high", "B", HIGH)
    assert take_all(q) == ["normal", "high"]


def test_aged_level_whose_tasks_cannot_be_placed_lets_the_next_level_go() -> None:
    """An aged low task no free worker can take does not block a high task that can be placed."""
    clock = Clock()
    q = FairQueue(aging_s=1, clock=clock)
    q.push("low-other-model", "A", LOW)
    clock.now += 10
    q.push("high", "B", HIGH)
    assert q.take(lambda t: t != "low-other-model") == "high"
    assert q.take(lambda _t: True) == "low-other-model" and len(q) == 0


def test_discarded_oldest_task_no_longer_ages_its_level() -> None:
    """A cancelled old task is not the level's age any more: a fresh high task goes before its newer neighbour."""
    clock = Clock()
    q = FairQueue(aging_s=10, clock=clock)
    q.push("normal-old", "A", NORMAL)
    clock.now += 15
    q.push("normal-new", "A", NORMAL)
    q.push("high", "B", HIGH)
    assert q.discard("normal-old")
    assert take_all(q) == ["high", "normal-new"]
