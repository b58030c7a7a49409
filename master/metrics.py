"""The master's Prometheus metrics. Labels come from fixed sets: no user, prompt, task or worker id.

Worker ids are not labels: replicas get random ids (and new ones on every restart), so the series
would grow with restarts; per-worker detail is on the admin page, not in the time series.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

from common.metrics_server import LATENCY_BUCKETS
from master.dispatcher import Dispatcher, Outcome, Task

# Error codes a worker may send (worker/backends): anything else is counted as "other".
KNOWN_ERROR_CODES = frozenset({
    "invalid_api_key", "no_api_key", "rate_limited", "model_unavailable", "bad_request", "model_error",
    "timeout", "internal", "worker_lost", "queue_timeout", "cancelled", "stopped",
})
REFUSAL_REASONS = ("rate_limited", "too_many_open", "daily_quota", "busy", "prompt_too_long", "bad_request",
                   "unknown_model", "not_logged_in", "priority_not_allowed")
RESULT_REFUSALS = ("role", "unknown_task", "not_assigned", "wrong_token")
WORKER_STATES = ("idle", "busy", "draining", "offline", "unknown")

TASKS = Counter("aisys_tasks", "Tasks finished, by outcome", ["outcome"])
TASK_ERRORS = Counter("aisys_task_errors", "Tasks finished with an error, by code", ["code"])
REFUSED = Counter("aisys_questions_refused", "Questions refused at the edge, by reason", ["reason"])
REQUEUED = Counter("aisys_tasks_requeued", "Tasks put back in the queue (their worker went away)")
RESULTS_REFUSED = Counter("aisys_results_refused", "Worker results refused, by reason", ["reason"])
LOGINS_FAILED = Counter("aisys_logins_failed", "Failed logins (wrong password, unknown name, locked, disabled)")
LATENCY = Histogram("aisys_task_latency_seconds", "From question accepted to outcome delivered",
                    buckets=LATENCY_BUCKETS)
QUEUE_WAIT = Histogram("aisys_queue_wait_seconds", "From question accepted to its first worker",
                       buckets=LATENCY_BUCKETS)
FIRST_CHUNK = Histogram("aisys_first_chunk_seconds", "From question accepted to the first answer chunk sent to the asker",
                        buckets=LATENCY_BUCKETS)
QUEUE_LENGTH = Gauge("aisys_queue_length", "Tasks waiting for a worker")
OPEN_TASKS = Gauge("aisys_open_tasks", "Tasks queued or running")
WORKERS = Gauge("aisys_workers", "Workers known to the master, by state", ["state"])
FREE_SLOTS = Gauge("aisys_free_slots", "Slots the master may still fill")
CONNECTIONS = Gauge("aisys_socketio_connections", "Logged-in Socket.IO connections")
CACHE_LOOKUPS = Counter("aisys_response_cache", "Response cache lookups (only when the cache is on), by result",
                        ["result"])

for _outcome in ("answered", "error"):
    TASKS.labels(_outcome)
for _reason in REFUSAL_REASONS:
    REFUSED.labels(_reason)
for _reason in RESULT_REFUSALS:
    RESULTS_REFUSED.labels(_reason)
for _result in ("hit", "miss"):
    CACHE_LOOKUPS.labels(_result)


def refused(reason: str) -> None:
    REFUSED.labels(reason if reason in REFUSAL_REASONS else "bad_request").inc()


class MetricsJournal:
    """Counts the tasks' life as the dispatcher reports it (a Journal, beside the store's)."""

    def accepted(self, task: Task) -> None:
        pass

    def assigned(self, task: Task) -> None:
        if task.attempts == 1:
            QUEUE_WAIT.observe(max(0.0, time.monotonic() - task.queued_at))

    def requeued(self, task: Task) -> None:
        REQUEUED.inc()

    def finished(self, task: Task, outcome: Outcome) -> None:
        LATENCY.observe(max(0.0, time.time() - task.created))
        if outcome.answer is not None:
            TASKS.labels("answered").inc()
        else:
            TASKS.labels("error").inc()
            code = outcome.error_code or "model_error"
            TASK_ERRORS.labels(code if code in KNOWN_ERROR_CODES else "other").inc()

    def dropped(self, task: Task) -> None:
        pass


def sample(dispatcher: Dispatcher, connections: int) -> None:
    """Set the gauges from the dispatcher's state (on the event loop, once a second)."""
    QUEUE_LENGTH.set(dispatcher.queued)
    OPEN_TASKS.set(len(dispatcher.tasks))
    counts = dict.fromkeys(WORKER_STATES, 0)
    for info in dispatcher.registry.workers.values():
        counts[info.state if info.state in counts else "unknown"] += 1
    for state, count in counts.items():
        WORKERS.labels(state).set(count)
    FREE_SLOTS.set(dispatcher.registry.total_free_slots())
    CONNECTIONS.set(connections)
