"""How this system talks MQTT: one aiomqtt client per service (TLS to our CA, a password,
TCP_NODELAY, MQTT 3.1.1, clean session), kept connected by `MqttSession` with backoff.

aiomqtt drives paho on the asyncio loop (no network thread); this module only configures it
and owns the reconnect policy: retry forever, subscribe again and call `on_connected` after
every (re)connect, so a worker republishes its status and the master renews its subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from common.tls import TlsFiles, client_context

logger = logging.getLogger(__name__)

RECONNECT_MIN_DELAY = 1
# At most 5 s between attempts: after a broker restart, work resumes within seconds (jitter spreads the herd).
RECONNECT_MAX_DELAY = 5
KEEPALIVE_S = 30
MAX_INFLIGHT = 100
# paho does not set TCP_NODELAY: without it request/reply traffic stalls ~40 ms (Nagle).
TCP_NODELAY: tuple[int, int, int] = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int


def new_client(
    client_id: str,
    username: str,
    password: str,
    tls: TlsFiles,
    address: BrokerAddress,
    *,
    will: tuple[str, bytes] | None = None,
    will_retain: bool = False,
    persistent: bool = False,
) -> aiomqtt.Client:
    """An unconnected MQTT 3.1.1 client with TLS, credentials and an optional QoS 1 last will.

    Must be called on the running loop (aiomqtt binds to it)."""
    client = aiomqtt.Client(
        address.host,
        address.port,
        identifier=client_id,
        username=username,
        password=password,
        tls_context=client_context(tls),
        protocol=aiomqtt.ProtocolVersion.V311,
        # persistent: the broker keeps the session (subscription, QoS 1 messages) while the client reconnects.
        clean_session=not persistent,
        keepalive=KEEPALIVE_S,
        will=aiomqtt.Will(will[0], will[1], qos=1, retain=will_retain) if will is not None else None,
        socket_options=[TCP_NODELAY],
        max_inflight_messages=MAX_INFLIGHT,
        logger=logging.getLogger("paho"),
    )
    # aiomqtt warns above 10 unacknowledged calls; the master has up to MAX_INFLIGHT by design.
    client.pending_calls_threshold = 10 * MAX_INFLIGHT
    return client


def _refused(code: object) -> bool:
    """A SUBACK return code that refuses the subscription (0x80 in MQTT 3.1.1)."""
    return bool(getattr(code, "is_failure", False)) or code == 0x80


class MqttSession:
    """Keeps `client` connected, retrying forever with backoff: after each connect, once the broker
    has acknowledged `subscription` (QoS 1), sets `connected` and calls `on_connected`; hands every
    message to `on_message`."""

    def __init__(
        self,
        client: aiomqtt.Client,
        address: BrokerAddress,
        *,
        subscription: str | tuple[str, ...] | None = None,
        on_message: Callable[[aiomqtt.Message], None] | None = None,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.address = address
        self.client_id = client.identifier
        self.subscription = subscription
        self._on_message = on_message
        self._on_connected = on_connected
        self.connected = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._publishes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"mqtt-{self.client_id}")

    async def _run(self) -> None:
        delay: float = RECONNECT_MIN_DELAY
        while True:
            try:
                async with self.client:
                    if self.subscription:
                        # Connected only at the SUBACK: a message that another client published
                        # before the broker had the subscription would never arrive. The SUBACK
                        # also proves that the broker accepted this connection.
                        topics = (self.subscription,) if isinstance(self.subscription, str) else self.subscription
                        granted = await self.client.subscribe([(t, 1) for t in topics])
                        if any(_refused(code) for code in granted):
                            raise aiomqtt.MqttError(
                                f"subscription to {self.subscription} refused: check the broker's ACL"
                            )
                    delay = RECONNECT_MIN_DELAY
                    logger.info("connected to MQTT %s:%d as %s", self.address.host, self.address.port, self.client_id)
                    self.connected.set()
                    if self._on_connected is not None:
                        self._on_connected()
                    async for message in self.client.messages:
                        self._dispatch(message)
            except MqttConnectError as exc:
                logger.error(
                    "MQTT connection refused: %s (check MQTT_PASSWORD_FILE and the broker's password file)", exc
                )
            except (aiomqtt.MqttError, OSError) as exc:
                logger.warning(
                    "MQTT %s:%d %s (%s); retrying in %.0f s", self.address.host, self.address.port,
                    "connection lost" if self.connected.is_set() else "unreachable", exc, delay,
                )
            self.connected.clear()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    def _dispatch(self, message: aiomqtt.Message) -> None:
        """One message to `on_message`; a failing handler is logged and does not end the session."""
        if self._on_message is None:
            return
        try:
            self._on_message(message)
        except Exception:
            logger.exception("MQTT message on %s: the handler failed; message dropped", message.topic.value[:200])

    def publish_nowait(self, topic: str, payload: bytes, *, retain: bool = False) -> asyncio.Task[None]:
        """Hand a QoS 1 message to the client and return at once; the task ends at the PUBACK."""
        task = asyncio.get_running_loop().create_task(self._publish(topic, payload, retain))
        self._publishes.add(task)
        task.add_done_callback(self._publishes.discard)
        return task

    async def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        try:
            await self.client.publish(topic, payload, qos=1, retain=retain)
        except aiomqtt.MqttError as exc:
            logger.warning("MQTT publish to %s not acknowledged: %s", topic[:200], exc)

    async def stop(self) -> None:
        """Disconnect cleanly (no last will) and stop reconnecting."""
        for task in list(self._publishes):
            task.cancel()
        if self._runner is not None:
            self._runner.cancel()  # leaving `async with client` sends DISCONNECT
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self.connected.clear()
