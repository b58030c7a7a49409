"""Run the whole master in one asyncio loop: HTTPS + Socket.IO, gRPC results, MQTT dispatch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from common.mqtt_connect import BrokerAddress
from common.secret_files import read_secret
from common.tls import TlsFiles
from common.topics import Topics
from master.bus import MasterBus
from master.dispatcher import Dispatcher
from master.registry import WorkerRegistry
from master.results import run_results_server
from master.settings import MasterSettings
from master.web import ChatWeb

logger = logging.getLogger(__name__)
SWEEP_INTERVAL_S = 1.0


@dataclass
class RunningMaster:
    web_port: int
    grpc_port: int
    dispatcher: Dispatcher
    web: ChatWeb
    bus: MasterBus


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen for HTTPS on {host}:{port}: {exc.strerror} (WEB_HOST/WEB_PORT)") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


@contextlib.asynccontextmanager
async def serve_https(app: Any, tls: TlsFiles, host: str, port: int) -> AsyncIterator[int]:
    """hypercorn with TLS on a socket we bind (so port 0 works); yields the bound port."""
    tls.check()
    sock = _listen(host, port)
    config = Config()
    # hypercorn closes the descriptor it is given: give it a duplicate, keep ours for getsockname/close.
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.certfile = str(tls.cert)
    config.keyfile = str(tls.key)
    config.accesslog = None  # request lines can carry tokens; our own logs say what matters
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 2
    # HTTP/1.1 only: Chromium over h2 opens the WebSocket with RFC 8441 extended CONNECT, which
    # engineio refuses ("Invalid websocket upgrade"); tests/test_browser.py shows the chat works so.
    config.alpn_protocols = ["http/1.1"]
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(server, timeout=5)
        sock.close()


async def _sweep(dispatcher: Dispatcher) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        dispatcher.sweep()


@contextlib.asynccontextmanager
async def run_master(settings: MasterSettings) -> AsyncIterator[RunningMaster]:
    """Start every part of the master; yields once all listen; stops them all on exit."""
    password = read_secret("MQTT_PASSWORD_FILE", settings.mqtt_password_file)
    tls = settings.tls()
    tls.check()
    loop = asyncio.get_running_loop()
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
        Topics(settings.topic_prefix), loop, dispatcher.on_status, dispatcher.pump,
    )
    bus_ref.append(bus)
    web.mqtt_connected = bus.connected.is_set
    async with run_results_server(dispatcher, tls, settings.grpc_host, settings.grpc_port) as grpc_port:
        async with serve_https(web.asgi, tls, settings.web_host, settings.web_port) as web_port:
            bus.start()
            sweeper = asyncio.create_task(_sweep(dispatcher))
            logger.info("master up: HTTPS on %s:%d, gRPC on %d", settings.web_host, web_port, grpc_port)
            try:
                yield RunningMaster(web_port, grpc_port, dispatcher, web, bus)
            finally:
                sweeper.cancel()
                await asyncio.to_thread(bus.stop)
