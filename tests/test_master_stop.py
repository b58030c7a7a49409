"""SIGTERM to the master with browsers (Socket.IO clients) and workers connected, tasks running: a clean stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from devstack.local_broker import RunningBroker, free_port
from devstack.users import create_users
from tests.fault_helpers import (SUMMARIES, close_clients, connect_clients, master_env, start_service, stop_service,
                                 wait_ready)
from tests.pki_helpers import Pki
from tests.stack_helpers import ChatClient, worker_settings
from worker.service import run_worker

pytestmark = pytest.mark.integration


async def test_master_sigterm_with_clients_and_workers_exits_0_without_traceback(
    pki: Pki, broker: RunningBroker, tmp_path: Path
) -> None:
    """SIGTERM with 3 clients, 2 workers and 8 tasks running: the master exits 0, no Traceback, no CRITICAL line."""
    web_port, grpc_port = free_port(), free_port()
    env = master_env(pki, broker.port, web_port, grpc_port, tmp_path)
    accounts = create_users(tmp_path / "master.db", [f"ms{web_port}-{i}" for i in range(2)])
    url = f"https://localhost:{web_port}"
    log = tmp_path / "master.log"
    master = start_service("master", env, log)
    try:
        # drain_timeout_s: at the test's end the workers give up the results they cannot deliver (the master is gone).
        async with run_worker(worker_settings(pki, broker, grpc_port, f"ms-{web_port}-1", capacity=4, echo_latency_s=2,
                                              drain_timeout_s=1)), \
                run_worker(worker_settings(pki, broker, grpc_port, f"ms-{web_port}-2", capacity=4, echo_latency_s=2,
                                           drain_timeout_s=1)):
            await wait_ready(pki, url, workers=2)
            clients = await connect_clients(pki, url, accounts)
            polling = ChatClient(pki, cookie=clients[0].cookie)  # a second tab of the first user, on long-polling
            await polling.connect(url, transports=("polling",))
            clients.append(polling)
            try:
                acks = await asyncio.gather(*(c.ask(f"running at the stop {i}") for i in range(4) for c in clients[:2]))
                assert all("task_id" in a for a in acks), acks
                await asyncio.sleep(0.5)  # the workers have them (echo latency 2 s): their result streams are open
                stopping = time.monotonic()
                code = stop_service(master, timeout=30)
                took = time.monotonic() - stopping
            finally:
                await close_clients(clients)
    finally:
        stop_service(master)
    output = log.read_text(errors="replace")
    line = (f"FAULT master SIGTERM with 3 clients and 2 workers connected, 8 tasks running: exit code {code}, "
            f"stopped in {took:.1f} s, Traceback lines {output.count('Traceback')}, "
            f"CRITICAL lines {output.count('level=CRITICAL')}, ERROR lines {output.count('level=ERROR')}")
    SUMMARIES.append(line)
    print(line)
    assert code == 0, output[-3000:]
    assert "Traceback" not in output and "level=CRITICAL" not in output, output[-3000:]
