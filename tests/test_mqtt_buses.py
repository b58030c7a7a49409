"""The master's and the worker's MQTT buses against the real mosquitto: reconnect, clean stop, last will."""

from __future__ import annotations

from typing import Any

import asyncio
import contextlib
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from common.messages import OFFLINE, StatusMessage, TaskMessage, encode
from common.mqtt_connect import BrokerAddress
from common.topics import Topics
from devstack.broker_config import REPO_ROOT
from devstack.local_broker import RunningBroker, free_port, run_broker
from master.bus import MasterBus
from tests.conftest import Pki
from tests.mqtt_helpers import BlockingClient, Received
from tests.stack_helpers import wait_until
from worker.bus import WorkerBus

pytestmark = pytest.mark.integration

TOPICS = Topics()

# A worker bus in its own process, so that the test can kill it without a clean disconnect.
_WORKER_SCRIPT = """
import asyncio, sys
from pathlib import Path
from common.mqtt_connect import BrokerAddress
from common.tls import TlsFiles
from common.topics import Topics
from worker.bus import WorkerBus

async def main(port: str, ca: str, password_file: str, worker_id: str) -> None:
    bus = WorkerBus(worker_id, Path(password_file).read_text().strip(), TlsFiles(ca=Path(ca)),
                    BrokerAddress("127.0.0.1", int(port)), Topics())
    bus.start(lambda payload: None, lambda: print("connected", flush=True))
    await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""


class RestartableBroker:
    """mosquitto on one fixed port and directory, so that it can be stopped and started again."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="aisys-broker-"))
        self._running: contextlib.ExitStack | None = None

    def start(self) -> RunningBroker:
        stack = contextlib.ExitStack()
        running = stack.enter_context(run_broker(
            self.pki.ca, self.pki.cert("mosquitto"), self.pki.key("mosquitto"), self.pki.mosquitto_passwd,
            directory=self.directory, port=self.port,
        ))
        self._running = stack
        return running

    def stop(self) -> None:
        if self._running is not None:
            self._running.close()
            self._running = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def restartable_broker(pki: Pki) -> Iterator[RestartableBroker]:
    """A broker of this test's own, started; stopped and removed at teardown."""
    broker = RestartableBroker(pki)
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


class Wired:
    """A bus with the handlers its service gives it when starting it (`bus.start(*handlers)`)."""

    def __init__(self, bus: MasterBus | WorkerBus, *handlers: Any) -> None:
        self.bus = bus
        self.handlers = handlers

    def start(self) -> None:
        self.bus.start(*self.handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bus, name)


@contextlib.asynccontextmanager
async def started(bus: Wired) -> AsyncIterator[None]:
    """`bus` started and connected; stopped at exit."""
    bus.start()
    try:
        await wait_until(lambda: bus.connected, what="the bus to connect")
        yield
    finally:
        await bus.stop()


def new_task(task_id: str) -> TaskMessage:
    return TaskMessage(task_id=task_id, token="t" * 16, prompt="hello", deadline=time.time() + 60)


def observer(pki: Pki, port: int, name: str) -> BlockingClient:
    """A master-credential client subscribed to every worker's status."""
    client = BlockingClient(port, name, "master", pki.password("master"), pki.tls(), keep_retained=True)
    assert client.subscribe(TOPICS.all_status) == [1]
    return client


def until_sentinel(client: BlockingClient, sentinel_topic: str, timeout: float = 10.0) -> list[Received]:
    """Every message `client` receives before the first one on `sentinel_topic`."""
    out: list[Received] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            message = client.messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"the sentinel on {sentinel_topic} never arrived; got {out}") from None
        if message.topic == sentinel_topic:
            return out
        out.append(message)


def send_sentinel(pki: Pki, port: int, worker_id: str) -> str:
    """Publish a status on another worker's own topic (permitted); returns that topic."""
    sender = BlockingClient(port, worker_id, "worker", pki.password("worker"), pki.tls())
    try:
        topic = TOPICS.status(worker_id)
        sender.publish(topic, encode(StatusMessage(state="idle")))
        return topic
    finally:
        sender.close()


async def test_buses_reconnect_after_broker_restart_republish_status_and_deliver_tasks(
    pki: Pki, restartable_broker: RestartableBroker
) -> None:
    """After a broker restart both buses reconnect: the master gets the worker's new status and its next task arrives."""
    address = BrokerAddress("127.0.0.1", restartable_broker.port)
    statuses: list[tuple[str, StatusMessage]] = []
    tasks: list[bytes] = []
    connects = 0
    worker: WorkerBus

    def worker_connected() -> None:
        nonlocal connects
        connects += 1
        # free_slots counts the connects, so a status persisted by the broker cannot pass for a new one.
        worker.publish_status(StatusMessage(state="idle", capacity=8, free_slots=connects))

    worker = Wired(WorkerBus("restart-w1", pki.password("worker"), pki.tls(), address, TOPICS),
                   tasks.append, worker_connected)
    master = Wired(MasterBus(pki.password("master"), pki.tls(), address, TOPICS),
                   lambda wid, status, live: statuses.append((wid, status)), lambda: None)
    async with started(master), started(worker):
        await wait_until(lambda: ("restart-w1", 1) in [(w, s.free_slots) for w, s in statuses], what="first status")
        assert master.publish_task("restart-w1", new_task("before-restart"))
        await wait_until(lambda: len(tasks) == 1, what="the task before the restart")

        restartable_broker.stop()
        await wait_until(lambda: not master.connected and not worker.connected, what="both buses to see the loss")
        assert not master.publish_task("restart-w1", new_task("while-down"))
        restartable_broker.start()

        await wait_until(lambda: master.connected and worker.connected, timeout=30, what="both buses to reconnect")
        await wait_until(lambda: ("restart-w1", 2) in [(w, s.free_slots) for w, s in statuses],
                         what="the status republished after the restart")
        assert master.publish_task("restart-w1", new_task("after-restart"))
        await wait_until(lambda: len(tasks) == 2, what="the task after the restart")
    assert b"after-restart" in tasks[1]
    assert all(b"while-down" not in t for t in tasks)


