"""MQTT topic names of the wire protocol and the worker id rule."""

from __future__ import annotations

import re
from dataclasses import dataclass

WORKER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def valid_worker_id(worker_id: str) -> bool:
    return bool(WORKER_ID_RE.fullmatch(worker_id))


@dataclass(frozen=True)
class Topics:
    """Topic names under a prefix (default `upb`)."""

    prefix: str = "upb"

    def tasks(self, worker_id: str) -> str:
        return f"{self.prefix}/workers/{worker_id}/tasks"

    def cancel(self, worker_id: str) -> str:
        """Master -> that worker only: stop a running task."""
        return f"{self.prefix}/workers/{worker_id}/cancel"

    def status(self, worker_id: str) -> str:
        return f"{self.prefix}/workers/{worker_id}/status"

    @property
    def all_status(self) -> str:
        return f"{self.prefix}/workers/+/status"

    def worker_of(self, topic: str) -> str | None:
        """The worker id in a `{prefix}/workers/{id}/...` topic, or None when the topic is not one."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != self.prefix or parts[1] != "workers":
            return None
        return parts[2] if valid_worker_id(parts[2]) else None
