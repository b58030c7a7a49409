"""The worker's MQTT side: its own task topic in, its own status out, last will 'offline'.

Status is published retained, so a master that connects later (or restarts) learns every
worker's latest state at once; the last will is retained 'offline' for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aiomqtt

from common.messages import OFFLINE, StatusMessage, encode
from common.mqtt_connect import BrokerAddress, MqttSession, new_client
from common.tls import TlsFiles
from common.topics import Topics

logger = logging.getLogger(__name__)
STOP_ACK_TIMEOUT_S = 2.0


class WorkerBus:
    """This worker's task topic in, its status out; all on the asyncio loop (aiomqtt)."""

    def __init__(self, worker_id: str, password: str, tls: TlsFiles, address: BrokerAddress, topics: Topics) -> None:
        self.worker_id = worker_id
        self.topics = topics
        self.address = address
        self._password = password
        self._tls = tls
        self._session: MqttSession | None = None

    @property
    def connected(self) -> bool:
        return self._session is not None and self._session.connected.is_set()

    def start(self, on_task: Callable[[bytes], None], on_connected: Callable[[], None],
              on_cancel: Callable[[bytes], None] | None = None) -> None:
        """Connect in the background (retrying forever) and stay connected until `stop()`; `on_task(payload)` per
        task, `on_cancel(payload)` per cancel, `on_connected()` after each (re)connect once subscribed."""
        status_topic = self.topics.status(self.worker_id)
        client = new_client(
            self.worker_id, "worker", self._password, self._tls, self.address,
            will=(status_topic, encode(OFFLINE)), will_retain=True,
            # Tasks published while this worker reconnects wait for it at the broker (QoS 1).
            persistent=True,
        )
        self._session = MqttSession(
            client, self.address, subscription=(self.topics.tasks(self.worker_id), self.topics.cancel(self.worker_id)),
            on_message=lambda msg: self._handle_message(msg, on_task, on_cancel), on_connected=on_connected,
        )
        self._session.start()

    def _handle_message(self, msg: aiomqtt.Message, on_task: Callable[[bytes], None],
                        on_cancel: Callable[[bytes], None] | None) -> None:
        if not isinstance(msg.payload, bytes):
            return
        if msg.topic.value == self.topics.cancel(self.worker_id):
            if on_cancel is not None:
                on_cancel(msg.payload)
        else:
            on_task(msg.payload)

    def publish_status(self, status: StatusMessage) -> None:
        """Publish `status` retained (QoS 1) without waiting; dropped while disconnected (the
        status is republished on every connect)."""
        if self._session is not None and self.connected:
            self._session.publish_nowait(self.topics.status(self.worker_id), encode(status), retain=True)

    async def stop(self) -> None:
        """Say offline (a clean disconnect sends no last will), clear the retained status, disconnect."""
        if self._session is None:
            return
        topic = self.topics.status(self.worker_id)
        if self.connected:
            acks = [
                self._session.publish_nowait(topic, encode(OFFLINE)),
                self._session.publish_nowait(topic, b"", retain=True),  # empty + retain = delete the retained status
            ]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*acks), STOP_ACK_TIMEOUT_S)
        await self._session.stop()
