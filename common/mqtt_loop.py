"""An MQTT session on the asyncio loop (paho's external-loop API): no network thread.

paho's own thread competes with the event loop for the GIL and needs a cross-thread wakeup
for every message; here reads, writes, callbacks and publishes all happen on the loop.
Only the blocking connect (TCP + TLS handshake) runs in an executor. Reconnects back off
exponentially with jitter, as `connect_async` + `loop_start` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from common.mqtt_connect import RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY, BrokerAddress, set_nodelay

logger = logging.getLogger(__name__)
MISC_INTERVAL_S = 1.0


class AsyncioMqtt:
    """Connects `client` (built by `new_client` with `client_id`), subscribes `subscription` on every
    (re)connect and hands each message to `on_message`. After each connect, once the broker has
    acknowledged the subscription, sets `connected` and calls `on_connected`."""

    def __init__(
        self,
        client: mqtt.Client,
        address: BrokerAddress,
        *,
        client_id: str,
        subscription: str | None = None,
        on_message: Callable[[mqtt.MQTTMessage], None] | None = None,
        on_connected: Callable[[], None] | None = None,
        keepalive: int = 30,
    ) -> None:
        self.client = client
        self.address = address
        self.client_id = client_id
        self.keepalive = keepalive
        self.subscription = subscription
        self._on_connected = on_connected
        self.connected = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._sock: Any = None
        self._lost = asyncio.Event()
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_subscribe = self._handle_subscribe
        self._suback_mid: int | None = None
        if on_message is not None:
            client.on_message = lambda _client, _userdata, message: on_message(message)

    # -- session callbacks (on the loop: they come from loop_read) ---------------------------
    def _handle_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            logger.error("MQTT connection refused: %s (check MQTT_PASSWORD_FILE and the broker's password file)", rc)
            return
        if self.subscription:
            # Connected only at the SUBACK: a message published by another client before the
            # broker has the subscription would never arrive.
            _, self._suback_mid = client.subscribe(self.subscription, qos=1)
        else:
            self._ready()

    def _handle_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        if mid != self._suback_mid:
            return
        self._suback_mid = None
        if any(code.is_failure for code in codes):
            logger.error("MQTT subscription to %s refused (%s): check the broker's ACL", self.subscription, codes)
            return
        self._ready()

    def _ready(self) -> None:
        logger.info("connected to MQTT %s:%d as %s", self.address.host, self.address.port, self.client_id)
        self.connected.set()
        if self._on_connected is not None:
            self._on_connected()

    def _handle_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            logger.warning("MQTT connection lost (%s); reconnecting with backoff", rc)
        else:
            logger.info("MQTT disconnected")
        self.connected.clear()

    # -- paho socket callbacks (the connect ones arrive on the executor thread) --------------
    def _in_loop(self, fn: Any, *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        set_nodelay(client, userdata, sock)
        self._in_loop(self._watch, sock)

    def _watch(self, sock: Any) -> None:
        self._sock = sock
        self._lost.clear()
        self.loop.add_reader(sock, self._read)

    def _read(self) -> None:
        self.client.loop_read()
        # TLS: decrypted bytes can wait inside the SSL object with nothing left on the socket,
        # so readiness would never fire for them. Drain them now.
        sock = self._sock
        while sock is not None and sock is self.client.socket() and isinstance(sock, ssl.SSLSocket) and sock.pending():
            self.client.loop_read()

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._unwatch, sock)

    def _unwatch(self, sock: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_reader(sock)
            self.loop.remove_writer(sock)
        if sock is self._sock:
            self._sock = None
            self._lost.set()

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(lambda: self.loop.add_writer(sock, self.client.loop_write))

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(lambda: self.loop.remove_writer(sock))

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._runner = self.loop.create_task(self._run())

    async def _connect_once(self) -> None:
        await self.loop.run_in_executor(
            None, self.client.connect, self.address.host, self.address.port, self.keepalive
        )

    async def _run(self) -> None:
        delay = RECONNECT_MIN_DELAY
        while not self._stopping:
            try:
                await self._connect_once()
            except (OSError, ssl.SSLError, ValueError) as exc:
                logger.warning(
                    "cannot reach MQTT %s:%d (%s); retrying in %.0f s",
                    self.address.host, self.address.port, type(exc).__name__, delay,
                )
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                continue
            delay = RECONNECT_MIN_DELAY
            while not self._lost.is_set():
                # Keepalive pings and retries of unacknowledged QoS 1 messages.
                if self.client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._lost.wait(), MISC_INTERVAL_S)
            if not self._stopping:
                await asyncio.sleep(RECONNECT_MIN_DELAY * random.uniform(0.5, 1.0))

    async def wait_published(self, infos: list[mqtt.MQTTMessageInfo], timeout: float) -> None:
        """Until the broker acknowledged each message, or `timeout`."""
        deadline = self.loop.time() + timeout
        while not all(i.is_published() for i in infos) and self.loop.time() < deadline and not self._lost.is_set():
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Disconnect cleanly (no last will) and stop reconnecting."""
        self._stopping = True
        if self._sock is not None:
            self.client.disconnect()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._lost.wait(), 2)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        sock = self._sock
        if sock is not None:
            self._unwatch(sock)
            with contextlib.suppress(OSError):
                sock.close()
