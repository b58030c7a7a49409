"""The 2 KiB TLS read buffer of master/tls_read_buffer.py is in effect on the connections the web server serves."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import gc
import logging

import pytest

from common.tls import client_context
from master.https_server import serve_https
from master.tls_read_buffer import TLS_READ_BUFFER, reduce_read_buffer
from tests.conftest import Pki

pytestmark = pytest.mark.integration


async def _hello(scope: dict, receive: object, send: object) -> None:
    """A minimal ASGI app: 200 with a short body for any HTTP request."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


def _server_side_tls_buffers() -> list[int]:
    """Sizes of the read buffers of every live server-side asyncio TLS connection in this process."""
    return [len(p._ssl_buffer) for p in gc.get_objects()
            if isinstance(p, asyncio.sslproto.SSLProtocol) and p._server_side and p._ssl_buffer is not None]


async def test_served_tls_connection_reads_with_a_2_kib_buffer(pki: Pki) -> None:
    """A connection accepted by serve_https has a 2 KiB TLS read buffer, not asyncio's 256 KiB."""
    async with serve_https(_hello, pki.tls("master"), "127.0.0.1", 0, 65536) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(pki.tls()),
                                                       server_hostname="localhost")
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
            buffers = _server_side_tls_buffers()
        finally:
            writer.close()
            await writer.wait_closed()
    assert buffers and set(buffers) == {TLS_READ_BUFFER}, buffers


def test_unknown_python_version_leaves_the_buffer_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """On a Python whose sslproto was not read, nothing is changed and one warning names the fix."""
    before = asyncio.sslproto.SSLProtocol.max_size
    with caplog.at_level(logging.WARNING, logger="master.tls_read_buffer"):
        assert reduce_read_buffer((3, 99)) is False
    assert asyncio.sslproto.SSLProtocol.max_size == before
    assert len(caplog.records) == 1 and "Python 3.99" in caplog.text and "master/tls_read_buffer.py" in caplog.text
