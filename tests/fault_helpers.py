"""What the fault tests share: a tally of every question (sent, answered once, errors, lost, duplicated, longest
stall) with its one-line summary, a load driver over several Socket.IO clients, a restartable mosquitto, a TCP gate
that holds the workers' broker connections, and the master and workers as real processes (to kill them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.local_broker import RunningBroker, free_port, run_broker, stop_process
from tests.pki_helpers import Pki
from tests.stack_helpers import ChatClient, https_session, login_cookie

REPO = Path(__file__).resolve().parent.parent
# Every fault test's summary line, printed again at the end of the run (tests/conftest.py).
SUMMARIES: list[str] = []


@dataclass
class Tally:
    """Every question of one fault test and what came back for it, by task id."""

    name: str
    sent: int = 0
    asked: list[str] = field(default_factory=list)  # task ids acknowledged by the master
    refused: int = 0  # questions that got no task id (an error acknowledgement or a transport error)
    events: dict[str, list[str]] = field(default_factory=dict)  # task id -> the events received for it
    times: list[float] = field(default_factory=list)  # when each ai-response arrived (monotonic)
    gave_up: float | None = None  # when the test stopped waiting with questions still open (wait_settled)
    phase: int = 0  # master restarts so far (restarted())
    first_phase: dict[str, int] = field(default_factory=dict)  # task id -> the phase of its first event
    # Tasks whose outcome came again, the same, from a restarted master: answered before the crash but not yet
    # written, then accepted again from the worker's retry (at-least-once across a crash; pages show a task once).
    redelivered: set[str] = field(default_factory=set)

    def restarted(self) -> None:
        """The master was killed and started again: what it delivers again from now on is a redelivery."""
        self.phase += 1

    def on_event(self, event: dict[str, Any]) -> None:
        task_id = event["task_id"]
        if self.first_phase.setdefault(task_id, self.phase) < self.phase and self.events.get(task_id) == [event["event"]]:
            self.redelivered.add(task_id)
            return
        self.events.setdefault(task_id, []).append(event["event"])
        if event["event"] == "ai-response":
            self.times.append(time.monotonic())

    @property
    def answered_once(self) -> int:
        return sum(self.events.get(t) == ["ai-response"] for t in self.asked)

    @property
    def errors(self) -> int:
        return self.refused + sum("ai-error" in self.events.get(t, ()) for t in self.asked)

    @property
    def lost(self) -> int:
        return sum(t not in self.events for t in self.asked)

    @property
    def duplicated(self) -> int:
        return sum(len(e) - 1 for e in self.events.values() if len(e) > 1)

    @property
    def foreign(self) -> int:
        """Events for task ids this test never got an acknowledgement for."""
        return len(set(self.events) - set(self.asked))

    @property
    def longest_stall(self) -> float:
        """The longest time between two consecutive answers (or from the last one to giving up, if any is open)."""
        times = self.times + ([self.gave_up] if self.gave_up is not None else [])
        gaps = [b - a for a, b in zip(times, times[1:])]
        return max(gaps, default=0.0)

    def settled(self) -> bool:
        return all(t in self.events for t in self.asked)

    def summary(self) -> str:
        return (f"FAULT {self.name}: sent {self.sent}, answered once {self.answered_once}, errors {self.errors}, "
                f"lost {self.lost}, duplicated {self.duplicated}, longest stall {self.longest_stall:.1f} s"
                + (f", redelivered after the restart {len(self.redelivered)}" if self.phase else ""))

    def report(self, extra: str = "") -> str:
        """Print the summary line (and keep it for the end of the run); returns it."""
        line = self.summary() + (f" ({extra})" if extra else "")
        SUMMARIES.append(line)
        print(line)
        return line

    def assert_nothing_lost(self, max_stall_s: float | None = 10.0) -> None:
        assert self.refused == 0, self.summary()
        assert self.lost == 0 and self.duplicated == 0 and self.foreign == 0, self.summary()
        assert self.answered_once == self.sent == len(self.asked), self.summary()
        if max_stall_s is not None:
            assert self.longest_stall < max_stall_s, self.summary()


async def wait_settled(tally: Tally, timeout: float) -> None:
    """Until every acknowledged question has an answer or an error, or `timeout` (then the tally shows what is lost)."""
    deadline = time.monotonic() + timeout
    while not tally.settled() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if not tally.settled():
        tally.gave_up = time.monotonic()


@contextlib.asynccontextmanager
async def collecting(clients: list[ChatClient], tally: Tally) -> AsyncIterator[None]:
    """Feed every client's ai-response / ai-error events into `tally` while the block runs."""

    async def collect(client: ChatClient) -> None:
        while True:
            tally.on_event(await client.responses.get())

    tasks = [asyncio.create_task(collect(c)) for c in clients]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def ask_at_rate(clients: list[ChatClient], tally: Tally, total: int, rate_per_s: float) -> None:
    """Ask `total` distinct questions, round robin over `clients`, at `rate_per_s` overall (each ask concurrent)."""

    async def one(i: int, client: ChatClient) -> None:
        try:
            ack = await client.ask(f"{tally.name} question {i}")
        except Exception:  # noqa: BLE001 (a transport error is counted, not raised: the tally reports it)
            tally.refused += 1
            return
        if isinstance(ack, dict) and "task_id" in ack:
            tally.asked.append(ack["task_id"])
        else:
            tally.refused += 1

    start = time.monotonic()
    pending = []
    for i in range(total):
        delay = start + i / rate_per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tally.sent += 1
        pending.append(asyncio.create_task(one(i, clients[i % len(clients)])))
    await asyncio.gather(*pending)


