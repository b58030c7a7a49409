"""The gRPC ResultService: accepts a result only from a worker certificate, for its own task, with its token."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator

import grpc
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.rpc import worker_pb2, worker_pb2_grpc
from common.tls import TlsFiles, grpc_server_credentials
from master.dispatcher import Dispatcher, ResultRefused

logger = logging.getLogger(__name__)
WORKER_ROLE = "worker"


@functools.lru_cache(maxsize=64)
def peer_is_worker(pem: bytes) -> bool:
    """The (already CA-verified) peer certificate carries clientAuth and the worker role."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    roles = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku and roles == [WORKER_ROLE]


class ResultService(worker_pb2_grpc.ResultServiceServicer):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def _require_worker(self, context: grpc.aio.ServicerContext, what: str) -> None:
        pem = (context.auth_context().get("x509_pem_cert") or [b""])[0]
        if not peer_is_worker(pem):
            logger.warning("%s refused: peer certificate is not a worker's", what)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a worker certificate is required")

    def _check(self, request: worker_pb2.TaskResult) -> ResultRefused | None:
        try:
            self.dispatcher.accept_result(request)
        except ResultRefused as exc:
            logger.warning(
                "result refused: %s", exc.reason, extra={"task_id": request.task_id[:64], "worker_id": request.worker_id[:64]}
            )
            return exc
        return None

    async def SubmitResult(  # noqa: N802 (gRPC method name)
        self, request: worker_pb2.TaskResult, context: grpc.aio.ServicerContext
    ) -> worker_pb2.Ack:
        await self._require_worker(context, f"result for task {request.task_id[:64]}")
        refused = self._check(request)
        if refused is not None:
            await context.abort(getattr(grpc.StatusCode, refused.status), refused.reason)
        return worker_pb2.Ack(accepted=True, task_id=request.task_id)

    async def StreamResults(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        await self._require_worker(context, "result stream")
        while True:
            request = await context.read()
            if request is grpc.aio.EOF:
                return
            refused = self._check(request)
            await context.write(
                worker_pb2.Ack(accepted=refused is None, task_id=request.task_id,
                               refusal=refused.status if refused else "")
            )


@contextlib.asynccontextmanager
async def run_results_server(
    dispatcher: Dispatcher, tls: TlsFiles, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[int]:
    """Serve ResultService with mutual TLS; yields the bound port."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    worker_pb2_grpc.add_ResultServiceServicer_to_server(ResultService(dispatcher), server)
    bound = server.add_secure_port(f"{host}:{port}", grpc_server_credentials(tls))
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}: is the port in use?")
    await server.start()
    logger.info("gRPC results server (mutual TLS) on %s:%d", host, bound)
    try:
        yield bound
    finally:
        await server.stop(grace=2)
