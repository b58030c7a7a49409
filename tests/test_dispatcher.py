"""master/dispatcher.py and master/registry.py: queueing, assignment, requeue, result checks."""

from __future__ import annotations

import pytest

from dataclasses import replace

from common.messages import StatusMessage, TaskMessage
from master.dispatcher import Dispatcher, Outcome, QueueFull, Refusal, ResultRefused, Task, WorkerResult
from master.registry import WorkerRegistry


class Harness:
    def __init__(self, **kw: object) -> None:
        self.published: list[tuple[str, TaskMessage]] = []
        self.delivered: list[tuple[Task, Outcome]] = []
        self.bus_up = True
        self.registry = WorkerRegistry(worker_timeout_s=30)
        kw.setdefault("lease_s", 1e9)  # leases have tests of their own
        self.d = Dispatcher(self.registry, self.publish, lambda t, o: self.delivered.append((t, o)), **kw)  # type: ignore[arg-type]

    def publish(self, worker_id: str, task: TaskMessage) -> bool:
        if self.bus_up:
            self.published.append((worker_id, task))
        return self.bus_up

    def worker(self, worker_id: str, capacity: int = 1, models: tuple[str, ...] = ("echo",), state: str = "idle") -> None:
        self.d.on_status(worker_id, StatusMessage(state=state, capacity=capacity, free_slots=capacity, models=models))

    def result(self, for_task: str, **kw: str) -> WorkerResult:
        worker_id, message = next((w, m) for w, m in reversed(self.published) if m.task_id == for_task)
        fields = {"task_id": for_task, "worker_id": worker_id, "token": message.token, "answer": "ok"}
        fields.update(kw)
        return WorkerResult(**fields)


def test_tasks_wait_until_a_worker_has_a_free_slot() -> None:
    """A task submitted with no worker waits in the queue and goes out when a worker registers."""
    h = Harness()
    t = h.d.submit("s1", "q")
    assert h.published == [] and h.d.queued == 1
    h.worker("w1")
    assert [(w, m.task_id) for w, m in h.published] == [("w1", t.task_id)]


def test_fifo_within_a_priority_and_higher_priority_first() -> None:
    """Higher priority goes first; within a priority, tasks go out in submission order."""
    h = Harness()
    a = h.d.submit("s", "a")
    b = h.d.submit("s", "b")
    urgent = h.d.submit("s", "c", priority=5)
    h.worker("w1", capacity=3)
    assert [m.task_id for _, m in h.published] == [urgent.task_id, a.task_id, b.task_id]


def test_never_more_tasks_than_capacity() -> None:
    """A worker never holds more tasks than its capacity; a result frees a slot for the next."""
    h = Harness()
    for i in range(5):
        h.d.submit("s", f"q{i}")
    h.worker("w1", capacity=2)
    assert len(h.published) == 2 and h.d.queued == 3
    h.d.accept_result(h.result(h.published[0][1].task_id))
    assert len(h.published) == 3


def test_each_task_gets_its_own_random_token() -> None:
    """Every task carries a different random token of at least 32 characters."""
    h = Harness()
    h.worker("w1", capacity=2)
    h.d.submit("s", "a")
    h.d.submit("s", "b")
    tokens = [m.token for _, m in h.published]
    assert len(set(tokens)) == 2 and all(len(t) >= 32 for t in tokens)


def test_task_for_a_model_goes_only_to_a_worker_offering_it() -> None:
    """A task for a model is assigned only to a worker that offers that model."""
    h = Harness()
    h.worker("echo-only", models=("echo",))
    h.worker("gemini", models=("gemini-2.5-flash",))
    h.d.submit("s", "q", model="gemini-2.5-flash")
    assert [w for w, _ in h.published] == ["gemini"]


def test_offline_worker_tasks_are_requeued_to_another() -> None:
    """A worker going offline puts its task back in the queue; another worker answers it."""
    h = Harness()
    h.worker("w1")
    t = h.d.submit("s", "q")
    h.d.on_status("w1", StatusMessage(state="offline"))
    assert h.d.queued == 1 and h.delivered == []
    h.worker("w2")
    assert [w for w, _ in h.published] == ["w1", "w2"]
    h.d.accept_result(h.result(t.task_id))
    assert h.delivered[0][1].answer == "ok"


