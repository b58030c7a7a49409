"""master/dispatcher.py and master/registry.py: queueing, assignment, requeue, result checks."""

from __future__ import annotations

import pytest

from common.messages import StatusMessage, TaskMessage
from common.rpc import worker_pb2
from master.dispatcher import Dispatcher, Outcome, QueueFull, ResultRefused, Task
from master.registry import WorkerRegistry


class Harness:
    def __init__(self, **kw: object) -> None:
        self.published: list[tuple[str, TaskMessage]] = []
        self.delivered: list[tuple[Task, Outcome]] = []
        self.bus_up = True
        self.registry = WorkerRegistry(worker_timeout_s=30)
        self.d = Dispatcher(self.registry, self.publish, lambda t, o: self.delivered.append((t, o)), **kw)  # type: ignore[arg-type]

    def publish(self, worker_id: str, task: TaskMessage) -> bool:
        if self.bus_up:
            self.published.append((worker_id, task))
        return self.bus_up

    def worker(self, worker_id: str, capacity: int = 1, models: tuple[str, ...] = ("echo",), state: str = "idle") -> None:
        self.d.on_status(worker_id, StatusMessage(state=state, capacity=capacity, free_slots=capacity, models=models))

    def result(self, for_task: str, **kw: str) -> worker_pb2.TaskResult:
        worker_id, message = next((w, m) for w, m in reversed(self.published) if m.task_id == for_task)
        fields = {"task_id": for_task, "worker_id": worker_id, "token": message.token, "answer": "ok"}
        fields.update(kw)
        return worker_pb2.TaskResult(**fields)


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
    """A task past its timeout is settled with a timeout error and its slot freed."""
    h = Harness(task_timeout_s=5)
    h.worker("w1")
    t = h.d.submit("s", "q")
    h.d.tasks[t.task_id].assigned_at -= 6  # type: ignore[operator]
    h.d.sweep()
    assert h.delivered[0][1].error_code == "timeout" and h.registry.workers["w1"].free_slots == 1


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


def test_cancel_session_drops_queued_and_abandons_running_tasks() -> None:
    """Queued tasks of a departed session go; a running one keeps its slot until its result, then is dropped."""
    h = Harness()
    h.worker("w1")
    running = h.d.submit("gone", "a")
    h.d.submit("gone", "b")
    h.d.submit("stays", "c")
    assert h.d.cancel_session("gone") == 2
    assert [m.prompt for _, m in h.published] == ["a"]  # the worker is still busy with a
    h.d.accept_result(h.result(running.task_id))
    assert h.delivered == []  # nobody to deliver to
    assert [m.prompt for _, m in h.published] == ["a", "c"]  # the slot freed by a's result went to c


def test_result_checks() -> None:
    """Unknown task -> NOT_FOUND; other worker or wrong token -> PERMISSION_DENIED; nothing delivered."""
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
    assert (e1.value.status, e2.value.status, e3.value.status) == ("NOT_FOUND", "PERMISSION_DENIED", "PERMISSION_DENIED")
    assert h.delivered == []
    h.d.accept_result(h.result(t.task_id))
    with pytest.raises(ResultRefused) as e4:  # a replay after success
        h.d.accept_result(h.result(t.task_id))
    assert e4.value.status == "NOT_FOUND" and len(h.delivered) == 1


def test_error_result_is_delivered_as_error() -> None:
    """A result carrying an error reaches the asker as that error code and message."""
    h = Harness()
    h.worker("w1")
    t = h.d.submit("s", "q")
    r = h.result(t.task_id)
    r.error.code, r.error.message = "rate_limited", "Try again"
    h.d.accept_result(r)
    assert (h.delivered[0][1].error_code, h.delivered[0][1].error_message) == ("rate_limited", "Try again")
