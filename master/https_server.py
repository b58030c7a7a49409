"""The HTTPS listener of the chat: an ASGI app served with TLS on a socket we bind (port 0 works)."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.protocol import ws_stream

from common.tls import TlsFiles

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
