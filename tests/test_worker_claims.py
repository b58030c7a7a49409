"""What the master believes of workers: readiness, draining, and the limits on a worker's claims."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.messages import StatusMessage, encode, parse_task
from common.tls import grpc_channel_credentials
from common.topics import Topics
from devstack.local_broker import RunningBroker
from master.results import RESULT_SERVICE
from tests.mqtt_helpers import BlockingClient
from tests.pki_helpers import Pki
from tests.stack_helpers import ChatClient, https_session, local_stack, wait_until

pytestmark = pytest.mark.integration


async def test_readyz_needs_a_live_worker_and_healthz_does_not(pki: Pki, broker: RunningBroker) -> None:
    """With no worker /readyz is 503 (workers false) while /healthz is 200; with one worker /readyz is 200."""
    async with local_stack(pki, broker, workers=0) as stack, https_session(pki.tls()) as http:
        async with http.get(stack.url + "/readyz") as resp:
            body = await resp.json()
            assert resp.status == 503 and body["checks"] == {"mqtt": True, "grpc": True, "store": True, "workers": False}
        async with http.get(stack.url + "/healthz") as resp:
            assert resp.status == 200
    async with local_stack(pki, broker, workers=1) as stack, https_session(pki.tls()) as http:
        async with http.get(stack.url + "/readyz") as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "ready"


@pytest.mark.parametrize("service", ["", RESULT_SERVICE])
async def test_grpc_health_service_says_serving_over_mutual_tls(pki: Pki, broker: RunningBroker, service: str) -> None:
    """The standard grpc.health.v1 Check on the results port answers SERVING to a worker certificate."""
    async with local_stack(pki, broker, workers=0) as stack:
        options = [("grpc.ssl_target_name_override", "localhost")]
        async with grpc.aio.secure_channel(f"127.0.0.1:{stack.master.grpc_port}",
                                           grpc_channel_credentials(pki.tls("worker")), options=options) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                                    timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_draining_worker_gets_no_task_after_it_said_so(pki: Pki, broker: RunningBroker) -> None:
    """A worker told to stop says draining: every question asked after that goes to the other worker, and all are answered."""
    async with local_stack(pki, broker, workers=2, capacity=4, worker_overrides={"echo_latency_s": 0.5}) as stack:
        leaving, staying = stack.workers
        registry = stack.master.dispatcher.registry
        client = ChatClient(pki, cookie=stack.cookie)
        await client.connect(stack.url)
        try:
            drain = asyncio.create_task(leaving.drain(timeout=10))
            await wait_until(lambda: registry.workers[leaving.settings.worker_id].state == "draining", what="draining")
            before = set(registry.workers[leaving.settings.worker_id].assigned)
            acks = [await client.ask(f"after draining {i}") for i in range(6)]
            assert all("task_id" in a for a in acks)
            assert registry.workers[leaving.settings.worker_id].assigned <= before
            answers = [await client.next_response(timeout=15) for _ in acks]
            assert {a["task_id"] for a in answers} == {a["task_id"] for a in acks}
            await drain
        finally:
            await client.close()


async def test_fake_worker_claiming_1024_slots_is_capped_and_backed_off(pki: Pki, broker: RunningBroker) -> None:
    """A worker credential claiming 1,024 slots, never confirming: capped, its tasks re-leased, backed off; all answered."""
    overrides = {"max_worker_capacity": 2, "lease_s": 1.0, "worker_backoff_s": 60}
    async with local_stack(pki, broker, workers=1, capacity=2, master_overrides=overrides) as stack:
        registry = stack.master.dispatcher.registry
        fake_id = f"fake-{stack.master.web_port}"
        topics = Topics("upb")
        fake = BlockingClient(broker.port, fake_id, "worker", pki.password("worker"), pki.tls())
        try:
            fake.subscribe(topics.tasks(fake_id))
            claim = StatusMessage(state="idle", capacity=1024, free_slots=1024, models=("echo",))
            fake.publish(topics.status(fake_id), encode(claim))
            await wait_until(lambda: fake_id in registry.workers, what="the fake worker registered")
            assert registry.workers[fake_id].capacity == 2
            client = ChatClient(pki, cookie=stack.cookie)
            await client.connect(stack.url)
            try:
                acks = await asyncio.gather(*(client.ask(f"q{i}") for i in range(8)))  # all in flight at once
                results = [await client.next_response(timeout=15) for _ in acks]
            finally:
                await client.close()
            fake.barrier()
            taken_by_fake = [parse_task(m.payload).task_id for m in fake.received_so_far()]
            assert 0 < len(taken_by_fake) <= 2  # at most its capped slots, then backed off
            # The fake never confirmed them: after the lease they went to the real worker. All 8 answered.
            assert [r["event"] for r in results] == ["ai-response"] * 8
            assert registry.workers[fake_id].free_slots == 0
        finally:
            fake.close()
