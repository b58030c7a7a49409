"""Run the whole master in one asyncio loop: HTTPS + Socket.IO, gRPC results, MQTT dispatch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import socketio

from common.mqtt_connect import BrokerAddress
from common.topics import Topics
from master.bus import MasterBus
from master.chat_events import ChatEvents, create_socketio
from master.delivery import Delivery, DeliveryStats
from master.dispatcher import Dispatcher
from master.health import HealthCheck
from master.http_app import create_http_app
from master.https_server import serve_https
from master.registry import WorkerRegistry
from master.results import run_results_server
from master.security_headers import SecurityHeaders
from master.settings import MasterSettings
from master.static_files import StaticFiles

logger = logging.getLogger(__name__)
SWEEP_INTERVAL_S = 1.0
STATS_INTERVAL_S = 30.0


@dataclass
class RunningMaster:
    settings: MasterSettings
    web_port: int
    grpc_port: int
    dispatcher: Dispatcher
    bus: MasterBus


async def _sweep(dispatcher: Dispatcher, stats: DeliveryStats) -> None:
    """Once a second: expire silent workers and overdue tasks; every 30 s: one INFO summary line."""
    ticks = 0
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        dispatcher.sweep()
        ticks += 1
        if ticks * SWEEP_INTERVAL_S >= STATS_INTERVAL_S:
            stats.log_and_reset(ticks * SWEEP_INTERVAL_S, dispatcher.queued, dispatcher.registry.live_count())
            ticks = 0


@contextlib.asynccontextmanager
async def run_master(settings: MasterSettings) -> AsyncIterator[RunningMaster]:
    """The composition root: build every part in dependency order, start them, stop them all on exit."""
    password = settings.mqtt_password()
    tls = settings.tls()
    tls.check()
    sio = create_socketio(settings)
    delivery = Delivery(sio)
    bus = MasterBus(password, settings.mqtt_tls(), BrokerAddress(settings.mqtt_host, settings.mqtt_port),
                    Topics(settings.topic_prefix))
    dispatcher = Dispatcher(
        WorkerRegistry(settings.worker_timeout_s),
        publish=bus.publish_task,
        deliver=delivery.deliver,
        task_timeout_s=settings.task_timeout_s,
        max_attempts=settings.max_attempts,
        max_queue=settings.max_queue,
    )
    ChatEvents(sio, dispatcher, settings)
    http = create_http_app(StaticFiles(), HealthCheck(lambda: bus.connected, dispatcher).report,
                           secret_key=settings.session_secret())
    asgi = SecurityHeaders(socketio.ASGIApp(sio, other_asgi_app=http))
    async with run_results_server(dispatcher, tls, settings.grpc_host, settings.grpc_port) as grpc_port:
        async with serve_https(asgi, tls, settings.web_host, settings.web_port, settings.max_message_bytes) as web_port:
            bus.start(on_status=dispatcher.on_status, on_connected=dispatcher.pump)
            sweeper = asyncio.create_task(_sweep(dispatcher, delivery.stats))
            logger.info("master up: HTTPS on %s:%d, gRPC on %d", settings.web_host, web_port, grpc_port)
            try:
                yield RunningMaster(settings, web_port, grpc_port, dispatcher, bus)
            finally:
                sweeper.cancel()
                await bus.stop()
