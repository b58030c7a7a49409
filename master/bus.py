"""The master's MQTT side: worker status in, tasks out."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
import paho.mqtt.client as mqtt

from common.messages import MessageError, StatusMessage, TaskMessage, encode, parse_status
from common.mqtt_connect import BrokerAddress, new_client
from common.mqtt_loop import AsyncioMqtt
from common.tls import TlsFiles
from common.topics import Topics

logger = logging.getLogger(__name__)


class MasterBus:
    """Calls `on_status(worker_id, status)`; everything runs on the asyncio loop (no paho thread)."""

    def __init__(
        self,
        password: str,
        tls: TlsFiles,
        address: BrokerAddress,
        topics: Topics,
        on_status: Callable[[str, StatusMessage], None],
        on_connected: Callable[[], None],
    ) -> None:
        self.topics = topics
        self._on_status = on_status
        # A random suffix: a client holding the worker password cannot guess and take over this session.
        self.client_id = f"master-{secrets.token_hex(8)}"
        self._client = new_client(self.client_id, "master", password, tls)
        self._on_connected = on_connected
        self.address = address
        self._mqtt: AsyncioMqtt | None = None

    @property
    def connected(self) -> bool:
        return self._mqtt is not None and self._mqtt.connected.is_set()

    def start(self) -> None:
        self._mqtt = AsyncioMqtt(
            self._client, self.address, client_id=self.client_id, subscription=self.topics.all_status,
            on_message=self._handle_message, on_connected=self._on_connected,
        )
        self._mqtt.start()

    def _handle_message(self, msg: mqtt.MQTTMessage) -> None:
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
        self._on_status(worker_id, status)

    def publish_task(self, worker_id: str, task: TaskMessage) -> bool:
        """Queue a task for `worker_id` (QoS 1); False when the broker is not connected."""
        if not self.connected:
            return False
        info = self._client.publish(self.topics.tasks(worker_id), encode(task), qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    async def stop(self) -> None:
        if self._mqtt is not None:
            await self._mqtt.stop()