def test_task_gives_up_after_max_attempts() -> None:
    """A task lost by max_attempts workers is settled with a worker_lost error."""
    h = Harness(max_attempts=2)
    t = h.d.submit("s", "q")
    for i in range(2):
        h.worker(f"w{i}")
        h.d.on_status(f"w{i}", StatusMessage(state="offline"))
    assert [(d[0].task_id, d[1].error_code) for d in h.delivered] == [(t.task_id, "worker_lost")]


def test_silent_worker_is_expired_and_its_task_requeued() -> None:
    """A worker silent past the expiry is marked offline and its task requeued."""
    h = Harness()
    h.worker("w1")
    h.d.submit("s", "q")
    h.registry.workers["w1"].last_seen -= 31
    h.d.sweep()
    assert h.registry.workers["w1"].state == "offline" and h.d.queued == 1


def test_overdue_task_fails_with_timeout() -> None:
    """A task past its timeout is settled with a timeout error and its slot freed (the worker is backed off)."""
    h = Harness(task_timeout_s=5)
    h.worker("w1")
    t = h.d.submit("s", "q")
    h.d.tasks[t.task_id].assigned_at -= 6  # type: ignore[operator]
    h.d.sweep()
    assert h.delivered[0][1].error_code == "timeout" and not h.registry.workers["w1"].assigned


def test_bus_down_keeps_tasks_queued() -> None:
    """While the MQTT bus is down tasks stay queued (no slot taken), and go out when it is back."""
    h = Harness()
    h.bus_up = False
    h.worker("w1")
    h.d.submit("s", "q")
    assert h.d.queued == 1 and h.registry.workers["w1"].free_slots == 1
    h.bus_up = True
    h.d.pump()
    assert h.d.queued == 0


def test_full_queue_refuses() -> None:
    """A submit beyond max_queue raises QueueFull."""
    h = Harness(max_queue=2)
    h.d.submit("s", "a")
    h.d.submit("s", "b")
    with pytest.raises(QueueFull):
        h.d.submit("s", "c")


def test_cancel_owner_drops_queued_and_abandons_running_tasks() -> None:
    """Queued tasks of a departed owner go; a running one keeps its slot until its result, then is dropped."""
    h = Harness()
    h.worker("w1")
    running = h.d.submit("gone", "a")
    h.d.submit("gone", "b")
    h.d.submit("stays", "c")
    assert h.d.cancel_owner("gone") == 2
    assert h.d.queued == 1 and h.d.open_tasks("gone") == 1  # b is gone; a still runs
    assert [m.prompt for _, m in h.published] == ["a"]  # the worker is still busy with a
    h.d.accept_result(h.result(running.task_id))
    assert h.delivered == []  # nobody to deliver to
    assert [m.prompt for _, m in h.published] == ["a", "c"]  # the slot freed by a's result went to c
    assert h.d.open_tasks("gone") == 0


def test_queue_is_fair_across_owners() -> None:
    """A queues 200, then B asks one: with one slot, B's task is the second one handed out, not the 201st."""
    h = Harness()
    for i in range(200):
        h.d.submit("A", f"a{i}")
    b = h.d.submit("B", "b")
    h.worker("w1", capacity=1)
    for _ in range(2):
        h.d.accept_result(h.result(h.published[-1][1].task_id))
    assert [m.prompt for _, m in h.published[:3]] == ["a0", "b", "a1"]
    assert b.task_id in {m.task_id for _, m in h.published}


def test_open_tasks_count_queued_and_running_until_answered() -> None:
    """The per-owner count rises on submit and falls on the answer (it feeds the in-flight limit)."""
    h = Harness()
    h.worker("w1", capacity=1)
    first = h.d.submit("A", "a")
    h.d.submit("A", "b")
    assert h.d.open_tasks("A") == 2 and h.d.open_tasks("B") == 0
    h.d.accept_result(h.result(first.task_id))
    assert h.d.open_tasks("A") == 1


def test_result_checks() -> None:
    """Unknown task, another worker's task and a wrong token are each refused with their reason; nothing delivered."""
    h = Harness()
    h.worker("w1")
    h.worker("w2")
    t = h.d.submit("s", "q")
    with pytest.raises(ResultRefused) as e1:
        h.d.accept_result(h.result(t.task_id, task_id="nope"))
    with pytest.raises(ResultRefused) as e2:
        h.d.accept_result(h.result(t.task_id, worker_id="w2" if h.published[0][0] == "w1" else "w1"))
    with pytest.raises(ResultRefused) as e3:
        h.d.accept_result(h.result(t.task_id, token="x" * 32))
    assert (e1.value.refusal, e2.value.refusal, e3.value.refusal) == (
        Refusal.UNKNOWN_TASK, Refusal.NOT_ASSIGNED, Refusal.WRONG_TOKEN)
    assert h.delivered == []
    h.d.accept_result(h.result(t.task_id))
    with pytest.raises(ResultRefused) as e4:  # a replay after success
        h.d.accept_result(h.result(t.task_id))
    assert e4.value.refusal is Refusal.UNKNOWN_TASK and len(h.delivered) == 1


