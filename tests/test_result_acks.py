"""Accepted results are acknowledged after the store has them: in batches for a worker that asks, one by one otherwise."""

from __future__ import annotations

import grpc
import pytest

from common.result_stream import BATCH_ACKS_KEY, BATCH_ACKS_VALUE
from common.rpc import worker_pb2, worker_pb2_grpc
from common.tls import grpc_channel_credentials
from devstack.local_broker import RunningBroker
from tests.conftest import Pki
from tests.stack_helpers import chat_client, local_stack, wait_until

pytestmark = pytest.mark.integration
QUESTIONS = 8


@pytest.mark.parametrize("batched", [True, False], ids=["batch-metadata", "no-metadata"])
async def test_accepted_results_are_acknowledged_once_each(pki: Pki, broker: RunningBroker, batched: bool) -> None:
    """8 results written at once: with `aisys-acks: batch` fewer than 8 Acks cover all 8 ids, without it 8 Acks."""
    async with local_stack(pki, broker, workers=1, capacity=QUESTIONS,
                           worker_overrides={"echo_latency_s": 60, "drain_timeout_s": 0.1}) as stack:
        async with chat_client(pki, stack.url, cookie=stack.cookie) as client:
            ids = [(await client.ask(f"q{i}"))["task_id"] for i in range(QUESTIONS)]
            d = stack.master.dispatcher
            await wait_until(lambda: all(d.tasks[t].worker_id is not None for t in ids), what="assignment")
            creds = grpc_channel_credentials(pki.tls("worker"))
            async with grpc.aio.secure_channel(f"127.0.0.1:{stack.master.grpc_port}", creds,
                                               options=[("grpc.ssl_target_name_override", "localhost")]) as ch:
                metadata = ((BATCH_ACKS_KEY, BATCH_ACKS_VALUE),) if batched else ()
                call = worker_pb2_grpc.ResultServiceStub(ch).StreamResults(metadata=metadata, timeout=10)
                for t in ids:
                    task = d.tasks[t]
                    await call.write(worker_pb2.TaskResult(task_id=t, worker_id=task.worker_id or "", token=task.token,
                                                           answer=f"answer {t}"))
                acked: list[str] = []
                messages = 0
                while len(acked) < QUESTIONS:
                    ack = await call.read()
                    assert ack is not grpc.aio.EOF, f"stream ended with {len(acked)} of {QUESTIONS} acknowledged"
                    assert ack.accepted and not ack.received
                    messages += 1
                    acked += [ack.task_id, *ack.also_accepted]
                await call.done_writing()
            assert sorted(acked) == sorted(ids)
            assert messages < QUESTIONS if batched else messages == QUESTIONS
            answers = {(await client.next_response())["task_id"] for _ in ids}
            assert answers == set(ids)
