"""kill -9 of the master with tasks queued and assigned: after a restart every question is answered exactly once,
and the clients that reconnect get every answer (live or through "ai-sync")."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import pytest

from devstack.local_broker import RunningBroker, free_port
from devstack.users import create_users
from tests.fault_helpers import (Tally, close_clients, collecting, connect_clients, master_env, start_service,
                                 stop_service, until, wait_ready, wait_settled)
from tests.pki_helpers import Pki
from tests.stack_helpers import worker_settings
from worker.service import run_worker

pytestmark = pytest.mark.integration
QUESTIONS_PER_CLIENT = 60
CLIENTS = 2


def _states(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall())


@pytest.mark.parametrize("kill_at", ["running", "acknowledged"])
async def test_killed_master_loses_nothing(pki: Pki, broker: RunningBroker, tmp_path: Path, kill_at: str) -> None:
    """Master -9 once tasks run (or the moment the last question is acknowledged), restarted: all 120 answered once."""
    web_port, grpc_port = free_port(), free_port()
    env = master_env(pki, broker.port, web_port, grpc_port, tmp_path)
    accounts = create_users(tmp_path / "master.db", [f"mr{web_port}-{i}" for i in range(CLIENTS)])
    url = f"https://localhost:{web_port}"
    log = tmp_path / "master.log"
    master = start_service("master", env, log)
    tally = Tally(f"master kill -9 with tasks queued and assigned, restarted (killed when {kill_at})")
    try:
        async with run_worker(worker_settings(pki, broker, grpc_port, f"mr-{web_port}-1", capacity=8, echo_latency_s=0.5)), \
                run_worker(worker_settings(pki, broker, grpc_port, f"mr-{web_port}-2", capacity=8, echo_latency_s=0.5)):
            await wait_ready(pki, url, workers=2)
            clients = await connect_clients(pki, url, accounts)
            try:
                async with collecting(clients, tally):
                    acks = await asyncio.gather(*(c.ask(f"question {i}") for i in range(QUESTIONS_PER_CLIENT)
                                                  for c in clients))
                    tally.sent = len(acks)
                    tally.asked = [a["task_id"] for a in acks if "task_id" in a]
                    tally.refused = tally.sent - len(tally.asked)
                    if kill_at == "running":
                        await until(lambda: len(tally.events) >= 16, 30, "the first answers")  # the next 16 run
                    # "acknowledged": at once; a question is acknowledged only once it is in the store.
                    master.send_signal(signal.SIGKILL)
                    await asyncio.to_thread(master.wait, 10)
                    tally.restarted()
            finally:
                await close_clients(clients)
            at_kill = _states(tmp_path / "master.db")
            answered_before = len(tally.events)

            master = start_service("master", env, log)
            await wait_ready(pki, url, workers=2)
            clients = await connect_clients(pki, url, accounts)  # new logins: the same users, new connections
            synced = 0
            try:
                async with collecting(clients, tally):
                    for client in clients:
                        assert client.sio is not None
                        reply = await client.sio.call("ai-sync", {"since": 0}, timeout=10)
                        for event in reply["events"]:  # answers that finished while nobody was connected
                            if event["task_id"] not in tally.events:
                                tally.on_event(event)
                                synced += 1
                    await wait_settled(tally, timeout=30)
            finally:
                await close_clients(clients)
        tally.report(f"at the kill the store had {at_kill}; {answered_before} answered before it, "
                     f"{synced} recovered by ai-sync")
        assert at_kill.get("queued", 0) > 0, at_kill  # the fault hit queued tasks (and, once running, assigned ones)
        if kill_at == "running":
            assert at_kill.get("assigned", 0) > 0, at_kill
        assert sum(at_kill.values()) == tally.sent, at_kill  # every acknowledged question was in the store
        tally.assert_nothing_lost(max_stall_s=None)  # the stall is the restart itself
        assert _states(tmp_path / "master.db") == {"answered": tally.sent}
    finally:
        stop_service(master)
    assert "unfinished tasks from the store" in log.read_text()  # the restart restored them
