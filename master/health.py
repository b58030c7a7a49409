"""`/healthz` (the process is alive and reaches the broker) and `/readyz` (it can do its job now)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from master.dispatcher import Dispatcher
from master.store import Database

STORE_CHECK_INTERVAL_S = 5.0


def write_health_row(conn: sqlite3.Connection) -> None:
    with conn:
        conn.execute("INSERT OR REPLACE INTO store_health (id, checked_at) VALUES (1, ?)", (time.time(),))


class HealthCheck:
    def __init__(self, mqtt_connected: Callable[[], bool], dispatcher: Dispatcher, db: Database) -> None:
        self.mqtt_connected = mqtt_connected
        self.dispatcher = dispatcher
        self.db = db
        self._store_ok: tuple[float, bool] = (float("-inf"), False)

    def report(self) -> tuple[dict[str, Any], int]:
        """OK (200) while the MQTT connection is up, degraded (503) otherwise."""
        ok = self.mqtt_connected()
        body = {"status": "ok" if ok else "degraded", "mqtt": ok,
                "workers": self.dispatcher.registry.live_count(), "queued": self.dispatcher.queued}
        return body, 200 if ok else 503

    async def store_writable(self) -> bool:
        """A real write, at most every few seconds (the answer is reused in between)."""
        checked, ok = self._store_ok
        if time.monotonic() - checked < STORE_CHECK_INTERVAL_S:
            return ok
        try:
            await self.db.run(write_health_row)
            ok = True
        except sqlite3.Error:
            ok = False
        self._store_ok = (time.monotonic(), ok)
        return ok

    async def readiness(self) -> tuple[dict[str, Any], int]:
        """Ready (200) when the broker is connected, results are served, the store takes writes and a worker is live."""
        workers = sum(w.state in ("idle", "busy") for w in self.dispatcher.registry.workers.values())
        checks = {"mqtt": self.mqtt_connected(), "grpc": True,  # this runs only while the gRPC server serves
                  "store": await self.store_writable(), "workers": workers > 0}
        ready = all(checks.values())
        return {"status": "ready" if ready else "not ready", "checks": checks, "workers": workers}, 200 if ready else 503
