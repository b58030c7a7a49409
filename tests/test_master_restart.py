"""kill -9 of the master with tasks queued and assigned: after a restart every question is answered exactly once,
and the client that reconnects gets every answer (live or through "ai-sync")."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.local_broker import RunningBroker, free_port
from devstack.users import create_users
from tests.pki_helpers import Pki
from tests.stack_helpers import ChatClient, https_session, login_cookie, worker_settings
from worker.service import run_worker

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent


def master_env(pki: Pki, broker: RunningBroker, web_port: int, grpc_port: int, tmp: Path) -> dict[str, str]:
    (tmp / "session_secret").write_text(os.urandom(24).hex())
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_FILE")}
    return {**clean, "PYTHONUNBUFFERED": "1",
            "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port), "MQTT_PASSWORD_FILE": str(pki.password_path("master")),
            "TLS_CA_FILE": str(pki.ca), "TLS_CERT_FILE": str(pki.cert("master")), "TLS_KEY_FILE": str(pki.key("master")),
            "WEB_HOST": "127.0.0.1", "WEB_PORT": str(web_port), "GRPC_HOST": "127.0.0.1", "GRPC_PORT": str(grpc_port),
            "PUBLIC_ORIGINS": f"https://localhost:{web_port}", "DATABASE_FILE": str(tmp / "master.db"),
            "SESSION_SECRET_FILE": str(tmp / "session_secret"), "PASSWORD_HASH_MEMORY_KIB": "8192",
            "RATE_PER_MINUTE": "0", "MAX_OPEN_TASKS_PER_USER": "0"}


def start_master(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "master"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


async def wait_ready(pki: Pki, url: str, workers: int) -> None:
    async with https_session(pki.tls()) as http:
        for _ in range(300):
            try:
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200 and (await resp.json())["workers"] >= workers:
                        return
            except OSError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("the master did not come up")


async def test_killed_master_loses_nothing(pki: Pki, broker: RunningBroker, tmp_path: Path) -> None:
    """20 questions, 4 slots, slow workers; kill -9 the master; restart it: 20 answered once, all reach the client."""
    web_port, grpc_port = free_port(), free_port()
    env = master_env(pki, broker, web_port, grpc_port, tmp_path)
    [(name, password)] = create_users(tmp_path / "master.db", ["alice"]).items()
    url = f"https://localhost:{web_port}"
    log = tmp_path / "master.log"
    master = start_master(env, log)
    try:
        async with run_worker(worker_settings(pki, broker, grpc_port, f"mr-{web_port}-1", capacity=2, echo_latency_s=0.6)), \
                run_worker(worker_settings(pki, broker, grpc_port, f"mr-{web_port}-2", capacity=2, echo_latency_s=0.6)):
            await wait_ready(pki, url, workers=2)
            cookie = await login_cookie(pki, url, name, password)
            client = ChatClient(pki, cookie=cookie)
            await client.connect(url)
            acks = [await client.ask(f"question {i}") for i in range(20)]
            asked = {a["task_id"] for a in acks}
            assert len(asked) == 20
            await asyncio.sleep(0.3)  # the journal writes every 50 ms: everything acknowledged is stored by now
            master.send_signal(signal.SIGKILL)
            master.wait(timeout=10)
            before_kill = {r["task_id"] for r in _drain(client)}
            await client.close()

            master = start_master(env, log)
            await wait_ready(pki, url, workers=2)
            client = ChatClient(pki, cookie=cookie)  # the session survived in the store
            await client.connect(url)
            try:
                assert client.sio is not None
                synced = await client.sio.call("ai-sync", {"since": 0}, timeout=10)
                got = before_kill | {e["task_id"] for e in synced["events"] if e["event"] == "ai-response"}
                deadline = asyncio.get_running_loop().time() + 30
                while got != asked and asyncio.get_running_loop().time() < deadline:
                    try:
                        response = await client.next_response(timeout=1)
                    except asyncio.TimeoutError:
                        continue
                    assert response["event"] == "ai-response", response
                    got.add(response["task_id"])
                assert got == asked, f"{len(asked - got)} never reached the client"
            finally:
                await client.close()
        with sqlite3.connect(tmp_path / "master.db") as db:
            states = dict(db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall())
        assert states == {"answered": 20}, states
    finally:
        if master.poll() is None:
            master.send_signal(signal.SIGTERM)
            master.wait(timeout=15)
    text = log.read_text()
    assert "unfinished tasks from the store" in text  # the restart restored them


def _drain(client: ChatClient) -> list[dict[str, Any]]:
    out = []
    while not client.responses.empty():
        out.append(client.responses.get_nowait())
    return out
