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
    """This worker's task topic in, its status out; all on the asyncio loop."""

    def __init__(
        self,
        worker_id: str,
        password: str,
        tls: TlsFiles,
        address: BrokerAddress,
        topics: Topics,
    ) -> None:
        self.worker_id = worker_id
        self.topics = topics
        self.address = address
        self._client = new_client(
            worker_id, "worker", password, tls, will=(topics.status(worker_id), encode(OFFLINE)), will_retain=True
        )
        self._mqtt: AsyncioMqtt | None = None

    @property
    def connected(self) -> bool:
        return self._mqtt is not None and self._mqtt.connected.is_set()

    def start(self, on_task: Callable[[bytes], None], on_connected: Callable[[], None]) -> None:
        """Connect (retrying forever); `on_task(payload)` per task, `on_connected()` after each (re)connect."""
        self._mqtt = AsyncioMqtt(
            self._client, self.address, subscription=self.topics.tasks(self.worker_id),
            on_message=lambda msg: on_task(msg.payload), on_connected=on_connected,
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
