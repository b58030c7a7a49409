"""Send results to the master over one long-lived mutual-TLS gRPC channel and one result stream."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from common.grpc_keepalive import KEEPALIVE_S, client_options
from common.result_stream import BATCH_ACKS_KEY, BATCH_ACKS_VALUE, CHUNKS_KEY, CHUNKS_VALUE
from common.rpc import worker_pb2, worker_pb2_grpc
from common.tls import TlsFiles, grpc_channel_credentials

logger = logging.getLogger(__name__)

# Retried while the master is restarting or unreachable; refusals are final.
# Statuses of a stream that broke rather than a master's verdict. INTERNAL is gRPC's core failing a stream whose
# connection ended under it (a master stopping or killed: "Failed execute_batch" on a write, an RST_STREAM on a read),
# seen in about 1 stop in 20; the master's own refusals are PERMISSION_DENIED and NOT_FOUND.
RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
                         grpc.StatusCode.INTERNAL})
# How long a chunk waits for a new stream's master to say whether it takes chunks (its initial metadata).
CHUNKS_WELCOME_WAIT_S = 2.0
# Back-off between tries: 0.2 s, doubling, at most this.
RETRY_MAX_DELAY_S = 5.0


class StreamBroken(Exception):
    """The result stream ended before this result was acknowledged."""

    def __init__(self, code: grpc.StatusCode | None) -> None:
        super().__init__(code.name if code else "stream closed")
        self.code = code


class ResultsClient:
    """`submit(result)` writes to a StreamResults call (opened on first use, reopened after a failure)
    and waits for its Ack, matched by task id on that stream."""

    def __init__(
        self, endpoint: str, tls: TlsFiles, server_name: str, *, attempts: int = 6, ack_timeout_s: float = 10.0,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        options = [
            ("grpc.ssl_target_name_override", server_name),
            ("grpc.default_authority", server_name),
            *client_options(keepalive_s),
        ]
        self._channel = grpc.aio.secure_channel(endpoint, grpc_channel_credentials(tls), options=options)
        self._stub = worker_pb2_grpc.ResultServiceStub(self._channel)
        self.endpoint = endpoint
        self.attempts = attempts
        self.ack_timeout_s = ack_timeout_s
        self._call: grpc.aio.StreamStreamCall | None = None
        self._reader: asyncio.Task[None] | None = None
        # Results (and receipts) written on the current stream and not yet acknowledged, by (task id, is a
        # receipt); each stream has its own.
        self._waiting: dict[tuple[str, bool], asyncio.Future[worker_pb2.Ack]] = {}
        self._open_lock = asyncio.Lock()
        self._closed = False
        # One write at a time (gRPC streams forbid concurrent writes), and the ack queue in write order.
        self._write_lock = asyncio.Lock()
        # Tasks whose chunks the master refused (the task is no longer this worker's): send no more.
        self.refused_chunks: set[str] = set()
        # Whether the current stream's master takes chunks (its initial metadata), once known.
        self._chunks_welcome: asyncio.Future[bool] | None = None

    async def _stream(self) -> grpc.aio.StreamStreamCall:
        async with self._open_lock:
            if self._call is None or self._call.done():
                self._call = self._stub.StreamResults(metadata=((BATCH_ACKS_KEY, BATCH_ACKS_VALUE),))
                self._waiting = {}
                self._chunks_welcome = asyncio.get_running_loop().create_future()
                self._reader = asyncio.create_task(self._read_acks(self._call, self._waiting, self._chunks_welcome))
            return self._call

    async def _read_acks(self, call: grpc.aio.StreamStreamCall,
                         waiting: dict[tuple[str, bool], asyncio.Future[worker_pb2.Ack]],
                         chunks_welcome: asyncio.Future[bool]) -> None:
        """Hand each ack to the submit of its task (by task id: a late ack never lands on another result)."""
        code: grpc.StatusCode | None = None
        try:
            metadata = await call.initial_metadata()
            if not chunks_welcome.done():
                chunks_welcome.set_result(any(k == CHUNKS_KEY and v == CHUNKS_VALUE for k, v in metadata or ()))
            while True:
                ack = await call.read()
                if ack is grpc.aio.EOF:
                    break
                if ack.chunk:  # only refused chunks are acknowledged
                    if ack.task_id not in self.refused_chunks:
                        logger.warning("master refused a chunk: %s; no more chunks for this task", ack.refusal,
                                       extra={"task_id": ack.task_id})
                        self.refused_chunks.add(ack.task_id)
                    continue
                fut = waiting.pop((ack.task_id, ack.received), None)
                if fut is not None and not fut.done():
                    fut.set_result(ack)
                for task_id in ack.also_accepted:  # one Ack for many results the master stored together
                    fut = waiting.pop((task_id, False), None)
                    if fut is not None and not fut.done():
                        fut.set_result(worker_pb2.Ack(accepted=True, task_id=task_id))
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
        except asyncio.CancelledError:
            pass
        if not chunks_welcome.done():
            chunks_welcome.set_result(False)
        # Everything not yet acknowledged on this stream is failed; submit() decides to retry.
        for fut in waiting.values():
            if not fut.done():
                fut.set_exception(StreamBroken(code))
        waiting.clear()
        if self._call is call:
            self._call = None

    async def _submit_once(self, result: worker_pb2.TaskResult) -> worker_pb2.Ack:
        fut: asyncio.Future[worker_pb2.Ack] = asyncio.get_running_loop().create_future()
        async with self._write_lock:
            call = await self._stream()
            waiting = self._waiting
            key = (result.task_id, result.received)
            waiting[key] = fut
            try:
                await call.write(result)
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
                if not fut.done():
                    fut.set_exception(StreamBroken(exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None))
        try:
            return await asyncio.wait_for(fut, self.ack_timeout_s)
        finally:
            if waiting.get(key) is fut:
                del waiting[key]  # timed out: a late ack for it is dropped, not given to another

    async def send_chunk(self, chunk: worker_pb2.TaskResult) -> bool:
        """Write an answer chunk on the result stream without waiting for anything (no retry: the whole answer
        follows as the result); False when it was not written."""
        if chunk.task_id in self.refused_chunks:
            return False
        try:
            call = await self._stream()
            welcome = self._chunks_welcome
            # Not under the write lock: results go on while a new stream's first answer is awaited.
            if welcome is None or not await asyncio.wait_for(asyncio.shield(welcome), CHUNKS_WELCOME_WAIT_S):
                return False  # a master that does not take chunks: the result carries the whole answer
            async with self._write_lock:
                if self._call is not call:
                    return False  # the stream was replaced meanwhile: the result carries the whole answer
                await call.write(chunk)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError, asyncio.TimeoutError):
            return False
        return True

    def forget(self, task_id: str) -> None:
        """The task is done here: forget that its chunks were refused."""
        self.refused_chunks.discard(task_id)

    async def submit(self, result: worker_pb2.TaskResult, deadline: float | None = None) -> bool:
        """True when the master accepted the result; False when it refused it or stayed unreachable.

        An unreachable master (restarting) is retried with back-off (capped at RETRY_MAX_DELAY_S) until `deadline`
        (epoch seconds: the task's own; past it the master has given the task up) or, without one, `attempts`
        times; never after `close()` (the worker stopping)."""
        attempt = 0
        while True:
            if self._closed:
                return False  # the worker stopped while this result waited for a retry
            try:
                ack = await self._submit_once(result)
            except (StreamBroken, asyncio.TimeoutError) as exc:
                code = exc.code if isinstance(exc, StreamBroken) else grpc.StatusCode.DEADLINE_EXCEEDED
                if code is not None and code not in RETRY_CODES:
                    logger.error("result stream refused by the master: %s", code.name, extra={"task_id": result.task_id})
                    return False
                delay = min(RETRY_MAX_DELAY_S, 0.2 * 2**attempt)
                if deadline is not None:
                    delay = min(delay, deadline - time.time())  # one last try at the deadline, not a give-up before it
                attempt += 1
                if not self._may_retry(attempt, deadline, delay):
                    logger.error("result given up after %d tries (%s)", attempt, code.name if code else "stream closed",
                                 extra={"task_id": result.task_id})
                    return False
                logger.warning("result not delivered (%s); retrying in %.1f s",
                               code.name if code else "stream closed", delay, extra={"task_id": result.task_id})
                await asyncio.sleep(delay)
                continue
            if not ack.accepted:
                logger.error("master refused the result: %s", ack.refusal, extra={"task_id": result.task_id})
            return bool(ack.accepted)

    def _may_retry(self, tries: int, deadline: float | None, delay: float) -> bool:
        """Another try after `tries` failed ones and `delay`: before the deadline, or within `attempts` without one."""
        if self._closed:
            return False
        if deadline is None:
            return tries < self.attempts
        return delay > 0

    async def close(self) -> None:
        self._closed = True
        if self._call is not None and not self._call.done():
            await self._call.done_writing()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 2)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
        await self._channel.close()
