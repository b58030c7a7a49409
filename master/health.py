"""What `/healthz` reports: the broker connection, live workers and the queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from master.dispatcher import Dispatcher


class HealthCheck:
    """OK (200) while the MQTT connection is up, degraded (503) otherwise."""

    def __init__(self, mqtt_connected: Callable[[], bool], dispatcher: Dispatcher) -> None:
        self.mqtt_connected = mqtt_connected
        self.dispatcher = dispatcher

    def report(self) -> tuple[dict[str, Any], int]:
        ok = self.mqtt_connected()
        body = {"status": "ok" if ok else "degraded", "mqtt": ok,
                "workers": self.dispatcher.registry.live_count(), "queued": self.dispatcher.queued}
        return body, 200 if ok else 503