async def connect_clients(pki: Pki, url: str, accounts: dict[str, str]) -> list[ChatClient]:
    """One logged-in Socket.IO client per account (each user gets only their own answers)."""
    clients = []
    try:
        for name, password in accounts.items():
            client = ChatClient(pki, cookie=await login_cookie(pki, url, name, password))
            await client.connect(url)
            clients.append(client)
    except BaseException:
        await close_clients(clients)
        raise
    return clients


async def close_clients(clients: list[ChatClient]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


class Mosquitto:
    """The real broker on a fixed port, killed with -9 and started again from an empty directory (as after a
    crash before its autosave: every session and undelivered message is gone)."""

    def __init__(self, pki: Pki) -> None:
        self.files = (pki.ca, pki.cert("mosquitto"), pki.key("mosquitto"), pki.mosquitto_passwd)
        self.port = free_port()
        self.running: RunningBroker | None = None
        self._cm: contextlib.AbstractContextManager[RunningBroker] | None = None

    def start(self) -> RunningBroker:
        self._cm = run_broker(*self.files, port=self.port)
        self.running = self._cm.__enter__()
        return self.running

    def kill(self) -> None:
        assert self.running is not None
        os.kill(self.running.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop (or reap, after kill) the broker and remove its directory."""
        if self._cm is not None:
            cm, self._cm = self._cm, None
            cm.__exit__(None, None, None)


class Gate:
    """A TCP relay in front of the broker for the workers. `refuse()` stops listening (a connection attempt is refused,
    as by a broker that is down); `hold()` listens again but holds each new connection (accepted, not relayed) until
    `open` is set, so the workers reconnect only after what the test lets first (the master)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.open = asyncio.Event()
        self.open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Gate:
        await self.hold()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.refuse()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def refuse(self) -> None:
        """Shut, and stop listening: attempts are refused until `hold()`."""
        self.open.clear()
        if self._server is not None:
            self._server.close()
            self._server = None

    async def hold(self) -> None:
        """Listen (on the same port as before); connections wait for `open`."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.open.wait()
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until either side ends, then close the writing side (which ends the other pipe too)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


# -- the master and workers as processes -------------------------------------------------------------------------------

def master_env(pki: Pki, broker_port: int, web_port: int, grpc_port: int, tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of `python -m master` with everything in `tmp` (store, session secret)."""
    (tmp / "session_secret").write_text(os.urandom(24).hex())
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_FILE")}
    return {**clean, "PYTHONUNBUFFERED": "1",
            "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker_port), "MQTT_PASSWORD_FILE": str(pki.password_path("master")),
            "TLS_CA_FILE": str(pki.ca), "TLS_CERT_FILE": str(pki.cert("master")), "TLS_KEY_FILE": str(pki.key("master")),
            "WEB_HOST": "127.0.0.1", "WEB_PORT": str(web_port), "GRPC_HOST": "127.0.0.1", "GRPC_PORT": str(grpc_port),
            "PUBLIC_ORIGINS": f"https://localhost:{web_port}", "DATABASE_FILE": str(tmp / "master.db"),
            "SESSION_SECRET_FILE": str(tmp / "session_secret"), "PASSWORD_HASH_MEMORY_KIB": "8192",
            "RATE_PER_MINUTE": "0", "MAX_OPEN_TASKS_PER_USER": "0", **extra}


def worker_env(pki: Pki, broker_port: int, grpc_port: int, worker_id: str, **extra: str) -> dict[str, str]:
    """The environment of `python -m worker` (echo backend)."""
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_FILE")}
    return {**clean, "PYTHONUNBUFFERED": "1", "WORKER_ID": worker_id, "MODEL_BACKEND": "echo",
            "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker_port), "MQTT_PASSWORD_FILE": str(pki.password_path("worker")),
            "TLS_CA_FILE": str(pki.ca), "TLS_CERT_FILE": str(pki.cert("worker")), "TLS_KEY_FILE": str(pki.key("worker")),
            "RESULTS_ENDPOINT": f"127.0.0.1:{grpc_port}", "RESULTS_TLS_SERVER_NAME": "localhost", **extra}


def start_service(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m module` with its output appended to `log`; the caller stops it (stop_service) in a finally."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def stop_service(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM, SIGKILL if it has not exited within `timeout`; its exit code."""
    stop_process(proc, timeout)
    return int(proc.returncode)


async def wait_ready(pki: Pki, url: str, workers: int, timeout: float = 30.0) -> None:
    """Until the master's /healthz counts `workers` workers heard live."""
    async with https_session(pki.tls()) as http:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200 and (await resp.json())["workers"] >= workers:
                        return
            except OSError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the master at {url} did not report {workers} live workers within {timeout:.0f} s")


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait for `predicate`; the monotonic time it became true (TimeoutError naming `what` otherwise)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic()


async def at(delay_s: float, action: Callable[[], Awaitable[Any]]) -> Any:
    """Run `action` `delay_s` from now (the fault's moment within a load)."""
    await asyncio.sleep(delay_s)
    return await action()
