"""Master settings (environment; secrets as *_FILE paths)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from common.settings import CommonSettings


class MasterSettings(CommonSettings):
    web_host: str = "0.0.0.0"
    web_port: int = Field(default=8443, ge=0, le=65535)
    # Origins allowed to open a Socket.IO connection, comma-separated, e.g. https://chat.example.org
    public_origins: str = "https://localhost:8443"

    # Signs session cookies (Quart's secret_key); a random per-process key when unset.
    session_secret_file: Path | None = None

    grpc_host: str = "0.0.0.0"
    grpc_port: int = Field(default=50051, ge=0, le=65535)

    max_prompt_chars: int = Field(default=8000, ge=1, le=100_000)
    max_queue: int = Field(default=10_000, ge=1)
    # A task not answered this long after it was handed out is given up with an error to the user.
    task_timeout_s: float = Field(default=120.0, gt=0)
    # A worker silent this long is taken as offline and its tasks go back to the queue.
    worker_timeout_s: float = Field(default=35.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)
    default_model: str = ""

    def origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.public_origins.split(",") if o.strip()]
