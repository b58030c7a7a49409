"""The launcher users run (`python -m devstack.local_run`, what scripts/run-local.sh execs) under kill -9.

One launcher for the module: each test kills one of its children with SIGKILL and proves it came
back (a new PID in processes.json, the launcher's log line, the service reconnected, `/healthz` ok
with both workers) and that questions are answered afterwards; the last one stops it with SIGINT
(Ctrl-C) and proves every process is gone.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from common.tls import client_context
from devstack.broker_config import REPO_ROOT
from devstack.local_broker import free_port
from devstack.local_run import database_file, metrics_targets_file, state_file
from devstack.users import create_users
from tests.pki_helpers import Pki
from tests.stack_helpers import ChatClient, login_cookie

pytestmark = pytest.mark.integration

WORKERS = 2
USER = "alice"
START_TIMEOUT_S = 120.0
RECOVERY_TIMEOUT_S = 90.0


@dataclass
class Launcher:
    proc: subprocess.Popen[bytes]
    run_dir: Path
    url: str
    pki: Pki
    stdout: Path
    stderr: Path
    password: str
    seen_pids: set[int] = field(default_factory=set)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(state_file(self.run_dir).read_text())
        self.seen_pids.update(state["processes"].values())
        return state

    def pid(self, name: str) -> int:
        return int(self.state()["processes"][name])

    def log(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"


def wait_for(predicate: Any, what: str, timeout: float, launcher: Launcher | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if launcher is not None and launcher.proc.poll() is not None:
            raise AssertionError(f"the launcher exited ({launcher.proc.returncode}) while waiting for {what}: "
                                 + launcher.stderr.read_text()[-3000:])
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def healthz(launcher: Launcher) -> dict[str, Any]:
    ctx: ssl.SSLContext = client_context(launcher.pki.tls())
    try:
        with urllib.request.urlopen(launcher.url + "/healthz", context=ctx, timeout=3) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:  # 503 while degraded: the body says why
        return json.loads(exc.read())  # type: ignore[no-any-return]
    except OSError as exc:
        return {"error": str(exc)}


def stack_is_healthy(launcher: Launcher) -> bool:
    body = healthz(launcher)
    return body.get("mqtt") is True and body.get("workers") == WORKERS


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def logged_since(path: Path, offset: int, text: str) -> bool:
    with open(path, "rb") as f:
        f.seek(offset)
        return text in f.read().decode(errors="replace")


def kill_and_wait_for_restart(launcher: Launcher, name: str) -> int:
    """SIGKILL `name`; return its new PID once the launcher has restarted it and logged why."""
    old = launcher.pid(name)
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: launcher.pid(name) != old, f"{name} to get a new PID", RECOVERY_TIMEOUT_S, launcher)
    line = f"{name} (pid {old}) exited unexpectedly with code -9 (killed by SIGKILL); restarting it in 1 s"
    assert line in launcher.stderr.read_text()
    new = launcher.pid(name)
    assert psutil.pid_exists(new) and psutil.Process(new).status() != psutil.STATUS_ZOMBIE
    return new


async def answers(launcher: Launcher, count: int) -> list[str]:
    """Log in, ask `count` questions one after the other; the event that answered each (or the refusal)."""
    cookie = await login_cookie(launcher.pki, launcher.url, USER, launcher.password)
    client = ChatClient(launcher.pki, cookie=cookie)
    await client.connect(launcher.url)
    events = []
    try:
        for i in range(count):
            ack = await client.ask(f"question {i} after the restart")
            if "task_id" not in ack:
                events.append(f"refused: {ack}")
                continue
            events.append((await client.next_response(60))["event"])
        return events
    finally:
        await client.close()


def stop_leftovers(launcher: Launcher) -> None:
    """Kill any child the launcher did not stop (only our own: checked by parent or command line)."""
    for pid in launcher.seen_pids:
        try:
            proc = psutil.Process(pid)
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if str(launcher.run_dir) in cmdline or "-m master" in cmdline or "-m worker" in cmdline or "mosquitto" in cmdline:
            proc.kill()


@pytest.fixture(scope="module")
def launcher(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """`python -m devstack.local_run` with 2 workers on free ports, running until the module ends."""
    base = tmp_path_factory.mktemp("local-run")
    run_dir = base / "run"
    run_dir.mkdir(mode=0o700)
    password = create_users(database_file(run_dir), [USER])[USER]
    port = free_port()
    stdout, stderr = base / "stdout", base / "stderr"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.local_run", "--workers", str(WORKERS), "--web-port", str(port),
             "--run-dir", str(run_dir), "--pki-dir", str(pki.out)],
            stdout=out, stderr=err, cwd=REPO_ROOT,
            # The launcher passes its environment on; the per-user limits have tests of their own.
            env={**os.environ, "RATE_PER_MINUTE": "0", "MAX_OPEN_TASKS_PER_USER": "0"},
        )
    running = Launcher(proc, run_dir, f"https://localhost:{port}", pki, stdout, stderr, password)
    try:
        wait_for(lambda: "Stop:" in stdout.read_text(), "the launcher to say it runs", START_TIMEOUT_S, running)
        running.state()
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stop_leftovers(running)


def printed(launcher: Launcher, label: str) -> list[str]:
    """The values of the launcher's start-up lines that begin with `label` (e.g. "Metrics:")."""
    return [line.split(label, 1)[1].strip() for line in launcher.stdout.read_text().splitlines()
            if line.strip().startswith(label)]


