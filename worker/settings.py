"""Worker settings (environment; secrets as *_FILE paths, read here and nowhere else)."""

from __future__ import annotations

import socket
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from common.secret_files import ConfigError, RotatingSecret
from common.settings import CommaList, CommonSettings
from common.topics import WORKER_ID_RE
from worker.backends.gemini import DEFAULT_MODEL
from worker.backends.openai_compat import DEFAULT_BASE_URL as OPENAI_DEFAULT_BASE_URL
from worker.backends.openai_compat import DEFAULT_MODEL as OPENAI_DEFAULT_MODEL


def default_worker_id() -> str:
    """Host name made valid as an id, plus a short random suffix (replicas share host names rarely, ids never)."""
    base = "".join(c if c.isalnum() else "-" for c in socket.gethostname().lower()).strip("-")[:40] or "worker"
    return f"{base}-{secrets.token_hex(3)}"


class WorkerSettings(CommonSettings):
    worker_id: str = Field(default_factory=default_worker_id)
    capacity: int = Field(default=4, ge=1, le=256)
    # Also how long a restarted master may wait to hear this worker live (a retained status is not enough).
    heartbeat_s: float = Field(default=5.0, gt=0)
    # Touched at every heartbeat while connected to the broker (for a container health check).
    health_path: Path | None = None
    # On shutdown, time given to running tasks before they are cancelled (the master requeues them).
    drain_timeout_s: float = Field(default=10.0, ge=0)
    # A task's receipt is sent only if its answer is not ready by then (the answer is the receipt): well
    # inside the master's lease (LEASE_S, 5 s), and it saves two gRPC messages per quick answer.
    receipt_delay_s: float = Field(default=0.25, ge=0, le=2.0)

    # Where results go: this worker's own configuration, never a field of a task.
    results_endpoint: str = "master:50051"
    results_tls_server_name: str = "master"

    model_backend: Literal["auto", "gemini", "openai", "echo"] = "auto"
    gemini_api_key_file: Path | None = None
    gemini_model: str = DEFAULT_MODEL
    gemini_extra_models: CommaList = ()
    gemini_base_url: str | None = None
    gemini_timeout_s: float = Field(default=60.0, gt=0)
    echo_latency_s: float = Field(default=0.0, ge=0)
    # The model names the echo backend advertises (all answer alike): for tests of routing by model.
    echo_models: CommaList = ("echo",)
    # MODEL_BACKEND=openai: any OpenAI-compatible chat completions server (OpenAI, Ollama, vLLM, llama.cpp).
    openai_base_url: str = Field(default=OPENAI_DEFAULT_BASE_URL, pattern=r"^https?://[^\s]+$")
    # Optional: local servers (Ollama, llama.cpp) need no key.
    openai_api_key_file: Path | None = None
    openai_model: str = OPENAI_DEFAULT_MODEL
    openai_extra_models: CommaList = ()
    openai_timeout_s: float = Field(default=60.0, gt=0)
    # When the echo model's first word comes (the rest spread until echo_latency_s); unset: evenly spread.
    echo_first_token_s: float | None = Field(default=None, ge=0)
    # Answer chunks to the master: at most one per interval (the first at once), or one per max bytes.
    chunk_interval_s: float = Field(default=0.05, ge=0)
    chunk_max_bytes: int = Field(default=1024, ge=1)

    @field_validator("worker_id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not WORKER_ID_RE.fullmatch(value):
            raise ValueError("must match ^[a-z0-9][a-z0-9-]{0,62}$ (it is the MQTT client id and a topic level)")
        return value

    def backend_kind(self) -> str:
        if self.model_backend == "auto":
            return "gemini" if self.gemini_api_key_file else "echo"
        return self.model_backend

    def gemini_api_key(self) -> RotatingSecret:
        """The Gemini key file, re-read when it changes (rotation without a restart)."""
        if self.gemini_api_key_file is None:
            raise ConfigError("MODEL_BACKEND=gemini needs GEMINI_API_KEY_FILE: point it at the key file")
        return RotatingSecret("GEMINI_API_KEY_FILE", self.gemini_api_key_file)

    def openai_api_key(self) -> RotatingSecret | None:
        """The OpenAI-compatible server's key file (re-read when it changes), or None: no key is sent."""
        if self.openai_api_key_file is None:
            return None
        return RotatingSecret("OPENAI_API_KEY_FILE", self.openai_api_key_file)
