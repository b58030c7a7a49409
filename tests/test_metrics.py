"""Prometheus metrics: values move as tasks run and fail, labels stay bounded, the endpoint is its own port."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from common.messages import StatusMessage
from devstack.local_broker import RunningBroker, run_broker
from master import metrics
from master.dispatcher import Dispatcher, FanOut, Outcome, WorkerResult, owner_of
from master.metrics import MetricsJournal
from master.registry import WorkerRegistry
from tests.pki_helpers import Pki
from tests.stack_helpers import ChatClient, local_stack, wait_until


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint, keyed by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def offline_and_idle(port: int) -> tuple[float | None, float | None]:
    """The worker gauge's offline and idle counts, from one scrape."""
    now = scrape(port)
    return now.get(("aisys_workers", (("state", "offline"),))), now.get(("aisys_workers", (("state", "idle"),)))


def aisys_series() -> int:
    return sum(len(f.samples) for f in REGISTRY.collect() if f.name.startswith("aisys_"))


@pytest.mark.integration
async def test_metrics_move_as_tasks_run_fail_and_workers_leave(pki: Pki) -> None:
    """Answers, refusals, model calls and worker states show in /metrics, on a port that is not the web port."""
    # A broker of its own: the worker gauge counts every worker the broker knows, and the shared broker
    # keeps the retained statuses of other tests' workers.
    with run_broker(pki.ca, pki.cert("mosquitto"), pki.key("mosquitto"), pki.mosquitto_passwd) as broker:
        await _metrics_move(pki, broker)


async def _metrics_move(pki: Pki, broker: RunningBroker) -> None:
    async with local_stack(pki, broker, workers=2, master_overrides={"metrics_port": 0},
                           worker_overrides={"metrics_port": 0}) as stack:
        port = stack.master.metrics_port
        assert port and port != stack.master.web_port
        before = scrape(port)
        client = ChatClient(pki, cookie=stack.cookie)
        await client.connect(stack.url)
        try:
            for i in range(3):
                assert "task_id" in await client.ask(f"q{i}")
                await client.next_response()
            assert (await client.ask({"text": "x", "model": "no-such-model"}))["error"]["code"] == "unknown_model"
        finally:
            await client.close()
        await stack.workers[0].bus.stop()  # one worker says offline
        # Both in one sample (taken once a second): a worker is "unknown" for a moment after a reconnect.
        await wait_until(lambda: offline_and_idle(port) == (1, 1), what="one offline and one idle worker in the gauge")
        after = scrape(port)

        def delta(name: str, **labels: str) -> float:
            key = (name, tuple(sorted(labels.items())))
            return after.get(key, 0.0) - before.get(key, 0.0)

        assert delta("aisys_tasks_total", outcome="answered") == 3
        assert delta("aisys_questions_refused_total", reason="unknown_model") == 1
        assert delta("aisys_task_latency_seconds_count") == 3
        assert delta("aisys_model_call_seconds_count", model="echo") == 3
        worker_port = stack.workers[1].metrics_port
        assert worker_port and "aisys_tasks_running" in {k[0] for k in scrape(worker_port)}


def test_series_do_not_grow_with_users_or_tasks() -> None:
    """1,000 tasks from 50 users (answers, errors, refusals) add no series after the first of each kind."""
    d = Dispatcher(WorkerRegistry(30), lambda w, m: True, lambda t, o: None, journal=FanOut(MetricsJournal()))
    d.on_status("w1", StatusMessage(state="idle", capacity=1024, free_slots=1024, models=("echo",)))

    def run(users: range, per_user: int) -> None:
        for u in users:
            for i in range(per_user):
                task = d.submit(owner_of(u), f"user {u} question {i}", user_id=u)
                if i % 3:
                    d.accept_result(WorkerResult(task.task_id, "w1", task.token, "echo", answer="a"))
                else:
                    d.accept_result(WorkerResult(task.task_id, "w1", task.token, "echo", error_code=f"code-{u}-{i}",
                                                 error_message="no"))
                metrics.refused(f"reason-{u}")
        metrics.sample(d, connections=len(users))

    run(range(1, 2), 3)
    warmed = aisys_series()
    run(range(2, 52), 20)
    assert aisys_series() == warmed


def test_unknown_error_codes_and_reasons_are_folded() -> None:
    """An error code or refusal reason outside the fixed sets is counted as other / bad_request, not as itself."""
    journal = MetricsJournal()
    d = Dispatcher(WorkerRegistry(30), lambda w, m: True, lambda t, o: None, journal=journal)
    task = d.submit("user-1", "q")
    journal.finished(task, Outcome(task.task_id, error_code="made-up", error_message="x"))
    names = {s.labels.get("code") for f in REGISTRY.collect() if f.name == "aisys_task_errors" for s in f.samples}
    assert "made-up" not in names and "other" in names