def test_start_prints_admin_tokens_and_metrics_urls(launcher: Launcher) -> None:
    """At start the launcher prints the admin page, the tokens page and one /metrics URL per process, each serving its metrics."""
    assert [u.split()[0] for u in printed(launcher, "Admin page:")] == [launcher.url + "/admin"]
    assert [u.split()[0] for u in printed(launcher, "API tokens:")] == [launcher.url + "/tokens"]
    metrics = dict(line.split() for line in printed(launcher, "Metrics:"))
    assert list(metrics) == ["master", *(f"worker-{i + 1}" for i in range(WORKERS))]
    ports = launcher.state()["ports"]
    for name, url in metrics.items():
        assert url == f"http://127.0.0.1:{ports[f'metrics-{name}']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read().decode()
        assert ("aisys_queue_length" if name == "master" else "aisys_tasks_running") in body, name
        assert "process_resident_memory_bytes" in body, name
    assert len({*metrics.values()}) == len(metrics) and ports["web"] not in {ports[f"metrics-{n}"] for n in metrics}
    targets = json.loads(metrics_targets_file(launcher.run_dir).read_text())
    assert {t["labels"]["process"]: f"http://{t['targets'][0]}/metrics" for t in targets} == metrics
    assert printed(launcher, "Scrape them:")[0].split()[0] == str(metrics_targets_file(launcher.run_dir))


async def test_killed_worker_is_restarted_and_registers_again(launcher: Launcher) -> None:
    """kill -9 of a worker: restarted with its log appended, connected again, /healthz back to 2 workers, questions answered."""
    await asyncio.to_thread(wait_for, lambda: stack_is_healthy(launcher), "a healthy stack", RECOVERY_TIMEOUT_S, launcher)
    log = launcher.log("worker-1")
    offset = size(log)
    await asyncio.to_thread(kill_and_wait_for_restart, launcher, "worker-1")
    await asyncio.to_thread(wait_for, lambda: logged_since(log, offset, "connected to MQTT"),
                            "the new worker-1 to connect", RECOVERY_TIMEOUT_S, launcher)
    await asyncio.to_thread(wait_for, lambda: stack_is_healthy(launcher), "2 workers in /healthz", RECOVERY_TIMEOUT_S, launcher)
    assert await answers(launcher, 3) == ["ai-response"] * 3


async def test_killed_master_is_restarted_on_the_same_port(launcher: Launcher) -> None:
    """kill -9 of the master: restarted, HTTPS on the same port with MQTT up and both workers, a new login answered."""
    await asyncio.to_thread(wait_for, lambda: stack_is_healthy(launcher), "a healthy stack", RECOVERY_TIMEOUT_S, launcher)
    log = launcher.log("master")
    offset = size(log)
    await asyncio.to_thread(kill_and_wait_for_restart, launcher, "master")
    await asyncio.to_thread(wait_for, lambda: stack_is_healthy(launcher), "the new master's /healthz with 2 workers",
                            RECOVERY_TIMEOUT_S, launcher)
    assert logged_since(log, offset, "connected to MQTT")
    assert await answers(launcher, 3) == ["ai-response"] * 3


async def test_killed_broker_is_restarted_and_master_and_workers_reconnect(launcher: Launcher) -> None:
    """kill -9 of mosquitto: restarted on its port, the master and both workers reconnect, /healthz mqtt true, questions answered."""
    await asyncio.to_thread(wait_for, lambda: stack_is_healthy(launcher), "a healthy stack", RECOVERY_TIMEOUT_S, launcher)
    port = launcher.state()["ports"]["mqtt"]
    services = ["master", *(f"worker-{i + 1}" for i in range(WORKERS))]
    offsets = {name: size(launcher.log(name)) for name in services}
    await asyncio.to_thread(kill_and_wait_for_restart, launcher, "mosquitto")
    assert launcher.state()["ports"]["mqtt"] == port
    for name in services:
        await asyncio.to_thread(wait_for, lambda n=name: logged_since(launcher.log(n), offsets[n], f"connected to MQTT 127.0.0.1:{port}"),
                                f"{name} to reconnect to the broker", RECOVERY_TIMEOUT_S, launcher)
    await asyncio.to_thread(wait_for, lambda: stack_is_healthy(launcher), "/healthz mqtt true with 2 workers",
                            RECOVERY_TIMEOUT_S, launcher)
    assert await answers(launcher, 3) == ["ai-response"] * 3


def test_sigint_stops_every_process_and_exits_zero(launcher: Launcher) -> None:
    """Ctrl-C (SIGINT) to the launcher after restarts: exit code 0, every child (restarted ones included) gone."""
    children = launcher.state()["processes"]
    launcher.proc.send_signal(signal.SIGINT)
    assert launcher.proc.wait(60) == 0
    assert "Stopped." in launcher.stdout.read_text()
    alive = {name: pid for name, pid in children.items()
             if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE}
    assert alive == {}
    assert not state_file(launcher.run_dir).exists()
    assert not metrics_targets_file(launcher.run_dir).exists()
