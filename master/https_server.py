"""The HTTPS listener of the chat: an ASGI app served by uvicorn with our TLS context on a socket we bind."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import uvicorn

from common.tls import TlsFiles, server_context
from master.tls_read_buffer import shrink_tls_read_buffer

# uvicorn's WebSocket implementation: wsproto kept less memory per connection than websockets'
# and was not slower (docs/BENCHMARKS.md, issue 10).
WEBSOCKET_IMPLEMENTATION = "wsproto"
GRACEFUL_S = 2.0


class _Server(uvicorn.Server):
    """uvicorn inside a service that owns SIGTERM/SIGINT (common/service_main.py): it takes no signal handler."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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
    return sock


def _config(app: Any, context: ssl.SSLContext, max_message_bytes: int) -> uvicorn.Config:
    def our_context(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return context

    return uvicorn.Config(
        app,
        # The one server context of common/tls.py (ALPN http/1.1 only). HTTP/1.1 only: Chromium
        # over h2 opens the WebSocket with RFC 8441 extended CONNECT, which engineio refuses.
        ssl_context_factory=our_context,
        http="h11",
        ws=WEBSOCKET_IMPLEMENTATION,
        # No permessage-deflate: zlib state per connection and a compression side channel (DESIGN.md).
        ws_per_message_deflate=False,
        # A larger message closes the connection with 1009 before it is buffered whole.
        ws_max_size=max_message_bytes,
        # Engine.IO pings every client itself; a second ping at the WebSocket level buys nothing.
        ws_ping_interval=None,
        ws_ping_timeout=None,
        log_config=None,  # our logging is configured once in __main__ (common/logsetup.py)
        access_log=False,  # request lines can carry tokens; our own logs say what matters
        # uvicorn logs each WebSocket upgrade with client address and query string at INFO, an
        # access log by another name: warnings and errors only.
        log_level="warning",
        proxy_headers=False,  # nothing proxies the master: never take a client address from a header
        server_header=False,
        backlog=1024,
        timeout_graceful_shutdown=int(GRACEFUL_S),
    )


@contextlib.asynccontextmanager
async def serve_https(app: Any, tls: TlsFiles, host: str, port: int, max_message_bytes: int) -> AsyncIterator[int]:
    """uvicorn with TLS on a socket we bind (so port 0 works); yields the bound port."""
    context = server_context(tls)
    shrink_tls_read_buffer()
    sock = _listen(host, port)
    server = _Server(_config(app, context, max_message_bytes))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                serving.result()  # raises what stopped it
                raise OSError(f"the HTTPS server on {host}:{port} stopped while starting")
            await asyncio.sleep(0.01)
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(serving, timeout=GRACEFUL_S + 3)
        sock.close()
