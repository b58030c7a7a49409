"""The HTTPS edge: no plaintext, no foreign origins, security headers on every response."""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiohttp
import pytest
import socketio
import yarl

from common.tls import client_context
from devstack.local_broker import RunningBroker
from master.security_headers import CONTENT_SECURITY_POLICY
from tests.conftest import Pki
from master.sessions import COOKIE_NAME
from tests.stack_helpers import ChatClient, https_session, local_stack

pytestmark = pytest.mark.integration


async def test_plain_http_to_the_https_port_is_not_served(pki: Pki, broker: RunningBroker) -> None:
    """A plaintext HTTP request on the HTTPS port gets no HTTP response (no page, no redirect)."""
    async with local_stack(pki, broker, workers=0) as stack:
        with socket.create_connection(("127.0.0.1", stack.master.web_port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except (ConnectionResetError, TimeoutError):
                pass
        assert b"HTTP/" not in data and b"<html" not in data.lower()


async def test_tls_negotiates_only_http11(pki: Pki, broker: RunningBroker) -> None:
    """A client offering h2 and http/1.1 gets http/1.1: the master serves common/tls.py's context, HTTP/1.1 only."""
    async with local_stack(pki, broker, workers=0) as stack:
        ctx = client_context(pki.tls())
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        _, writer = await asyncio.open_connection("127.0.0.1", stack.master.web_port, ssl=ctx,
                                                  server_hostname="localhost")
        try:
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        finally:
            writer.close()
            await writer.wait_closed()


async def test_client_trusting_another_ca_refuses_the_master(pki: Pki, other_pki: Pki, broker: RunningBroker) -> None:
    """A client trusting another CA fails with certificate verify failed."""
    async with local_stack(pki, broker, workers=0) as stack:
        async with https_session(other_pki.tls()) as http:
            with pytest.raises(aiohttp.ClientConnectorCertificateError) as excinfo:
                await http.get(stack.url + "/")
        assert isinstance(excinfo.value.certificate_error, ssl.SSLCertVerificationError)


async def test_socketio_handshake_with_foreign_origin_is_refused(pki: Pki, broker: RunningBroker) -> None:
    """Origin https://evil.example is not in PUBLIC_ORIGINS: the Socket.IO connection is refused, even with a valid login."""
    async with local_stack(pki, broker, workers=0) as stack:
        client = ChatClient(pki, origin="https://evil.example", cookie=stack.cookie)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(stack.url)
        await client.close()
        # The same handshake over HTTP long-polling: the server answers 400.
        async with https_session(pki.tls()) as http:
            url = stack.url + "/socket.io/?EIO=4&transport=polling"
            cookie = {"Cookie": f"{COOKIE_NAME}={stack.cookie}"}
            async with http.get(url, headers={"Origin": "https://evil.example", **cookie}) as resp:
                assert resp.status == 400
            async with http.get(url, headers={"Origin": stack.url, **cookie}) as resp:
                assert resp.status == 200  # control: our own origin is accepted


async def test_socketio_handshake_with_own_origin_is_accepted(pki: Pki, broker: RunningBroker) -> None:
    """Control: the configured https origin connects (python-socketio's default would refuse it)."""
    async with local_stack(pki, broker, workers=0) as stack:
        client = ChatClient(pki, origin=stack.url, cookie=stack.cookie)
        await client.connect(stack.url)
        assert client.sio is not None and client.sio.connected
        await client.close()


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/healthz", "/no-such-page"])
async def test_security_headers_are_present(pki: Pki, broker: RunningBroker, path: str) -> None:
    """HSTS, CSP without inline script and with frame-ancestors 'none', nosniff, Referrer-Policy."""
    async with local_stack(pki, broker, workers=0) as stack:
        async with https_session(pki.tls()) as http, http.get(stack.url + path) as resp:
            h = resp.headers
            await resp.read()  # read the body: quart leaks the file of an abandoned static response
        assert h["Strict-Transport-Security"].startswith("max-age=")
        assert h["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert "unsafe-inline" not in h["Content-Security-Policy"]
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "same-origin"


async def test_chat_page_has_no_inline_script_and_no_cdn(pki: Pki, broker: RunningBroker) -> None:
    """The page loads only same-origin scripts (the Socket.IO client is served by us)."""
    async with local_stack(pki, broker, workers=0) as stack:
        async with https_session(pki.tls()) as http:
            async with http.get(stack.url + "/") as resp:
                html = await resp.text()
            async with http.get(stack.url + "/static/vendor/socket.io.min.js") as resp:
                assert resp.status == 200 and "Socket.IO v4" in await resp.text()
        assert "<script>" not in html and "http://" not in html and "https://" not in html


@pytest.mark.parametrize("path", ["/static/../settings.py", "/static/%2e%2e/web.py", "/static/nope.js", "/static/"])
async def test_static_serves_only_the_chat_files(pki: Pki, broker: RunningBroker, path: str) -> None:
    """Static files come from a fixed in-memory set: traversal and unknown names get 404."""
    async with local_stack(pki, broker, workers=0) as stack:
        async with https_session(pki.tls()) as http:
            # encoded=True: sent as written, not normalised by the client, so ".." reaches the server.
            async with http.get(yarl.URL(stack.url + path, encoded=True)) as resp:
                body = await resp.text()
                assert resp.status == 404, body[:200]
            async with http.get(stack.url + "/static/style.css") as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/css")
                await resp.read()
        assert "import" not in body


async def _open_engineio_websocket(http: aiohttp.ClientSession, url: str, cookie: str) -> aiohttp.ClientWebSocketResponse:
    """A raw Engine.IO WebSocket from our own origin, logged in, offering permessage-deflate as every browser does."""
    ws = await http.ws_connect(url.replace("https://", "wss://") + "/socket.io/?EIO=4&transport=websocket",
                               origin=url, compress=15, headers={"Cookie": f"{COOKIE_NAME}={cookie}"})
    opened = await ws.receive(timeout=5)
    assert opened.type == aiohttp.WSMsgType.TEXT and opened.data.startswith("0{")  # Engine.IO "open"
    return ws


async def test_websocket_compression_offer_is_refused(pki: Pki, broker: RunningBroker) -> None:
    """permessage-deflate is never negotiated: no zlib state per connection, no compression side channel."""
    async with local_stack(pki, broker, workers=0) as stack:
        async with https_session(pki.tls()) as http:
            ws = await _open_engineio_websocket(http, stack.url, stack.cookie)
            assert ws.compress == 0, "the server accepted permessage-deflate"
            await ws.close()


async def test_oversized_websocket_message_closes_with_1009(pki: Pki, broker: RunningBroker) -> None:
    """A message over the size limit is refused by the web server before it is buffered whole (close 1009)."""
    async with local_stack(pki, broker, workers=0) as stack:
        limit = stack.master.settings.max_message_bytes
        async with https_session(pki.tls()) as http:
            ws = await _open_engineio_websocket(http, stack.url, stack.cookie)
            await ws.send_str("40")  # Socket.IO connect
            while (msg := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT and not msg.data.startswith("40"):
                pass
            await ws.send_str('42["ai-query",{"text":"' + "x" * (limit + 1) + '"}]')
            closed = await ws.receive(timeout=5)
            while closed.type == aiohttp.WSMsgType.TEXT:  # e.g. the "limits" event
                closed = await ws.receive(timeout=5)
            assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1009, closed
            assert stack.master.dispatcher.queued == 0
