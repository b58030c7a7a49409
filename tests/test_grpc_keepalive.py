"""Both ends of the results channel use one keepalive policy: an idle stream gets no GOAWAY too_many_pings."""

from __future__ import annotations

import asyncio

import pytest

from common.rpc import worker_pb2
from master.dispatcher import Dispatcher
from master.registry import WorkerRegistry
from master.results import run_results_server
from tests.pki_helpers import Pki
from worker.results_client import ResultsClient

pytestmark = pytest.mark.integration
IDLE_S = 8.0
TOO_MANY_PINGS = "too_many_pings"  # what gRPC core's client logs (to descriptor 2) on that GOAWAY


def result(n: int) -> worker_pb2.TaskResult:
    return worker_pb2.TaskResult(task_id=f"task-{n}", worker_id="w-ka", token="t" * 43, answer="x")


async def idle_stream(pki: Pki, server_keepalive_s: float) -> None:
    """A result stream left idle for IDLE_S with the client pinging every second, then used again."""
    dispatcher = Dispatcher(WorkerRegistry(30), lambda w, m: True, lambda t, o: None)
    async with run_results_server(dispatcher, pki.tls("master"), keepalive_s=server_keepalive_s) as port:
        client = ResultsClient(f"127.0.0.1:{port}", pki.tls("worker"), "localhost", keepalive_s=1.0, attempts=2)
        try:
            assert await client.submit(result(1)) is False  # refused (unknown task): the stream is open
            await asyncio.sleep(IDLE_S)
            assert await client.submit(result(2)) is False
        finally:
            await client.close()


async def test_idle_stream_gets_no_goaway_when_both_ends_agree(pki: Pki, capfd: pytest.CaptureFixture[str]) -> None:
    """The shared policy (client pings every second, server allows it): no too_many_pings in 8 s idle."""
    await idle_stream(pki, server_keepalive_s=1.0)
    assert TOO_MANY_PINGS not in capfd.readouterr().err


async def test_server_stricter_than_the_client_sends_goaway(pki: Pki, capfd: pytest.CaptureFixture[str]) -> None:
    """Control: a server allowing pings only every 30 s answers the same client with GOAWAY too_many_pings."""
    await idle_stream(pki, server_keepalive_s=60.0)
    assert TOO_MANY_PINGS in capfd.readouterr().err
