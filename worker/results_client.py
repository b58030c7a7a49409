"""Send results to the master over one long-lived mutual-TLS gRPC channel."""

from __future__ import annotations

import asyncio
import logging

import grpc

from common.rpc import worker_pb2, worker_pb2_grpc
from common.tls import TlsFiles, grpc_channel_credentials

logger = logging.getLogger(__name__)

# Retried while the master is restarting or unreachable; refusals are final.
RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class ResultsClient:
    def __init__(
        self, endpoint: str, tls: TlsFiles, server_name: str, *, attempts: int = 6, call_timeout_s: float = 10.0
    ) -> None:
        options = [
            ("grpc.ssl_target_name_override", server_name),
            ("grpc.default_authority", server_name),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
        self._channel = grpc.aio.secure_channel(endpoint, grpc_channel_credentials(tls), options=options)
        self._stub = worker_pb2_grpc.ResultServiceStub(self._channel)
        self.endpoint = endpoint
        self.attempts = attempts
        self.call_timeout_s = call_timeout_s

    async def submit(self, result: worker_pb2.TaskResult) -> bool:
        """True when the master accepted the result; False when it refused it or stayed unreachable."""
        for attempt in range(self.attempts):
            try:
                ack = await self._stub.SubmitResult(result, timeout=self.call_timeout_s)
                return bool(ack.accepted)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in RETRY_CODES and attempt + 1 < self.attempts:
                    delay = min(5.0, 0.2 * 2**attempt)
                    logger.warning(
                        "result for task %s not delivered (%s); retrying in %.1f s",
                        result.task_id, exc.code().name, delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                logger.error("master refused result for task %s: %s %s", result.task_id, exc.code().name, exc.details())
                return False
        return False

    async def close(self) -> None:
        await self._channel.close()
