"""The worker: take tasks from MQTT, run up to `capacity` at once, send results over gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator

from common.healthcheck import touch
from common.metrics_server import serve_metrics
from common.messages import MessageError, StatusMessage, TaskMessage, parse_cancel, parse_task
from common.mqtt_connect import BrokerAddress
from common.rpc import worker_pb2
from common.topics import Topics
from worker.backends.base import ModelBackend, ModelError
from worker.backends.echo import EchoBackend
from worker.backends.gemini import GeminiBackend
from worker.backends.openai_compat import OpenAICompatBackend
from worker.bus import WorkerBus
from worker.chunks import ChunkCoalescer
from worker.metrics import MODEL_CALL, MODEL_ERRORS, TASKS_RUNNING, error_label, model_label
from worker.results_client import ResultsClient
from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)
VERSION = "0.1.0"


def make_backend(settings: WorkerSettings) -> ModelBackend:
    if settings.backend_kind() == "gemini":
        return GeminiBackend(
            settings.gemini_api_key(),
            settings.gemini_model,
            models=settings.gemini_extra_models,
            base_url=settings.gemini_base_url,
            timeout_s=settings.gemini_timeout_s,
        )
    if settings.backend_kind() == "openai":
        return OpenAICompatBackend(
            settings.openai_api_key(),
            settings.openai_model,
            models=settings.openai_extra_models,
            base_url=settings.openai_base_url,
            timeout_s=settings.openai_timeout_s,
        )
    return EchoBackend(settings.echo_latency_s, settings.echo_models, settings.echo_first_token_s)


class Worker:
    """Runs tasks from `bus` on `backend`, up to the configured capacity, and sends results with `results`."""

    def __init__(self, settings: WorkerSettings, backend: ModelBackend, results: ResultsClient, bus: WorkerBus,
                 metrics_port: int | None = None) -> None:
        self.settings = settings
        self.metrics_port = metrics_port
        self.backend = backend
        self.results = results
        self.bus = bus
        self.busy = 0
        self.draining = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_state: str | None = None
        # Tasks taken and their model calls once started (what a cancel stops); the ids of those stopped.
        self._running: dict[str, tuple[TaskMessage, asyncio.Task[str] | None]] = {}
        self._stopped: set[str] = set()

    # -- status -------------------------------------------------------------------------
    def status(self) -> StatusMessage:
        free = self.settings.capacity - self.busy
        state = "draining" if self.draining else "busy" if free <= 0 else "idle"
        return StatusMessage(
            state=state,
            capacity=self.settings.capacity,
            free_slots=max(free, 0),
            models=self.backend.models,
            version=VERSION,
        )

    def publish_status(self, force: bool = False) -> None:
        status = self.status()
        if force or status.state != self._last_state:
            self.bus.publish_status(status)
            self._last_state = status.state

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            self.publish_status(force=True)
            self.mark_healthy()

    def mark_healthy(self) -> None:
        """Touch the health file while the broker connection is up."""
        if self.settings.health_path is not None and self.bus.connected:
            touch(self.settings.health_path)

    def on_connected(self) -> None:
        """After each (re)connect to the broker: announce the current status, mark healthy."""
        self.publish_status(force=True)
        self.mark_healthy()

    # -- tasks --------------------------------------------------------------------------
    def on_task(self, payload: bytes) -> None:
        """Called on the loop for each MQTT task message."""
        try:
            task = parse_task(payload)
        except MessageError as exc:
            logger.error("%s; dropped (the master reports a timeout to the asker)", exc)
            return
        if task.deadline < time.time():
            logger.warning("task %s arrived after its deadline; dropped", task.task_id)
            return
        self.busy += 1
        TASKS_RUNNING.set(self.busy)
        self.publish_status()
        self._running[task.task_id] = (task, None)  # a cancel that comes before its model call starts is kept
        receipt = asyncio.create_task(self._receipt(task))
        self._tasks.add(receipt)
        receipt.add_done_callback(self._tasks.discard)
        t = asyncio.create_task(self._run(task, time.perf_counter(), receipt))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _receipt(self, task: TaskMessage) -> None:
        """Confirm the task to the master (its lease: unconfirmed, it would go to another worker), unless
        the answer is ready first and `_run` cancels this while it waits."""
        await asyncio.sleep(self.settings.receipt_delay_s)
        await asyncio.shield(self.results.submit(worker_pb2.TaskResult(
            task_id=task.task_id, worker_id=self.settings.worker_id, token=task.token, received=True)))

    def on_cancel(self, payload: bytes) -> None:
        """Called on the loop for each MQTT cancel message: stop that task's model call now."""
        try:
            cancel = parse_cancel(payload)
        except MessageError as exc:
            logger.error("%s; ignored", exc)
            return
        running = self._running.get(cancel.task_id)
        if running is None or not hmac.compare_digest(running[0].token.encode(), cancel.token.encode()):
            logger.info("cancel for a task not running here; ignored", extra={"task_id": cancel.task_id})
            return
        self._stopped.add(cancel.task_id)
        if running[1] is not None:
            running[1].cancel()  # closes the upstream call (the backend's stream)

    async def _send_chunk(self, task: TaskMessage, seq: int, text: str) -> None:
        await self.results.send_chunk(worker_pb2.TaskResult(
            task_id=task.task_id, worker_id=self.settings.worker_id, token=task.token, chunk=text, seq=seq))

    async def _answer(self, task: TaskMessage, chunks: ChunkCoalescer) -> str:
        """The model's answer, streamed: each piece goes to `chunks` as it comes."""
        parts: list[str] = []
        async with contextlib.aclosing(self.backend.stream(task.prompt, task.model)) as pieces:
            async for piece in pieces:
                parts.append(piece)
                chunks.add(piece)
        # Complete: no more chunks, in this same step (a chunk scheduled in it is not written: the result
        # carries the whole answer, so an answer that came at once costs no chunk).
        chunks.discard()
        return "".join(parts)

    def _free_slot(self) -> None:
        self.busy -= 1
        TASKS_RUNNING.set(self.busy)
        self.publish_status()

    async def _run(self, task: TaskMessage, received: float, receipt: asyncio.Task[None] | None = None) -> None:
        started = time.perf_counter()
        result = worker_pb2.TaskResult(
            task_id=task.task_id, worker_id=self.settings.worker_id, token=task.token, model=task.model
        )
        chunks = ChunkCoalescer(lambda seq, text: self._send_chunk(task, seq, text),
                                self.settings.chunk_interval_s, self.settings.chunk_max_bytes)
        call = asyncio.create_task(self._answer(task, chunks))
        self._running[task.task_id] = (task, call)
        if task.task_id in self._stopped:
            call.cancel()  # stopped before it started: no model call
        freed = False
        try:
            timeout = max(0.1, task.deadline - time.time())
            answer = await asyncio.wait_for(call, timeout)
            result.answer = answer
            if self.settings.log_content:
                logger.debug("content prompt=%r answer=%r", task.prompt, answer, extra={"task_id": task.task_id})
        except asyncio.CancelledError:
            if task.task_id not in self._stopped:
                raise  # shutting down
            chunks.discard()
            self._free_slot()  # at once: the master already settled the task as stopped
            freed = True
            result.error.code, result.error.message = "stopped", "Stopped at your request."
        except ModelError as exc:
            result.error.code, result.error.message = exc.code, exc.user_message
        except asyncio.TimeoutError:
            result.error.code, result.error.message = "timeout", "The model did not answer in time. Please try again."
        except Exception:
            logger.exception("task %s failed in the backend", task.task_id)
            result.error.code, result.error.message = "internal", "The worker failed on this question. Please try again."
        finally:
            self._running.pop(task.task_id, None)
            self._stopped.discard(task.task_id)
        if not freed:
            await chunks.close()  # every chunk is written before the result
        model_ms = (time.perf_counter() - started) * 1000
        label = model_label(task.model or (self.backend.models[0] if self.backend.models else ""), self.backend.models)
        MODEL_CALL.labels(label).observe(model_ms / 1000)
        if result.HasField("error") and not freed:
            MODEL_ERRORS.labels(label, error_label(result.error.code)).inc()
        result.model_ms = int(model_ms)
        result.worker_ms = int((time.perf_counter() - received) * 1000)
        if receipt is not None:
            receipt.cancel()  # still waiting: the result confirms the task; already sent: shielded, it goes on
        try:
            # Retried while the master is unreachable (a restart), up to the task's deadline.
            accepted = await self.results.submit(result, deadline=task.deadline)
        finally:
            self.results.forget(task.task_id)
            if not freed:
                self._free_slot()
        log = logger.info if result.HasField("error") or not accepted else logger.debug
        log(
            "task done: %s%s, prompt %d chars, reply %d chars, model %.1f ms, accepted=%s",
            result.WhichOneof("outcome"), f" ({result.error.code})" if result.HasField("error") else "",
            len(task.prompt), len(result.answer or result.error.message), model_ms, accepted,
            extra={"task_id": task.task_id, "worker_id": self.settings.worker_id},
        )

    async def drain(self, timeout: float) -> None:
        """Say `draining` (the master sends nothing new), let running tasks finish for up to `timeout`,
        then cancel the rest."""
        self.draining = True
        self.publish_status(force=True)
        if self._tasks:
            _, unfinished = await asyncio.wait(set(self._tasks), timeout=timeout)
            for t in unfinished:
                t.cancel()
            if unfinished:
                logger.warning("%d tasks cancelled at shutdown; the master hands them to another worker", len(unfinished))
                await asyncio.wait(unfinished, timeout=2)


@contextlib.asynccontextmanager
async def run_worker(settings: WorkerSettings, backend: ModelBackend | None = None) -> AsyncIterator[Worker]:
    """Connect, serve tasks until the block exits, then drain, say offline and disconnect."""
    password = settings.mqtt_password()
    settings.tls().check()
    backend = backend or make_backend(settings)
    results = ResultsClient(settings.results_endpoint, settings.tls(), settings.results_tls_server_name)
    bus = WorkerBus(
        settings.worker_id, password, settings.mqtt_tls(),
        BrokerAddress(settings.mqtt_host, settings.mqtt_port), Topics(settings.topic_prefix),
    )
    metrics = contextlib.ExitStack()
    metrics_port = metrics.enter_context(serve_metrics(settings.metrics_host, settings.metrics_port))
    worker = Worker(settings, backend, results, bus, metrics_port)
    bus.start(on_task=worker.on_task, on_connected=worker.on_connected, on_cancel=worker.on_cancel)
    heartbeat = asyncio.create_task(worker.heartbeat())
    try:
        yield worker
    finally:
        metrics.close()
        heartbeat.cancel()
        await worker.drain(timeout=settings.drain_timeout_s)
        await bus.stop()
        await results.close()
        await backend.aclose()
