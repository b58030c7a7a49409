"""A worker process killed (-9) or told to stop (SIGTERM) in the middle of a load: every question answered once.

The victim is a real `python -m worker` process (to be killed), beside two in-process workers; the master runs in
the test's loop so that the test can read the order of what it did: each status it took in and each task it
handed out, in the order it did them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import pytest

from common.messages import StatusMessage, TaskMessage
from devstack.local_broker import RunningBroker, free_port
from devstack.users import FAST_HASH
from master.accounts import add_user
from master.registry import WorkerInfo
from master.server import RunningMaster, run_master
from tests.fault_helpers import (Tally, ask_at_rate, at, close_clients, collecting, connect_clients, start_service,
                                 stop_service, until, wait_settled, worker_env)
from tests.pki_helpers import Pki
from tests.stack_helpers import master_settings, worker_settings
from worker.service import run_worker

pytestmark = pytest.mark.integration
QUESTIONS = 400
RATE_PER_S = 100
CLIENTS = 4
WORKERS = 3
FAULT_AT_S = 1.5  # about 150 questions asked; the victim holds up to its 16 slots


class MasterLog:
    """The master's own order of events: every status it took in (registry.update) and every task it handed out
    (dispatcher.publish), recorded as they happen; observation only, both still do their work."""

    def __init__(self, master: RunningMaster) -> None:
        self.events: list[tuple[str, str, str]] = []  # ("status", worker, state) or ("task", worker, task id)
        dispatcher, registry = master.dispatcher, master.dispatcher.registry
        publish, update = dispatcher.publish, registry.update

        def logged_publish(worker_id: str, task: TaskMessage) -> bool:
            sent = publish(worker_id, task)
            if sent:
                self.events.append(("task", worker_id, task.task_id))
            return sent

        def logged_update(worker_id: str, status: StatusMessage, now: float | None = None) -> WorkerInfo:
            self.events.append(("status", worker_id, status.state))
            return update(worker_id, status, now)

        dispatcher.publish = logged_publish
        registry.update = logged_update  # type: ignore[method-assign]

    def tasks_after(self, worker_id: str, state: str) -> int | None:
        """Tasks handed to `worker_id` after the master first heard it say `state`; None if it never did."""
        said = next((i for i, e in enumerate(self.events) if e == ("status", worker_id, state)), None)
        if said is None:
            return None
        return sum(1 for kind, w, _ in self.events[said:] if kind == "task" and w == worker_id)

    def tasks_to(self, worker_id: str) -> int:
        return sum(1 for kind, w, _ in self.events if kind == "task" and w == worker_id)


async def _worker_fault(pki: Pki, broker: RunningBroker, tmp_path: Path, sig: signal.Signals) -> dict[str, Any]:
    """Run the load over a worker process (the victim) and two in-process workers, send `sig` to the victim at
    FAULT_AT_S; the tally and what the master did."""
    async with run_master(master_settings(pki, broker, free_port())) as master, contextlib.AsyncExitStack() as stack:
        log = MasterLog(master)
        victim_id = f"wf{master.web_port}-victim"
        env = worker_env(pki, broker.port, master.grpc_port, victim_id, CAPACITY="16", ECHO_LATENCY_S="0.3")
        victim = start_service("worker", env, tmp_path / "victim.log")
        try:
            for i in range(WORKERS - 1):
                await stack.enter_async_context(run_worker(worker_settings(
                    pki, broker, master.grpc_port, f"wf{master.web_port}-{i}", capacity=16, echo_latency_s=0.3)))
            accounts = {f"wl{master.web_port}-{i}": f"load password {i}" for i in range(CLIENTS)}
            for name, password in accounts.items():
                await master.db.run(add_user, name, FAST_HASH.hash(password), "user")
            clients = await connect_clients(pki, f"https://localhost:{master.web_port}", accounts)
            tally = Tally(f"worker {sig.name} mid-load")

            async def fault() -> int:
                victim.send_signal(sig)
                return int(await asyncio.to_thread(victim.wait, 30))

            try:
                await until(lambda: master.dispatcher.registry.live_count() == WORKERS, 30, "three live workers")
                async with collecting(clients, tally):
                    _, code = await asyncio.gather(ask_at_rate(clients, tally, QUESTIONS, RATE_PER_S),
                                                   at(FAULT_AT_S, fault))
                    await wait_settled(tally, timeout=60)
            finally:
                await close_clients(clients)
            return {"tally": tally, "log": log, "victim": victim_id, "code": code,
                    "output": (tmp_path / "victim.log").read_text(errors="replace")}
        finally:
            stop_service(victim)


async def test_worker_killed_mid_load_loses_nothing(pki: Pki, broker: RunningBroker, tmp_path: Path) -> None:
    """400 questions over 4 clients and 3 workers; one worker killed with -9 holding tasks: 400 answered once."""
    run = await _worker_fault(pki, broker, tmp_path, signal.SIGKILL)
    tally, log = run["tally"], run["log"]
    tally.report(f"{log.tasks_to(run['victim'])} tasks had gone to the killed worker")
    assert run["code"] == -signal.SIGKILL
    assert log.tasks_after(run["victim"], "offline") == 0  # its last will arrived; nothing went to it after
    tally.assert_nothing_lost()


async def test_worker_stopped_mid_load_gets_nothing_after_draining(pki: Pki, broker: RunningBroker,
                                                                   tmp_path: Path) -> None:
    """A worker SIGTERMed mid-load gets no task after it said draining, exits 0; all 400 answered once."""
    run = await _worker_fault(pki, broker, tmp_path, signal.SIGTERM)
    tally, log = run["tally"], run["log"]
    after = log.tasks_after(run["victim"], "draining")
    tally.report(f"{log.tasks_to(run['victim'])} tasks to the stopped worker, {after} after it said draining")
    assert run["code"] == 0, run["output"][-2000:]
    assert after == 0
    assert "Traceback" not in run["output"]
    tally.assert_nothing_lost()