def test_error_result_is_delivered_as_error() -> None:
    """A result carrying an error reaches the asker as that error code and message."""
    h = Harness()
    h.worker("w1")
    t = h.d.submit("s", "q")
    r = replace(h.result(t.task_id), answer=None, error_code="rate_limited", error_message="Try again")
    h.d.accept_result(r)
    assert (h.delivered[0][1].error_code, h.delivered[0][1].error_message) == ("rate_limited", "Try again")


def test_task_queued_too_long_is_given_up_with_an_error() -> None:
    """With no worker for it, a task waits at most queue_timeout_s, then its owner gets queue_timeout."""
    h = Harness(queue_timeout_s=60)
    t = h.d.submit("A", "q")
    h.d.sweep(now=t.queued_at + 59)
    assert h.delivered == [] and h.d.queued == 1
    h.d.sweep(now=t.queued_at + 61)
    assert [(d[0].task_id, d[1].error_code) for d in h.delivered] == [(t.task_id, "queue_timeout")]
    assert h.d.queued == 0 and h.d.open_tasks("A") == 0


def test_claimed_capacity_is_capped() -> None:
    """A status claiming 1,024 slots is believed up to the registry's cap."""
    registry = WorkerRegistry(worker_timeout_s=30, max_capacity=8)
    info = registry.update("w1", StatusMessage(state="idle", capacity=1024, free_slots=1024))
    assert info.capacity == 8 and info.free_slots == 8


def test_draining_worker_gets_no_new_task() -> None:
    """A worker that says draining keeps its tasks but is offered nothing new; another worker takes the rest."""
    h = Harness()
    h.worker("w1", capacity=4)
    first = h.d.submit("A", "before")
    h.worker("w1", capacity=4, state="draining")
    h.d.submit("A", "after")
    assert [w for w, _ in h.published] == ["w1"] and h.d.queued == 1
    assert first.task_id in h.registry.workers["w1"].assigned
    h.worker("w2")
    assert [w for w, _ in h.published] == ["w1", "w2"]


def test_worker_whose_task_timed_out_is_backed_off() -> None:
    """After a task times out on w1, w1 gets no new task for the back-off period; w2 does."""
    h = Harness(task_timeout_s=10, worker_backoff_s=60)
    h.worker("w1", capacity=2)
    t = h.d.submit("A", "never answered")
    assert h.published[-1][0] == "w1"
    h.d.sweep(now=h.d.tasks[t.task_id].assigned_at + 11)  # type: ignore[operator]
    assert h.delivered[0][1].error_code == "timeout"
    assert h.registry.workers["w1"].free_slots == 0
    h.d.submit("A", "next")
    h.worker("w2")
    assert h.published[-1][0] == "w2"


def test_retained_status_is_no_proof_of_life() -> None:
    """A status the broker kept (retained) registers the worker but gives it no task until it speaks live."""
    h = Harness()
    h.d.on_status("w1", StatusMessage(state="idle", capacity=2, free_slots=2, models=("echo",)), live=False)
    h.d.submit("A", "q")
    assert h.published == [] and h.registry.workers["w1"].state == "unknown"
    h.worker("w1", capacity=2)
    assert [w for w, _ in h.published] == ["w1"]


def test_after_a_broker_reconnect_workers_must_speak_again() -> None:
    """On the master's (re)connect every known worker becomes unknown until its next live status."""
    h = Harness()
    h.worker("w1", capacity=4)
    h.d.on_bus_connected()
    h.d.submit("A", "q")
    assert h.published == []
    h.worker("w1", capacity=4)
    assert len(h.published) == 1