async def test_worker_bus_connected_only_once_subscribed(pki: Pki, broker: RunningBroker) -> None:
    """A task that another client publishes from the worker's `on_connected` callback reaches the worker."""
    address = BrokerAddress("127.0.0.1", broker.port)
    tasks: list[bytes] = []
    master = BlockingClient(broker.port, "master-subscribed", "master", pki.password("master"), pki.tls())
    payload = encode(new_task("first"))
    worker = Wired(WorkerBus("subscribed-w1", pki.password("worker"), pki.tls(), address, TOPICS), tasks.append,
                   lambda: master.client.publish(TOPICS.tasks("subscribed-w1"), payload, qos=1))
    try:
        async with started(worker):
            await wait_until(lambda: len(tasks) == 1, what="the task published at connect")
    finally:
        master.close()
    assert tasks == [payload]


async def test_worker_bus_keeps_receiving_after_a_handler_fails(pki: Pki, broker: RunningBroker) -> None:
    """A task handler that raises drops that message only; the next task still arrives."""
    address = BrokerAddress("127.0.0.1", broker.port)
    tasks: list[bytes] = []

    def on_task(payload: bytes) -> None:
        tasks.append(payload)
        if len(tasks) == 1:
            raise RuntimeError("handler bug")

    worker = Wired(WorkerBus("failing-w1", pki.password("worker"), pki.tls(), address, TOPICS), on_task, lambda: None)
    master = BlockingClient(broker.port, "master-failing", "master", pki.password("master"), pki.tls())
    try:
        async with started(worker):
            for task_id in ("first", "second"):
                await asyncio.to_thread(master.publish, TOPICS.tasks("failing-w1"), encode(new_task(task_id)))
            await wait_until(lambda: len(tasks) == 2, what="the task after the failing one")
            assert worker.connected
    finally:
        master.close()


async def test_worker_stop_clears_retained_status_and_sends_no_last_will(pki: Pki, broker: RunningBroker) -> None:
    """A clean stop publishes offline, deletes the retained status and disconnects without the last will."""
    address = BrokerAddress("127.0.0.1", broker.port)
    topic = TOPICS.status("stop-w1")
    worker = Wired(WorkerBus("stop-w1", pki.password("worker"), pki.tls(), address, TOPICS), lambda payload: None,
                       lambda: worker.publish_status(StatusMessage(state="idle", capacity=1, free_slots=1)))
    watching = observer(pki, broker.port, "stop-observer-1")
    try:
        async with started(worker):
            received = await asyncio.to_thread(watching.messages.get, timeout=10)
            while received.topic != topic:
                received = await asyncio.to_thread(watching.messages.get, timeout=10)
            assert b'"idle"' in received.payload
        sentinel = await asyncio.to_thread(send_sentinel, pki, broker.port, "stop-sentinel-1")
        seen = [m.payload for m in await asyncio.to_thread(until_sentinel, watching, sentinel) if m.topic == topic]
    finally:
        watching.close()
    assert seen == [encode(OFFLINE), b""]  # offline, then the retained status deleted; no will after them

    fresh = observer(pki, broker.port, "stop-observer-2")  # a retained status or will would arrive first
    try:
        sentinel = await asyncio.to_thread(send_sentinel, pki, broker.port, "stop-sentinel-2")
        retained = [m for m in await asyncio.to_thread(until_sentinel, fresh, sentinel) if m.topic == topic]
    finally:
        fresh.close()
    assert retained == []


def test_worker_last_will_offline_arrives_when_connection_dies(pki: Pki, broker: RunningBroker) -> None:
    """A worker process killed without a DISCONNECT gets its retained last will 'offline' published."""
    topic = TOPICS.status("will-w1")
    watching = observer(pki, broker.port, "will-observer")
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER_SCRIPT, str(broker.port), str(pki.ca), str(pki.password_path("worker")),
         "will-w1"],
        stdout=subprocess.PIPE, cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"connected"
        proc.kill()  # SIGKILL: the socket closes without an MQTT DISCONNECT
        proc.wait(10)
        deadline = time.monotonic() + 10
        while True:
            message = watching.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            if message.topic == topic:
                break
        assert message.payload == encode(OFFLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        watching.close()
    fresh = observer(pki, broker.port, "will-observer-2")
    try:
        sentinel = send_sentinel(pki, broker.port, "will-sentinel")
        retained = [m.payload for m in until_sentinel(fresh, sentinel) if m.topic == topic]
    finally:
        fresh.close()
    assert retained == [encode(OFFLINE)]  # the will is retained for masters that connect later
