"""The master's MQTT side: worker status in, tasks out."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import aiomqtt

from common.messages import CancelMessage, MessageError, StatusMessage, TaskMessage, encode, parse_status
from common.mqtt_connect import BrokerAddress, MqttSession, new_client
from common.tls import TlsFiles
from common.topics import Topics

logger = logging.getLogger(__name__)


class MasterBus:
    """Worker status in, tasks out; everything runs on the asyncio loop (aiomqtt)."""

    def __init__(self, password: str, tls: TlsFiles, address: BrokerAddress, topics: Topics) -> None:
        self.topics = topics
        # A random suffix: a client holding the worker password cannot guess and take over this session.
        self.client_id = f"master-{secrets.token_hex(8)}"
        self._password = password
        self._tls = tls
        self.address = address
        self._session: MqttSession | None = None

    @property
    def connected(self) -> bool:
        return self._session is not None and self._session.connected.is_set()

    def start(self, on_status: Callable[[str, StatusMessage, bool], None], on_connected: Callable[[], None]) -> None:
        """Connect in the background (retrying forever) and stay connected until `stop()`; `on_status(worker_id,
        status)` per valid status, `on_connected()` after each (re)connect once subscribed."""
        client = new_client(self.client_id, "master", self._password, self._tls, self.address)
        self._session = MqttSession(
            client, self.address, subscription=self.topics.all_status,
            on_message=lambda msg: self._handle_message(msg, on_status), on_connected=on_connected,
        )
        self._session.start()

    def _handle_message(self, msg: aiomqtt.Message, on_status: Callable[[str, StatusMessage, bool], None]) -> None:
        topic = msg.topic.value
        worker_id = self.topics.worker_of(topic)
        if worker_id is None:
            logger.warning("status on unexpected topic %r ignored", topic[:200])
            return
        if not msg.payload:
            return  # a worker cleared its retained status on a clean shutdown
        if not isinstance(msg.payload, bytes):
            logger.warning("worker %s: status is not bytes; ignored", worker_id)
            return
        try:
            status = parse_status(msg.payload)
        except MessageError as exc:
            logger.warning("worker %s: %s; ignored", worker_id, exc)
            return
        # A retained status is delivered on subscribing: it tells who exists, not who is alive now.
        on_status(worker_id, status, not msg.retain)

    def publish_task(self, worker_id: str, task: TaskMessage) -> bool:
        """Queue a task for `worker_id` (QoS 1) without waiting; False when the broker is not connected."""
        if self._session is None or not self.connected:
            return False
        self._session.publish_nowait(self.topics.tasks(worker_id), encode(task))
        return True

    def publish_cancel(self, worker_id: str, cancel: CancelMessage) -> bool:
        """Tell `worker_id` to stop a running task (QoS 1) without waiting; False when not connected."""
        if self._session is None or not self.connected:
            return False
        self._session.publish_nowait(self.topics.cancel(worker_id), encode(cancel))
        return True

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.stop()
