"""The worker's MQTT side: its own task topic in, its own status out, last will 'offline'.

Status is published retained, so a master that connects later (or restarts) learns every
worker's latest state at once; the last will is retained 'offline' for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from common.messages import OFFLINE, StatusMessage, encode
from common.mqtt_connect import BrokerAddress, connect_async, new_client
from common.tls import TlsFiles
from common.topics import Topics

logger = logging.getLogger(__name__)


class WorkerBus:
    """Calls `on_task(payload)` on the asyncio loop for each message on this worker's task topic."""

    def __init__(
        self,
        worker_id: str,
        password: str,
        tls: TlsFiles,
        address: BrokerAddress,
        topics: Topics,
        loop: asyncio.AbstractEventLoop,
        on_task: Callable[[bytes], None],
        on_connected: Callable[[], None],
    ) -> None:
        self.worker_id = worker_id
        self.topics = topics
        self._loop = loop
        self._on_task = on_task
        self._on_connected = on_connected
        self.address = address
        self.connected = asyncio.Event()
        self._client = new_client(
            worker_id, "worker", password, tls, will=(topics.status(worker_id), encode(OFFLINE)), will_retain=True
        )
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message

    def start(self) -> None:
        connect_async(self._client, self.address)

    def _handle_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            logger.error("MQTT connection refused: %s (check MQTT_PASSWORD_FILE and the broker's password file)", rc)
            return
        client.subscribe(self.topics.tasks(self.worker_id), qos=1)
        logger.info("connected to MQTT %s:%d as %s", self.address.host, self.address.port, self.worker_id)
        self._loop.call_soon_threadsafe(self._connected)

    def _connected(self) -> None:
        self.connected.set()
        self._on_connected()

    def _handle_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            logger.warning("MQTT connection lost (%s); reconnecting with backoff", rc)
        else:
            logger.info("MQTT disconnected")
        self._loop.call_soon_threadsafe(self.connected.clear)

    def _handle_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._loop.call_soon_threadsafe(self._on_task, msg.payload)

    def publish_status(self, status: StatusMessage) -> None:
        self._client.publish(self.topics.status(self.worker_id), encode(status), qos=1, retain=True)

    def stop(self) -> None:
        """Say offline (a clean disconnect sends no last will), clear the retained status, disconnect."""
        topic = self.topics.status(self.worker_id)
        for info in (
            self._client.publish(topic, encode(OFFLINE), qos=1),
            self._client.publish(topic, b"", qos=1, retain=True),  # empty + retain = delete the retained status
        ):
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
