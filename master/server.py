"""Run the whole master in one asyncio loop: HTTPS + Socket.IO, gRPC results, MQTT dispatch."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.protocol import ws_stream

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
STATS_INTERVAL_S = 30.0
# asyncio's SSLProtocol (CPython 3.11) allocates and zero-fills a 256 KiB read buffer per TLS
# connection: 1,000 idle chat connections cost about 290 MB. The buffer only sizes each
# recv() (the read loop drains the socket until empty), and chat frames are small, so 2 KiB
# loses nothing. Measured in docs/BENCHMARKS.md (connection scale).
TLS_READ_BUFFER = 2 * 1024


def _shrink_tls_read_buffer() -> None:
    protocol = getattr(asyncio.sslproto, "SSLProtocol", None)
    if protocol is not None and getattr(protocol, "max_size", 0) > TLS_READ_BUFFER:
        protocol.max_size = TLS_READ_BUFFER


def _refuse_websocket_compression() -> None:
    """Accept no WebSocket extension offer, so never permessage-deflate.

    Every browser offers permessage-deflate and hypercorn accepts it, with no setting to refuse:
    the zlib state per connection took 1,000 browser-like connections from 150 to 250 MB of
    master RSS (docs/BENCHMARKS.md), compressing attacker-influenced text together with other
    content on one stream is the CRIME/BREACH class of leak, and chat frames are small anyway.
    The offer is dropped before hypercorn's handshake reads it (the ASGI scope keeps the
    header); tests/test_web_security.py fails if a hypercorn upgrade undoes this.
    """
    handshake: Any = ws_stream.Handshake
    if getattr(handshake, "offers_ignored", False):
        return
    read_headers = handshake.__init__

    def without_extension_offers(self: Any, headers: list[tuple[bytes, bytes]], http_version: str) -> None:
        read_headers(self, [(n, v) for n, v in headers if n.lower() != b"sec-websocket-extensions"], http_version)

    handshake.__init__ = without_extension_offers
    handshake.offers_ignored = True


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
async def serve_https(app: Any, tls: TlsFiles, host: str, port: int, max_message_bytes: int) -> AsyncIterator[int]:
    """hypercorn with TLS on a socket we bind (so port 0 works); yields the bound port."""
    tls.check()
    _shrink_tls_read_buffer()
    _refuse_websocket_compression()
    sock = _listen(host, port)
    config = Config()
    # hypercorn closes the descriptor it is given: give it a duplicate, keep ours for getsockname/close.
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.certfile = str(tls.cert)
    config.keyfile = str(tls.key)
    config.accesslog = None  # request lines can carry tokens; our own logs say what matters
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 2
    # hypercorn buffers a whole WebSocket message (16 MiB by default) before engineio sees it.
    config.websocket_max_message_size = max_message_bytes
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
