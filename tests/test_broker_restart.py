"""kill -9 of mosquitto under load, restarted after a pause: nothing lost, nothing answered twice, no long stall.

The broker comes back with an empty state (its persistence is in a fresh directory, as after a crash
before its autosave), the hardest case: every session and every undelivered message is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from devstack.local_broker import free_port, run_broker
from master.server import run_master
from tests.pki_helpers import Pki
from tests.stack_helpers import ChatClient, login_cookie, master_settings, wait_until, worker_settings
from worker.service import run_worker

pytestmark = pytest.mark.integration
QUESTIONS = 300
RATE_PER_S = 100


@pytest.mark.parametrize("down_s", [1.0, 3.0])
async def test_broker_killed_and_restarted_loses_nothing(pki: Pki, tmp_path: Path, down_s: float) -> None:
    """300 questions at 100/s; mosquitto killed with -9 at 1 s and back after `down_s`: 300 answered once, 0 lost."""
    port = free_port()
    files = (pki.ca, pki.cert("mosquitto"), pki.key("mosquitto"), pki.mosquitto_passwd)
    broker_cm = run_broker(*files, port=port)
    broker = await asyncio.to_thread(broker_cm.__enter__)
    try:
        settings = master_settings(pki, broker, free_port())
        async with run_master(settings) as master, \
                run_worker(worker_settings(pki, broker, master.grpc_port, f"br{port}-1", capacity=8, echo_latency_s=0.1)), \
                run_worker(worker_settings(pki, broker, master.grpc_port, f"br{port}-2", capacity=8, echo_latency_s=0.1)):
            url = f"https://localhost:{master.web_port}"
            await wait_until(lambda: master.dispatcher.registry.live_count() == 2, what="workers")
            from devstack.users import FAST_HASH
            from master.accounts import add_user
            await master.db.run(add_user, "load", FAST_HASH.hash("load password 1"), "user")
            client = ChatClient(pki, cookie=await login_cookie(pki, url, "load", "load password 1"))
            await client.connect(url)
            answers: dict[str, int] = {}
            times: list[float] = []

            async def collect() -> None:
                while True:
                    r = await client.responses.get()
                    answers[r["task_id"]] = answers.get(r["task_id"], 0) + 1
                    times.append(time.monotonic())

            collector = asyncio.create_task(collect())
            asked: list[str] = []
            start = time.monotonic()
            killed = restarted = False
            for i in range(QUESTIONS):
                if not killed and time.monotonic() - start > 1.0:
                    os.kill(broker.pid, signal.SIGKILL)
                    killed = True
                    restart_at = time.monotonic() + down_s
                ack = await client.ask(f"q{i}")
                assert "task_id" in ack, ack
                asked.append(ack["task_id"])
                if killed and not restarted and time.monotonic() >= restart_at:
                    await asyncio.to_thread(broker_cm.__exit__, None, None, None)  # reaps the killed process
                    broker_cm = run_broker(*files, port=port)
                    broker = await asyncio.to_thread(broker_cm.__enter__)
                    restarted = True
                await asyncio.sleep(1 / RATE_PER_S)
            if not restarted:  # the questions ran out before the pause did
                await asyncio.sleep(max(0.0, restart_at - time.monotonic()))
                await asyncio.to_thread(broker_cm.__exit__, None, None, None)
                broker_cm = run_broker(*files, port=port)
                broker = await asyncio.to_thread(broker_cm.__enter__)
            try:
                await wait_until(lambda: set(answers) >= set(asked), timeout=60, what="every answer")
            finally:
                collector.cancel()
                await client.close()
            gaps = [b - a for a, b in zip(times, times[1:])]
            duplicated = sum(n - 1 for n in answers.values() if n > 1)
            lost = len(set(asked) - set(answers))
            print(f"broker down {down_s:.0f} s: sent {len(asked)}, answered {len(answers)}, lost {lost}, "
                  f"duplicated {duplicated}, longest stall {max(gaps):.1f} s")
            assert lost == 0 and duplicated == 0 and len(answers) == QUESTIONS
            assert max(gaps) < 10.0
    finally:
        await asyncio.to_thread(broker_cm.__exit__, None, None, None)
