"""The worker's MQTT side: its own task topic in, its own status out, last will 'offline'.

Status is published retained, so a master that connects later (or restarts) learns every
worker's latest state at once; the last will is retained 'offline' for the same reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from common.messages import OFFLINE, StatusMessage, encode
from common.mqtt_connect import BrokerAddress, new_client
from common.mqtt_loop import AsyncioMqtt
from common.tls import TlsFiles
from common.topics import Topics

logger = logging.getLogger(__name__)


class WorkerBus:
    """Calls `on_task(payload)` for each message on this worker's task topic; all on the asyncio loop."""

    def __init__(
        self,
        worker_id: str,
        password: str,
        tls: TlsFiles,
        address: BrokerAddress,
        topics: Topics,
        on_task: Callable[[bytes], None],
        on_connected: Callable[[], None],
    ) -> None:
        self.worker_id = worker_id
        self.topics = topics
        self.address = address
        self._on_task = on_task
        self._on_connected = on_connected
        self._client = new_client(
            worker_id, "worker", password, tls, will=(topics.status(worker_id), encode(OFFLINE)), will_retain=True
        )
        self._mqtt: AsyncioMqtt | None = None

    @property
    def connected(self) -> bool:
        return self._mqtt is not None and self._mqtt.connected.is_set()

    def start(self) -> None:
        self._mqtt = AsyncioMqtt(
            self._client, self.address, client_id=self.worker_id,
            subscription=self.topics.tasks(self.worker_id),
            on_message=lambda msg: self._on_task(msg.payload), on_connected=self._on_connected,
        )
        self._mqtt.start()

    def publish_status(self, status: StatusMessage) -> None:
        self._client.publish(self.topics.status(self.worker_id), encode(status), qos=1, retain=True)

    async def stop(self) -> None:
        """Say offline (a clean disconnect sends no last will), clear the retained status, disconnect."""
        if self._mqtt is None:
            return
        topic = self.topics.status(self.worker_id)
        if self.connected:
            infos = [
                self._client.publish(topic, encode(OFFLINE), qos=1),
                self._client.publish(topic, b"", qos=1, retain=True),  # empty + retain = delete the retained status
            ]
            await self._mqtt.wait_published(infos, timeout=2)
        await self._mqtt.stop()
