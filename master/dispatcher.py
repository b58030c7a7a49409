"""The task queue and its assignment to workers; checks every result against what was assigned."""

from __future__ import annotations

import enum
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from common.messages import StatusMessage, TaskMessage
from master.fair_queue import NORMAL, FairQueue
from master.registry import WorkerInfo, WorkerRegistry

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue holds `max_queue` tasks already."""


class Refusal(enum.Enum):
    """Why a worker's result is refused; the value is the reason logged and told to the worker."""

    UNKNOWN_TASK = "no such task is waiting for a result"
    NOT_ASSIGNED = "this task is not assigned to that worker"
    WRONG_TOKEN = "wrong task token"


class ResultRefused(Exception):
    """A result that does not match an assigned task; nothing of it reaches the asker."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


@dataclass(frozen=True)
class WorkerResult:
    """What a worker sends back for a task: an answer, or an error code and message."""

    task_id: str
    worker_id: str
    token: str = field(repr=False)
    model: str = ""
    answer: str | None = None
    error_code: str = ""
    error_message: str = ""


# The worker id a cached answer is recorded with: no worker wrote it now, and no worker id can look like it.
CACHED_BY = "(response-cache)"


def owner_of(user_id: int) -> str:
    """The task owner (and Socket.IO room) of a user."""
    return f"user-{user_id}"


@dataclass
class Task:
    task_id: str
    # Who asked: the answer goes to every connection of this owner (a user id), and to no one else.
    owner: str
    prompt: str
    model: str
    priority: int
    created: float
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    # When it was accepted (monotonic): a task still queued `queue_timeout_s` later is given up.
    queued_at: float = field(default_factory=time.monotonic)
    attempts: int = 0
    worker_id: str | None = None
    assigned_at: float | None = None
    # The owner left while a worker was on it: the slot stays taken until the result, which is dropped.
    abandoned: bool = False
    # The user in the store (0: none, as in unit tests).
    user_id: int = 0
    # The worker it is assigned to confirmed receipt (within the lease).
    received: bool = False
    # The conversation it belongs to (master/conversations.py); None for REST API tasks.
    conversation_id: str | None = None
    # The answer so far, in the chunks its worker sent (emptied when it goes to a worker again).
    partial: list[str] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class Outcome:
    """What the asker gets: an answer or an error (code + message), and where it came from."""

    task_id: str
    answer: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    model: str = ""
    worker_id: str | None = None
    # Answered from the response cache (master/response_cache.py), not by a worker now.
    cached: bool = False
    # Stopped while running: the answer written until then (kept and shown, marked stopped).
    partial: str | None = None


Publish = Callable[[str, TaskMessage], bool]
Deliver = Callable[[Task, Outcome], None]
# A chunk of a running task's answer, accepted from its worker: to the asker (master/streaming.py).
OnChunk = Callable[[Task, str], None]
# Tell the worker of a running task to stop it (the per-worker cancel topic); False when the bus is down.
StopWorker = Callable[[str, Task], bool]


@dataclass(frozen=True)
class StoredTask:
    """An open task as the store has it (master/task_journal.py), to queue again after a restart."""

    task_id: str
    user_id: int
    prompt: str
    model: str
    priority: int
    state: str
    attempts: int
    token: str
    worker_id: str | None
    created_at: float
    conversation_id: str | None = None


class Journal(Protocol):
    """Where the dispatcher reports each change of a task (the store, batched: master/task_journal.py)."""

    def accepted(self, task: Task) -> None: ...
    def assigned(self, task: Task) -> None: ...
    def requeued(self, task: Task) -> None: ...
    def finished(self, task: Task, outcome: Outcome) -> None: ...
    def dropped(self, task: Task) -> None: ...


class FanOut:
    """Several journals, each told every change (the store's and the metrics')."""

    def __init__(self, *journals: Journal) -> None:
        self.journals = journals

    def accepted(self, task: Task) -> None:
        for j in self.journals:
            j.accepted(task)

    def assigned(self, task: Task) -> None:
        for j in self.journals:
            j.assigned(task)

    def requeued(self, task: Task) -> None:
        for j in self.journals:
            j.requeued(task)

    def finished(self, task: Task, outcome: Outcome) -> None:
        for j in self.journals:
            j.finished(task, outcome)

    def dropped(self, task: Task) -> None:
        for j in self.journals:
            j.dropped(task)


class NoJournal:
    """Keeps nothing (unit tests, and a dispatcher without a store)."""

    def accepted(self, task: Task) -> None: ...
    def assigned(self, task: Task) -> None: ...
    def requeued(self, task: Task) -> None: ...
    def finished(self, task: Task, outcome: Outcome) -> None: ...
    def dropped(self, task: Task) -> None: ...


class Dispatcher:
    """Queue, assignment and result checks; its I/O (publish to a worker, deliver to an asker) is passed in."""

    def __init__(
        self,
        registry: WorkerRegistry,
        publish: Publish,
        deliver: Deliver,
        *,
        task_timeout_s: float = 120.0,
        max_attempts: int = 3,
        max_queue: int = 10_000,
        queue_timeout_s: float = 600.0,
        worker_backoff_s: float = 60.0,
        lease_s: float = 5.0,
        journal: Journal | None = None,
        bus_up: Callable[[], bool] | None = None,
        priority_aging_s: float = 0.0,
        on_chunk: OnChunk | None = None,
        stop_worker: StopWorker | None = None,
    ) -> None:
        self.registry = registry
        self.publish = publish
        self.deliver = deliver
        self.task_timeout_s = task_timeout_s
        self.max_attempts = max_attempts
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.worker_backoff_s = worker_backoff_s
        self.lease_s = lease_s
        self.journal: Journal = journal or NoJournal()
        # Whether the broker connection is up: while it is down no lease lapses (the worker cannot confirm, and is
        # not to blame); the reconnect queues every unconfirmed task again (on_bus_connected).
        self.bus_up: Callable[[], bool] = bus_up or (lambda: True)
        self.on_chunk = on_chunk
        self.stop_worker = stop_worker
        self.tasks: dict[str, Task] = {}
        # Tasks of one model are placeable or not together (_can_place): the queue parks waiting owners by model.
        # Aging uses time.monotonic, like Task.queued_at.
        self._queue = FairQueue(group_of=lambda task_id: self.tasks[task_id].model, aging_s=priority_aging_s)
        # Tasks each owner has queued or running (for the per-user in-flight limit).
        self._open: dict[str, int] = {}

    # -- intake -----------------------------------------------------------------------
    def submit(self, owner: str, prompt: str, model: str = "", priority: int = NORMAL, user_id: int = 0,
               conversation_id: str | None = None) -> Task:
        if len(self._queue) >= self.max_queue:
            raise QueueFull(f"the queue holds {self.max_queue} tasks")
        task = Task(uuid.uuid4().hex, owner, prompt, model, priority, time.time(), user_id=user_id,
                    conversation_id=conversation_id)
        self._admit(task)
        self.journal.accepted(task)
        self._queue.push(task.task_id, owner, priority, since=task.queued_at)
        self.pump()
        return task

    def answer_from_cache(self, owner: str, prompt: str, model: str, priority: int, user_id: int, answer: str,
                          answer_model: str, conversation_id: str | None = None) -> Task:
        """A question the response cache answers: accepted and finished at once, no worker involved."""
        task = Task(uuid.uuid4().hex, owner, prompt, model, priority, time.time(), user_id=user_id,
                    conversation_id=conversation_id)
        self._admit(task)
        self.journal.accepted(task)
        self._finish(task, Outcome(task.task_id, answer=answer, model=answer_model, worker_id=CACHED_BY, cached=True))
        return task

    def _admit(self, task: Task) -> None:
        self.tasks[task.task_id] = task
        self._open[task.owner] = self._open.get(task.owner, 0) + 1

    def restore(self, stored: Iterable[StoredTask]) -> int:
        """After a restart: queued tasks are queued again; assigned ones stay with their worker (its result,
        with the stored token, is accepted), and go back to the queue if that worker is not heard from."""
        count = 0
        now = time.monotonic()
        for s in stored:
            task = Task(s.task_id, owner_of(s.user_id), s.prompt, s.model, s.priority, s.created_at, token=s.token,
                        attempts=s.attempts, user_id=s.user_id, conversation_id=s.conversation_id)
            self._admit(task)
            if s.state == "assigned" and s.worker_id:
                info = self.registry.workers.setdefault(s.worker_id, WorkerInfo(s.worker_id, state="unknown",
                                                                               last_seen=now))
                # Its receipt went to the master that died: no lease now, only the task and worker timeouts.
                task.worker_id, task.assigned_at, task.received = s.worker_id, now, True
                info.assigned.add(task.task_id)
            else:
                self._queue.push(task.task_id, task.owner, task.priority)
            count += 1
        return count

    @property
    def queued(self) -> int:
        return len(self._queue)

    def open_tasks(self, owner: str) -> int:
        """How many of `owner`'s tasks are queued or running."""
        return self._open.get(owner, 0)

    def cancel_owner(self, owner: str) -> int:
        """The owner went away: drop their queued tasks, abandon their running ones; returns how many."""
        mine = [t for t in self.tasks.values() if t.owner == owner and not t.abandoned]
        for task in mine:
            if task.worker_id is None:
                self._queue.discard(task.task_id)
                self._forget(task)
                self.journal.dropped(task)
            else:
                task.abandoned = True  # the worker is still busy with it: its slot frees on the result
                self.journal.dropped(task)
        return len(mine)

    def cancel_task(self, task_id: str) -> bool:
        """Stop a task: a queued one leaves the queue (error `cancelled`); a running one is settled now as
        `stopped` with the answer written so far, its worker is told to stop (closing the model call), and
        its result, when the worker sends it, only frees the slot. False if not open."""
        task = self.tasks.get(task_id)
        if task is None or task.abandoned:
            return False
        if task.worker_id is None:
            self._queue.discard(task_id)
            self._finish(task, Outcome(task_id, error_code="cancelled", error_message="Stopped at your request."))
            return True
        if self.stop_worker is not None and not self.stop_worker(task.worker_id, task):
            logger.warning("could not tell worker %s to stop (bus down): its slot frees when it answers",
                           task.worker_id, extra={"task_id": task_id})
        outcome = Outcome(task_id, error_code="stopped", error_message="Stopped at your request.",
                          worker_id=task.worker_id, partial="".join(task.partial))
        self.journal.finished(task, outcome)
        self.deliver(task, outcome)
        task.abandoned = True
        return True

    def _forget(self, task: Task) -> None:
        if self.tasks.pop(task.task_id, None) is not None:
            left = self._open.get(task.owner, 0) - 1
            if left > 0:
                self._open[task.owner] = left
            else:
                self._open.pop(task.owner, None)

    # -- assignment -------------------------------------------------------------------
    def _can_place(self, task_id: str) -> bool:
        return self.registry.pick(self.tasks[task_id].model) is not None

    def pump(self) -> None:
        """Hand queued tasks to workers with free slots: priority, then round-robin across owners, FIFO per owner."""
        while len(self._queue) and self.registry.total_free_slots() > 0:
            task_id = self._queue.take(self._can_place)
            if task_id is None:
                return  # no free worker offers the model of any owner's next task
            task = self.tasks[task_id]
            worker = self.registry.pick(task.model)
            if worker is None:  # cannot happen (_can_place just found one), but never lose the task
                self._queue.push(task.task_id, task.owner, task.priority, first=True, since=task.queued_at)
                return
            message = TaskMessage(
                task_id=task.task_id, token=task.token, prompt=task.prompt, model=task.model,
                priority=task.priority, deadline=time.time() + self.task_timeout_s,
            )
            if not self.publish(worker.worker_id, message):
                self._queue.push(task.task_id, task.owner, task.priority, first=True, since=task.queued_at)
                return  # the bus is down: keep everything queued
            task.worker_id, task.assigned_at, task.received = worker.worker_id, time.monotonic(), False
            task.partial.clear()  # a worker starts the answer again
            task.attempts += 1
            worker.assigned.add(task.task_id)
            self.journal.assigned(task)

    def _release(self, task: Task) -> None:
        if task.worker_id and task.worker_id in self.registry.workers:
            self.registry.workers[task.worker_id].assigned.discard(task.task_id)
        task.worker_id, task.assigned_at = None, None

    # -- workers ----------------------------------------------------------------------
    def on_bus_connected(self) -> None:
        """After each (re)connect to the broker: nobody gets a task before it is heard from again (a broker
        restart may have lost their sessions, and a retained status is no proof of life), then pump."""
        for info in self.registry.workers.values():
            if info.state not in ("offline",):
                info.state = "unknown"
        # Tasks published but not yet confirmed may have died with the broker: queue them again now,
        # without blaming their workers (a lease lapsing later would).
        for task in list(self.tasks.values()):
            if task.worker_id is not None and not task.received and not task.abandoned:
                self._release(task)
                self._queue.push(task.task_id, task.owner, task.priority, first=True, since=task.queued_at)
                self.journal.requeued(task)
        self.pump()

    def on_status(self, worker_id: str, status: StatusMessage, live: bool = True) -> None:
        if not live and status.state != "offline":
            # The broker's retained copy: remember the worker, give it nothing until it speaks now.
            info = self.registry.update(worker_id, status)
            info.state = "unknown"
            return
        info = self.registry.update(worker_id, status)
        if status.state == "offline":
            self._requeue_worker(worker_id, "went offline")
        elif info.free_slots > 0:
            self.pump()

    def _requeue_worker(self, worker_id: str, why: str) -> None:
        info = self.registry.workers.get(worker_id)
        if info is None:
            return
        for task_id in sorted(info.assigned):
            task = self.tasks.get(task_id)
            if task is None:
                continue
            self._release(task)
            if task.abandoned:
                self._forget(task)  # settled already (cancelled or dropped): nothing to requeue
            elif task.attempts >= self.max_attempts:
                self._finish(task, Outcome(task.task_id, error_code="worker_lost",
                                           error_message="The workers handling this question stopped. Please ask again."))
            else:
                logger.warning("back in the queue: worker %s", why, extra={"task_id": task_id, "worker_id": worker_id})
                self._queue.push(task.task_id, task.owner, task.priority, first=True, since=task.queued_at)
                self.journal.requeued(task)
        info.assigned.clear()
        self.pump()

    def sweep(self, now: float | None = None) -> None:
        """Periodic: silent workers become offline (their tasks are requeued); overdue tasks fail."""
        for info in self.registry.expired(now):
            self._requeue_worker(info.worker_id, f"silent for over {self.registry.worker_timeout_s:.0f} s")
        now = time.monotonic() if now is None else now
        for task in list(self.tasks.values()):
            if (task.assigned_at is not None and not task.received and not task.abandoned
                    and now - task.assigned_at > self.lease_s):
                if self.bus_up():
                    self._lease_lapsed(task)
            elif task.assigned_at is not None and now - task.assigned_at > self.task_timeout_s:
                if task.worker_id is not None:
                    logger.warning("worker %s did not answer a task in %.0f s: no new tasks for it for %.0f s",
                                   task.worker_id, self.task_timeout_s, self.worker_backoff_s,
                                   extra={"task_id": task.task_id, "worker_id": task.worker_id})
                    self.registry.back_off(task.worker_id, self.worker_backoff_s)
                self._release(task)
                self._finish(task, Outcome(task.task_id, error_code="timeout",
                                           error_message="No answer came in time. Please ask again."))
            elif task.assigned_at is None and now - task.queued_at > self.queue_timeout_s:
                self._queue.discard(task.task_id)
                self._finish(task, Outcome(task.task_id, error_code="queue_timeout",
                                           error_message="No worker was free to take this question in time. "
                                                         "Please ask again later."))
        self.pump()

    def _lease_lapsed(self, task: Task) -> None:
        """Not received within the lease: the task goes back to the queue (front of its owner's line) and the
        worker gets nothing new for a while (its session may be gone, or it may not be a real worker)."""
        worker_id = task.worker_id or "?"
        logger.warning("worker %s did not confirm a task within %.0f s: task back in the queue, no new tasks for it "
                       "for %.0f s", worker_id, self.lease_s, self.worker_backoff_s,
                       extra={"task_id": task.task_id, "worker_id": worker_id})
        self.registry.back_off(worker_id, self.worker_backoff_s)
        self._release(task)
        if task.attempts >= self.max_attempts:
            self._finish(task, Outcome(task.task_id, error_code="worker_lost",
                                       error_message="No worker took this question. Please ask again."))
            return
        self._queue.push(task.task_id, task.owner, task.priority, first=True, since=task.queued_at)
        self.journal.requeued(task)

    # -- results ----------------------------------------------------------------------
    def _assigned_task(self, task_id: str, worker_id: str, token: str) -> Task:
        """The task, if assigned to `worker_id` and `token` is its token; else ResultRefused."""
        task = self.tasks.get(task_id)
        if task is None:
            raise ResultRefused(Refusal.UNKNOWN_TASK)
        if task.worker_id is None or task.worker_id != worker_id:
            raise ResultRefused(Refusal.NOT_ASSIGNED)
        if not hmac.compare_digest(task.token.encode(), token.encode()):
            raise ResultRefused(Refusal.WRONG_TOKEN)
        return task

    def acknowledge(self, task_id: str, worker_id: str, token: str) -> Task:
        """The worker confirms it took the task (checked like a result): its lease is met."""
        task = self._assigned_task(task_id, worker_id, token)
        task.received = True
        return task

    def accept_chunk(self, task_id: str, worker_id: str, token: str, text: str) -> Task:
        """Check a chunk like a result (ResultRefused otherwise) and pass it on to the asker; a chunk of a task
        already settled (stopped) is accepted and dropped."""
        task = self._assigned_task(task_id, worker_id, token)
        task.received = True  # a chunk is as good as a receipt
        if not task.abandoned and text:
            task.partial.append(text)
            if self.on_chunk is not None:
                self.on_chunk(task, text)
        return task

    def accept_result(self, result: WorkerResult) -> Task:
        """Check a result against its assignment and deliver it; raises ResultRefused otherwise."""
        task = self._assigned_task(result.task_id, result.worker_id, result.token)
        if task.worker_id in self.registry.workers:
            self.registry.workers[task.worker_id].done += 1
        self._release(task)
        if result.answer is None:
            outcome = Outcome(task.task_id, error_code=result.error_code or "model_error",
                              error_message=result.error_message or "The model failed.", model=result.model,
                              worker_id=result.worker_id)
        else:
            outcome = Outcome(task.task_id, answer=result.answer, model=result.model, worker_id=result.worker_id)
        self._finish(task, outcome)
        self.pump()
        return task

    def _finish(self, task: Task, outcome: Outcome) -> None:
        self._forget(task)
        if task.abandoned:
            return  # settled already (cancelled): this outcome only frees the slot
        self.journal.finished(task, outcome)
        self.deliver(task, outcome)
