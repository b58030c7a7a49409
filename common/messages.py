"""The JSON messages on MQTT: tasks and cancels (master -> worker) and status (worker -> master)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Hard ceiling of the wire format: a task at this many characters, each escaped to 6 bytes of JSON
# (`\u0001`), still fits mosquitto's max_packet_size (256 KiB). The master's setting is at most this.
MAX_PROMPT_CHARS_LIMIT = 40_000


class MessageError(ValueError):
    """A malformed MQTT message; the text says what is wrong (never the payload itself)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TaskMessage(_Strict):
    task_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    token: str = Field(min_length=16, max_length=128)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS_LIMIT)
    model: str = Field(default="", max_length=128)
    priority: int = Field(default=0, ge=0, le=9)
    # Unix time after which the answer is no longer wanted.
    deadline: float


class CancelMessage(_Strict):
    """Stop a running task (the user pressed Stop); the token proves it is about the task this worker holds."""

    task_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    token: str = Field(min_length=16, max_length=128)


class StatusMessage(_Strict):
    # draining: finishing what it has, taking nothing new (a worker told to stop).
    state: Literal["idle", "busy", "draining", "offline"]
    capacity: int = Field(default=0, ge=0, le=1024)
    free_slots: int = Field(default=0, ge=0, le=1024)
    models: tuple[str, ...] = ()
    version: str = Field(default="", max_length=64)


def _parse(model: type[_Strict], payload: bytes, what: str) -> _Strict:
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in exc.errors()[:3])
        raise MessageError(f"malformed {what} message ({len(payload)} bytes): {problems}") from None


def parse_task(payload: bytes) -> TaskMessage:
    return _parse(TaskMessage, payload, "task")  # type: ignore[return-value]


def parse_cancel(payload: bytes) -> CancelMessage:
    return _parse(CancelMessage, payload, "cancel")  # type: ignore[return-value]


def parse_status(payload: bytes) -> StatusMessage:
    return _parse(StatusMessage, payload, "status")  # type: ignore[return-value]


def encode(message: _Strict) -> bytes:
    return message.model_dump_json().encode()


OFFLINE = StatusMessage(state="offline")
