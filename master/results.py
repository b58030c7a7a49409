"""The gRPC ResultService: accepts a result only from a worker certificate, for its own task, with its token.

This is the gRPC edge of the dispatcher: it turns messages into plain `WorkerResult`s and the
dispatcher's refusals into gRPC status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from common.cert_roles import is_worker_certificate
from common.grpc_keepalive import KEEPALIVE_S, server_options
from common.result_stream import BATCH_ACKS_KEY, BATCH_ACKS_VALUE, CHUNKS_KEY, CHUNKS_VALUE, MAX_IDS_PER_ACK
from common.rpc import worker_pb2, worker_pb2_grpc
from common.tls import TlsFiles, grpc_server_credentials
from master.dispatcher import Dispatcher, Refusal, ResultRefused, WorkerResult
from master.metrics import RESULTS_REFUSED

logger = logging.getLogger(__name__)
RESULT_SERVICE = worker_pb2.DESCRIPTOR.services_by_name["ResultService"].full_name

REFUSAL_STATUS: dict[Refusal, grpc.StatusCode] = {
    Refusal.UNKNOWN_TASK: grpc.StatusCode.NOT_FOUND,
    Refusal.NOT_ASSIGNED: grpc.StatusCode.PERMISSION_DENIED,
    Refusal.WRONG_TOKEN: grpc.StatusCode.PERMISSION_DENIED,
}


def result_from_message(message: worker_pb2.TaskResult) -> WorkerResult:
    """The plain result the dispatcher checks, from its wire form."""
    if message.HasField("error"):
        return WorkerResult(message.task_id, message.worker_id, message.token, message.model,
                            error_code=message.error.code, error_message=message.error.message)
    return WorkerResult(message.task_id, message.worker_id, message.token, message.model, answer=message.answer)


class ResultService(worker_pb2_grpc.ResultServiceServicer):
    def __init__(self, dispatcher: Dispatcher, durable: Callable[[], Awaitable[object]] | None = None) -> None:
        self.dispatcher = dispatcher
        # Awaited before an accepted result is acknowledged: its answer is in the store by then.
        self.durable = durable

    async def _require_worker(self, context: grpc.aio.ServicerContext, what: str) -> None:
        pem = (context.auth_context().get("x509_pem_cert") or [b""])[0]
        if not is_worker_certificate(pem):
            RESULTS_REFUSED.labels("role").inc()
            logger.warning("%s refused: peer certificate is not a worker's", what)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a worker certificate is required")

    def _check(self, request: worker_pb2.TaskResult) -> Refusal | None:
        """Hand the result (or the receipt) to the dispatcher; why it was refused, or None when accepted."""
        try:
            if request.WhichOneof("outcome") == "chunk":
                self.dispatcher.accept_chunk(request.task_id, request.worker_id, request.token, request.chunk)
            elif request.received:
                self.dispatcher.acknowledge(request.task_id, request.worker_id, request.token)
            else:
                self.dispatcher.accept_result(result_from_message(request))
        except ResultRefused as exc:
            RESULTS_REFUSED.labels(exc.refusal.name.lower()).inc()
            logger.warning(
                "result refused: %s", exc.refusal.value,
                extra={"task_id": request.task_id[:64], "worker_id": request.worker_id[:64]},
            )
            return exc.refusal
        return None

    async def SubmitResult(  # noqa: N802 (gRPC method name)
        self, request: worker_pb2.TaskResult, context: grpc.aio.ServicerContext
    ) -> worker_pb2.Ack:
        await self._require_worker(context, f"result for task {request.task_id[:64]}")
        refused = self._check(request)
        if refused is not None:
            await context.abort(REFUSAL_STATUS[refused], refused.value)
        chunk = request.WhichOneof("outcome") == "chunk"
        if self.durable is not None and not request.received and not chunk:
            await self.durable()
        return worker_pb2.Ack(accepted=True, task_id=request.task_id, received=request.received, chunk=chunk,
                              seq=request.seq if chunk else 0)

    async def StreamResults(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        await self._require_worker(context, "result stream")
        await context.send_initial_metadata(((CHUNKS_KEY, CHUNKS_VALUE),))  # chunks welcome on this stream
        writing = asyncio.Lock()  # one write at a time on a stream
        batched = any(k == BATCH_ACKS_KEY and v == BATCH_ACKS_VALUE for k, v in context.invocation_metadata() or ())
        accepted: list[str] = []  # results accepted and not yet acknowledged (waiting for the store)
        releaser: asyncio.Task[None] | None = None

        async def write(message: worker_pb2.Ack) -> None:
            async with writing:
                await context.write(message)

        async def release_accepted() -> None:
            """Acknowledge accepted results once the store has them: one write for all the store's write
            covered (`also_accepted`), or one per result for a worker that did not ask for batches."""
            while accepted:
                ids = accepted[:MAX_IDS_PER_ACK]
                del accepted[:MAX_IDS_PER_ACK]
                if self.durable is not None:
                    await self.durable()  # everything reported before this call, `ids` included
                if batched:
                    await write(worker_pb2.Ack(accepted=True, task_id=ids[0], also_accepted=ids[1:]))
                else:
                    for task_id in ids:
                        await write(worker_pb2.Ack(accepted=True, task_id=task_id))

        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                request = await context.read()
                if request is grpc.aio.EOF:
                    break
                refused = self._check(request)
                if request.WhichOneof("outcome") == "chunk":
                    if refused is not None:  # an accepted chunk is not acknowledged
                        await write(worker_pb2.Ack(accepted=False, task_id=request.task_id, chunk=True, seq=request.seq,
                                                   refusal=REFUSAL_STATUS[refused].name))
                    continue
                if refused is None and not request.received:
                    accepted.append(request.task_id)
                    if releaser is None or releaser.done():
                        releaser = asyncio.create_task(release_accepted())
                    continue
                message = worker_pb2.Ack(accepted=refused is None, task_id=request.task_id, received=request.received,
                                         refusal=REFUSAL_STATUS[refused].name if refused is not None else "")
                task = asyncio.create_task(write(message))  # acks are matched by task id: they may overtake
                pending.add(task)
                task.add_done_callback(pending.discard)
            if releaser is not None:
                pending.add(releaser)
            if pending:
                await asyncio.gather(*pending)
        finally:
            for task in pending | ({releaser} if releaser is not None else set()):
                task.cancel()


@contextlib.asynccontextmanager
async def run_results_server(
    dispatcher: Dispatcher, tls: TlsFiles, host: str = "127.0.0.1", port: int = 0, keepalive_s: float = KEEPALIVE_S,
    durable: Callable[[], Awaitable[object]] | None = None,
) -> AsyncIterator[int]:
    """Serve ResultService with mutual TLS; yields the bound port. `durable()` is awaited before each accepted
    result is acknowledged (the store's flush)."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0), *server_options(keepalive_s)])
    worker_pb2_grpc.add_ResultServiceServicer_to_server(ResultService(dispatcher, durable), server)
    # The standard health service (grpc.health.v1), behind the same mutual TLS as the results.
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_secure_port(f"{host}:{port}", grpc_server_credentials(tls))
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}: is the port in use?")
    await server.start()
    for service in ("", RESULT_SERVICE):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    logger.info("gRPC results server (mutual TLS) on %s:%d", host, bound)
    try:
        yield bound
    finally:
        await health_servicer.enter_graceful_shutdown()
        await server.stop(grace=2)