def test_task_not_received_within_the_lease_goes_to_another_worker() -> None:
    """w1 never confirms: after the lease the task is queued again first, w1 is backed off, w2 gets it."""
    h = Harness(lease_s=5, worker_backoff_s=60)
    h.worker("w1")
    t = h.d.submit("A", "q")
    assert h.published[-1][0] == "w1"
    h.d.sweep(now=h.d.tasks[t.task_id].assigned_at + 6)  # type: ignore[operator]
    assert h.d.queued == 1 and h.delivered == [] and h.registry.workers["w1"].free_slots == 0
    h.worker("w2")
    assert [w for w, m in h.published] == ["w1", "w2"] and h.published[-1][1].task_id == t.task_id


def test_received_task_keeps_its_worker_past_the_lease() -> None:
    """A receipt (checked like a result: worker and token) meets the lease; a wrong token is refused."""
    h = Harness(lease_s=5)
    h.worker("w1")
    t = h.d.submit("A", "q")
    token = h.published[-1][1].token
    with pytest.raises(ResultRefused):
        h.d.acknowledge(t.task_id, "w1", "x" * 32)
    h.d.acknowledge(t.task_id, "w1", token)
    h.d.sweep(now=h.d.tasks[t.task_id].assigned_at + 6)  # type: ignore[operator]
    assert h.d.queued == 0 and h.d.tasks[t.task_id].worker_id == "w1"



def test_unconfirmed_tasks_are_queued_again_after_a_broker_reconnect_without_blame() -> None:
    """A task published but not confirmed when the broker went away is queued again at once; its worker is not backed off."""
    h = Harness(lease_s=5)
    h.worker("w1", capacity=2)
    lost = h.d.submit("A", "lost with the broker")
    kept = h.d.submit("A", "confirmed before")
    h.d.acknowledge(kept.task_id, "w1", next(m.token for _, m in h.published if m.task_id == kept.task_id))
    h.d.on_bus_connected()
    assert h.d.queued == 1 and h.d.tasks[kept.task_id].worker_id == "w1"
    h.worker("w1", capacity=2)  # heard live again: the lost one goes out again, to the same worker
    assert h.published[-1][1].task_id == lost.task_id and h.registry.workers["w1"].backoff_until == 0


def test_lease_does_not_lapse_while_the_broker_is_down() -> None:
    """With the bus down past the lease, the worker is not backed off; the reconnect queues the task again, unblamed."""
    h = Harness(lease_s=5, worker_backoff_s=60)
    bus = {"up": True}
    h.d.bus_up = lambda: bus["up"]
    h.worker("w1")
    t = h.d.submit("A", "q")
    bus["up"] = False  # the broker died with the task in flight: the worker cannot have confirmed it
    h.d.sweep(now=h.d.tasks[t.task_id].assigned_at + 6)  # type: ignore[operator]
    assert h.registry.workers["w1"].backoff_until == 0 and h.d.tasks[t.task_id].worker_id == "w1"
    bus["up"] = True
    h.d.on_bus_connected()
    assert h.d.queued == 1
    h.worker("w1")  # heard live again: it gets the task back at once
    assert [(w, m.task_id) for w, m in h.published] == [("w1", t.task_id)] * 2
    # Control: with the bus up, the same lapse does back the worker off.
    h.d.sweep(now=h.d.tasks[t.task_id].assigned_at + 6)  # type: ignore[operator]
    assert h.registry.workers["w1"].backoff_until > 0


@pytest.mark.parametrize("waiting", ["one owner", "one owner each", "all workers busy"])
def test_submit_costs_no_more_with_10000_tasks_queued_than_with_10(waiting: str) -> None:
    """Placement checks (counted, not timed) per submit with 10,000 tasks waiting are no more than with 10."""

    def checks_per_submit(queued: int) -> int:
        h = Harness(max_queue=20_000)
        h.worker("big", models=("big",))
        h.d.submit("x", "takes the only slot of the big model", model="big")
        for i in range(queued):
            owner = "stuck" if waiting == "one owner" else f"stuck-{i}"
            h.d.submit(owner, "waits for the big model", model="big" if waiting != "all workers busy" else "")
        if waiting != "all workers busy":
            h.worker("small", capacity=64, models=("small",))  # free slots, for another model
        counted = 0
        can_place = h.d._can_place

        def counting(task_id: str) -> bool:
            nonlocal counted
            counted += 1
            return can_place(task_id)

        h.d._can_place = counting  # type: ignore[method-assign]
        h.d.submit("new", "q", model="small")
        h.d.submit("new", "q", model="small")
        return counted

    few, many = checks_per_submit(10), checks_per_submit(10_000)
    print(f"placement checks for 2 submits, {waiting}: {few} with 10 queued, {many} with 10,000 queued")
    assert many <= few
