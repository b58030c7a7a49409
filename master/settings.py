"""Master settings (environment; secrets as *_FILE paths, read here and nowhere else)."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from common.messages import MAX_PROMPT_CHARS_LIMIT
from common.redaction import register_secret
from common.secret_files import read_secret
from common.settings import CommaList, CommonSettings

# Socket.IO framing around a question in a WebSocket message.
MESSAGE_FRAMING_BYTES = 4096


class MasterSettings(CommonSettings):
    web_host: str = "0.0.0.0"
    web_port: int = Field(default=8443, ge=0, le=65535)
    # No default: a master must be told the address people use, or Socket.IO refuses them all
    # (the local launcher and the stack pass it).
    public_origins: CommaList = Field(
        description="the browser origins allowed to chat, comma-separated, e.g. PUBLIC_ORIGINS=https://chat.example.org",
    )

    # Signs session cookies; a random per-process key when unset (sessions then end with the process).
    session_secret_file: Path | None = None
    session_idle_s: float = Field(default=1800.0, gt=0)
    session_max_s: float = Field(default=43_200.0, gt=0)

    # The store: users, sessions, daily counts (SQLite, WAL). On a volume in the stack.
    database_file: Path = Path("/var/lib/ai-system/master.db")
    # Read once, at the first start of an empty store: the password of the first admin.
    initial_admin_password_file: Path | None = None
    initial_admin_name: str = "admin"
    # argon2id cost (OWASP profile 1); tests may lower it.
    password_hash_memory_kib: int = Field(default=47_104, ge=8_192)
    password_hash_time_cost: int = Field(default=1, ge=1)

    # Failed logins before a name or a client address is locked out, and for how long.
    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_lockout_s: float = Field(default=300.0, gt=0)

    # Per-user limits (0 = off): questions a minute (token bucket with this burst), questions queued
    # or running at once, questions a UTC day. Admins are limited too unless LIMITS_EXEMPT_ADMINS.
    rate_per_minute: float = Field(default=20.0, ge=0)
    rate_burst: int = Field(default=5, ge=1)
    max_open_tasks_per_user: int = Field(default=4, ge=0)
    daily_quota: int = Field(default=0, ge=0)
    limits_exempt_admins: bool = False

    grpc_host: str = "0.0.0.0"
    grpc_port: int = Field(default=50051, ge=0, le=65535)

    # Bounded so that a task at the limit, every character escaped to 6 bytes of JSON, still fits
    # mosquitto's max_packet_size (tests/test_settings.py).
    max_prompt_chars: int = Field(default=8000, ge=1, le=MAX_PROMPT_CHARS_LIMIT)
    max_queue: int = Field(default=10_000, ge=1)
    # A task not answered this long after it was handed out is given up with an error to the user.
    task_timeout_s: float = Field(default=120.0, gt=0)
    # Answer chunks to a browser: at most one per interval per task (the first at once), or one per max bytes.
    chunk_interval_s: float = Field(default=0.05, ge=0)
    chunk_max_bytes: int = Field(default=1024, ge=1)
    # A worker silent this long is taken as offline and its tasks go back to the queue.
    worker_timeout_s: float = Field(default=35.0, gt=0)
    # The most slots a worker's status is believed to have, and how long a worker whose task timed
    # out gets no new task.
    max_worker_capacity: int = Field(default=64, ge=1, le=1024)
    # A worker confirms each task it takes within this; else the task goes to another worker.
    lease_s: float = Field(default=5.0, gt=0)
    worker_backoff_s: float = Field(default=60.0, ge=0)
    max_attempts: int = Field(default=3, ge=1, le=10)
    # A task still waiting for a worker this long after it was asked is given up with an error.
    queue_timeout_s: float = Field(default=600.0, gt=0)
    default_model: str = ""
    # Priority aging: a queued task rises one priority level (low -> normal -> high) per this many
    # seconds of waiting, so low tasks are not starved by constant high load. 0: strict priority.
    priority_aging_s: float = Field(default=30.0, ge=0)
    # The response cache (master/response_cache.py): an identical question (model, normalised prompt)
    # answered from memory for this long; 0: off. At most MAX_ENTRIES answers (least recently used go);
    # per user unless SHARED (then one user's answer may be shown to another: only for public data).
    response_cache_ttl_s: float = Field(default=0.0, ge=0)
    response_cache_max_entries: int = Field(default=1000, ge=1)
    response_cache_shared: bool = False

    # Conversations (and their tasks) not used for this many days are deleted; 0 keeps them forever.
    # The check runs every CONVERSATION_RETENTION_INTERVAL_S.
    conversation_retention_days: int = Field(default=0, ge=0, le=36_500)
    conversation_retention_interval_s: float = Field(default=3600.0, gt=0)

    @field_validator("public_origins")
    @classmethod
    def _valid_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one origin, e.g. https://chat.example.org")
        origins = tuple(o.rstrip("/") for o in value)
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme != "https" or not parts.hostname or parts.path or parts.query or parts.fragment:
                raise ValueError(f"{origin!r} is not an https origin like https://chat.example.org[:port]")
        return origins

    @property
    def max_message_bytes(self) -> int:
        """The largest Socket.IO message taken: a question at the limit in UTF-8, plus framing."""
        return max(64 * 1024, self.max_prompt_chars * 4 + MESSAGE_FRAMING_BYTES)

    def session_secret(self) -> str:
        """The key that signs session cookies: from SESSION_SECRET_FILE, or random for this process."""
        if self.session_secret_file is None:
            key = secrets.token_urlsafe(32)
            register_secret(key)
            return key
        return read_secret("SESSION_SECRET_FILE", self.session_secret_file)

    def initial_admin_password(self) -> str:
        """The first admin's password (read only when the store has no user yet)."""
        return read_secret("INITIAL_ADMIN_PASSWORD_FILE", self.initial_admin_password_file)
