"""The master's MQTT side: worker status in, tasks out."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from common.messages import MessageError, StatusMessage, TaskMessage, encode, parse_status
from common.mqtt_connect import BrokerAddress, connect_async, new_client
from common.tls import TlsFiles
from common.topics import Topics

logger = logging.getLogger(__name__)


class MasterBus:
    """Calls `on_status(worker_id, status)` on the asyncio loop; `publish_task` may be called from it."""

    def __init__(
        self,
        password: str,
        tls: TlsFiles,
        address: BrokerAddress,
        topics: Topics,
        loop: asyncio.AbstractEventLoop,
        on_status: Callable[[str, StatusMessage], None],
        on_connected: Callable[[], None],
    ) -> None:
        self.topics = topics
        self.address = address
        self._loop = loop
        self._on_status = on_status
        self._on_connected = on_connected
        self.connected = asyncio.Event()
        # A random suffix: a client holding the worker password cannot guess and take over this session.
        self.client_id = f"master-{secrets.token_hex(8)}"
        self._client = new_client(self.client_id, "master", password, tls)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message

    def start(self) -> None:
        connect_async(self._client, self.address)

    def _handle_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            logger.error("MQTT connection refused: %s (check MQTT_PASSWORD_FILE and the broker's password file)", rc)
            return
        client.subscribe(self.topics.all_status, qos=1)
        logger.info("connected to MQTT %s:%d as %s", self.address.host, self.address.port, self.client_id)
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
        worker_id = self.topics.worker_of(msg.topic)
        if worker_id is None:
            logger.warning("status on unexpected topic %r ignored", msg.topic[:200])
            return
        if not msg.payload:
            return  # a worker cleared its retained status on a clean shutdown
        try:
            status = parse_status(msg.payload)
        except MessageError as exc:
            logger.warning("worker %s: %s; ignored", worker_id, exc)
            return
        self._loop.call_soon_threadsafe(self._on_status, worker_id, status)

    def publish_task(self, worker_id: str, task: TaskMessage) -> bool:
        """Queue a task for `worker_id` (QoS 1); False when the broker is not connected."""
        if not self.connected.is_set():
            return False
        info = self._client.publish(self.topics.tasks(worker_id), encode(task), qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
