"""The transport floor: MQTT-over-TLS publish -> subscriber -> gRPC mutual-TLS reply, nothing else.

Same broker, same TLS material, same MQTT client (aiomqtt through `common.mqtt_connect`, with the
master's non-blocking publish hand-off) and credentials as the system, but no queue, registry,
validation, web or Socket.IO; unary gRPC replies. The responder runs in its own process, as a
worker does: `python -m bench.floor responder` (started by `measure_floor`).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc

from bench.load import Results
from devstack.broker_config import REPO_ROOT
from common.mqtt_connect import BrokerAddress, MqttSession, new_client
from common.rpc import worker_pb2, worker_pb2_grpc
from common.tls import TlsFiles, grpc_channel_credentials, grpc_server_credentials

TOPIC = "upb/workers/floor-1/tasks"


class _Collector(worker_pb2_grpc.ResultServiceServicer):
    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[None]] = {}

    async def SubmitResult(self, request: worker_pb2.TaskResult, context: grpc.aio.ServicerContext) -> worker_pb2.Ack:  # noqa: N802
        fut = self.waiting.pop(request.task_id, None)
        if fut is not None and not fut.done():
            fut.set_result(None)
        return worker_pb2.Ack(accepted=True)


async def _responder(mqtt_port: int, grpc_port: int, pki: Path, creds: Path) -> None:
    loop = asyncio.get_running_loop()
    channel = grpc.aio.secure_channel(
        f"127.0.0.1:{grpc_port}",
        grpc_channel_credentials(TlsFiles(ca=pki / "ca.crt", cert=pki / "worker.crt", key=pki / "worker.key")),
        options=[("grpc.ssl_target_name_override", "localhost")],
    )
    stub = worker_pb2_grpc.ResultServiceStub(channel)
    async def reply(payload: bytes) -> None:
        task = json.loads(payload)
        await stub.SubmitResult(worker_pb2.TaskResult(task_id=task["task_id"], worker_id="floor-1", answer=task["prompt"]))

    address = BrokerAddress("127.0.0.1", mqtt_port)
    client = new_client("floor-1", "worker", (creds / "mqtt_worker_password").read_text().strip(),
                        TlsFiles(ca=pki / "ca.crt"), address)
    mqtt = MqttSession(client, address, subscription=TOPIC,
                       on_message=lambda m: loop.create_task(reply(m.payload)))  # type: ignore[arg-type]
    mqtt.start()
    await mqtt.connected.wait()
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    await mqtt.stop()
    await channel.close()


async def _first_round_trip(publisher: MqttSession, collector: _Collector) -> None:
    """Repeat one message until it comes back: one full round trip before measuring (the first
    message can still reach nobody if the machine is slow to settle the responder's subscription)."""
    loop = asyncio.get_running_loop()
    for attempt in range(60):
        task_id = f"first-{attempt}"
        fut: asyncio.Future[None] = loop.create_future()
        collector.waiting[task_id] = fut
        publisher.publish_nowait(TOPIC, json.dumps({"task_id": task_id, "prompt": "floor"}).encode())
        try:
            await asyncio.wait_for(asyncio.shield(fut), 0.5)
            return
        except asyncio.TimeoutError:
            continue
    raise RuntimeError("the floor responder never answered: see its output above")


async def measure_floor(
    mqtt_port: int, pki: Path, creds: Path, in_flight: int, duration_s: float, warmup_s: float = 1.0
) -> tuple[Results, int]:
    """Closed loop with `in_flight` messages outstanding; returns the results and the responder's PID."""
    collector = _Collector()
    server = grpc.aio.server()
    worker_pb2_grpc.add_ResultServiceServicer_to_server(collector, server)
    tls = TlsFiles(ca=pki / "ca.crt", cert=pki / "master.crt", key=pki / "master.key")
    grpc_port = server.add_secure_port("127.0.0.1:0", grpc_server_credentials(tls))
    await server.start()
    responder = subprocess.Popen(
        [sys.executable, "-m", "bench.floor", "responder", str(mqtt_port), str(grpc_port), str(pki), str(creds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    loop = asyncio.get_running_loop()
    address = BrokerAddress("127.0.0.1", mqtt_port)
    publisher = new_client("floor-master", "master", (creds / "mqtt_master_password").read_text().strip(),
                           TlsFiles(ca=pki / "ca.crt"), address)
    publisher_loop = MqttSession(publisher, address)
    publisher_loop.start()
    try:
        await asyncio.wait_for(publisher_loop.connected.wait(), 10)
        assert responder.stdout is not None
        line = await asyncio.wait_for(loop.run_in_executor(None, responder.stdout.readline), 20)
        if line.strip() != b"ready":
            raise RuntimeError("the floor responder did not start")
        await _first_round_trip(publisher_loop, collector)
        results = Results()
        counter = iter(range(10**9))
        stop_at = time.perf_counter() + warmup_s + duration_s
        measure_from = time.perf_counter() + warmup_s

        async def lane() -> None:
            while time.perf_counter() < stop_at:
                task_id = str(next(counter))
                fut: asyncio.Future[None] = loop.create_future()
                collector.waiting[task_id] = fut
                start = time.perf_counter()
                publisher_loop.publish_nowait(TOPIC, json.dumps({"task_id": task_id, "prompt": "floor"}).encode())
                await asyncio.wait_for(fut, 30)
                if time.perf_counter() >= measure_from:
                    results.done += 1
                    results.latencies_ms.append((time.perf_counter() - start) * 1000)

        await asyncio.gather(*(lane() for _ in range(in_flight)))
        results.elapsed_s = time.perf_counter() - measure_from
        return results, responder.pid
    finally:
        await publisher_loop.stop()
        if responder.stdin:
            responder.stdin.close()
        try:
            responder.wait(10)
        except subprocess.TimeoutExpired:
            responder.kill()
            responder.wait()
        await server.stop(0)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "responder":
        asyncio.run(_responder(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])))
    else:
        sys.exit("usage: python -m bench.floor responder MQTT_PORT GRPC_PORT PKI_DIR CREDS_DIR")
