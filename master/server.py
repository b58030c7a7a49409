"""Run the whole master in one asyncio loop: HTTPS + Socket.IO, gRPC results, MQTT dispatch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from common.mqtt_connect import BrokerAddress
from common.secret_files import read_secret
from common.tls import TlsFiles
from common.topics import Topics
from master.bus import MasterBus
from master.dispatcher import Dispatcher
from master.https_server import serve_https
from master.registry import WorkerRegistry
from master.results import run_results_server
from master.settings import MasterSettings
from master.web import ChatWeb

logger = logging.getLogger(__name__)
SWEEP_INTERVAL_S = 1.0
STATS_INTERVAL_S = 30.0


@dataclass
class RunningMaster:
    web_port: int
    grpc_port: int
    dispatcher: Dispatcher
    web: ChatWeb
    bus: MasterBus


async def _sweep(dispatcher: Dispatcher, web: ChatWeb) -> None:
    """Once a second: expire silent workers and overdue tasks; every 30 s: one INFO summary line."""
    ticks = 0
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        dispatcher.sweep()
        ticks += 1
        if ticks * SWEEP_INTERVAL_S >= STATS_INTERVAL_S:
            live = sum(w.state != "offline" for w in dispatcher.registry.workers.values())
            web.stats.log_and_reset(ticks * SWEEP_INTERVAL_S, dispatcher.queued, live)
            ticks = 0



@contextlib.asynccontextmanager
async def run_master(settings: MasterSettings) -> AsyncIterator[RunningMaster]:
    """Start every part of the master; yields once all listen; stops them all on exit."""
    password = read_secret("MQTT_PASSWORD_FILE", settings.mqtt_password_file)
    tls = settings.tls()
    tls.check()
    web = ChatWeb(settings)
    registry = WorkerRegistry(settings.worker_timeout_s)
    bus_ref: list[MasterBus] = []
    dispatcher = Dispatcher(
        registry,
        publish=lambda worker_id, task: bus_ref[0].publish_task(worker_id, task),
        deliver=web.deliver,
        task_timeout_s=settings.task_timeout_s,
        max_attempts=settings.max_attempts,
        max_queue=settings.max_queue,
    )
    web.dispatcher = dispatcher
    bus = MasterBus(
        password, settings.mqtt_tls(), BrokerAddress(settings.mqtt_host, settings.mqtt_port),
        Topics(settings.topic_prefix), dispatcher.on_status, dispatcher.pump,
    )
    bus_ref.append(bus)
    web.mqtt_connected = lambda: bus.connected
    async with run_results_server(dispatcher, tls, settings.grpc_host, settings.grpc_port) as grpc_port:
        async with serve_https(web.asgi, tls, settings.web_host, settings.web_port, web.max_message_bytes) as web_port:
            bus.start()
            sweeper = asyncio.create_task(_sweep(dispatcher, web))
            logger.info("master up: HTTPS on %s:%d, gRPC on %d", settings.web_host, web_port, grpc_port)
            try:
                yield RunningMaster(web_port, grpc_port, dispatcher, web, bus)
            finally:
                sweeper.cancel()
                await bus.stop()
