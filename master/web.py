"""The HTTPS edge: the chat page, a health endpoint and the Socket.IO events."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import socketio
from quart import Quart, Response, jsonify

from common.redaction import register_secret
from common.secret_files import read_secret
from master.dispatcher import Dispatcher, Outcome, QueueFull, Task
from master.security_headers import SecurityHeaders
from master.settings import MasterSettings

logger = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8"}


def load_static(directory: Path = STATIC_DIR) -> dict[str, tuple[bytes, str]]:
    """Every static file, read once: served from memory (no file handle per request, none left
    open by a client that goes away mid-response)."""
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.suffix in CONTENT_TYPES:
            files[path.relative_to(directory).as_posix()] = (path.read_bytes(), CONTENT_TYPES[path.suffix])
    return files


class ChatWeb:
    """Quart + python-socketio; the dispatcher is attached after construction (it needs `deliver`)."""

    def __init__(self, settings: MasterSettings) -> None:
        self.settings = settings
        self.dispatcher: Dispatcher | None = None
        self.mqtt_connected = lambda: False
        # The largest Socket.IO message taken: a question at the limit in UTF-8, plus framing.
        self.max_message_bytes = max(64 * 1024, settings.max_prompt_chars * 4 + 4096)
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            # python-socketio rejects its own https:// origin behind TLS unless origins are listed.
            cors_allowed_origins=settings.origins(),
            max_http_buffer_size=self.max_message_bytes,
            logger=False,
            engineio_logger=False,
        )
        self.app = Quart(__name__, static_folder=None)
        self.static = load_static()
        self.app.secret_key = (
            read_secret("SESSION_SECRET_FILE", settings.session_secret_file)
            if settings.session_secret_file
            else secrets.token_urlsafe(32)
        )
        register_secret(self.app.secret_key)
        self._emits: set[asyncio.Task[None]] = set()
        self.stats = DeliveryStats()
        self._routes()
        self._events()
        self.asgi = SecurityHeaders(socketio.ASGIApp(self.sio, other_asgi_app=self.app))

    # -- HTTP ---------------------------------------------------------------------------
    def _routes(self) -> None:
        @self.app.get("/")
        async def index() -> Any:
            return self._static_response("index.html")

        @self.app.get("/static/<path:name>")
        async def static(name: str) -> Any:
            return self._static_response(name)

        @self.app.get("/healthz")
        async def healthz() -> Any:
            d = self.dispatcher
            workers = [w for w in d.registry.workers.values() if w.state != "offline"] if d else []
            ok = self.mqtt_connected()
            body = {"status": "ok" if ok else "degraded", "mqtt": ok, "workers": len(workers),
                    "queued": d.queued if d else 0}
            return jsonify(body), 200 if ok else 503

    def _static_response(self, name: str) -> Response:
        found = self.static.get(name)  # exact keys only: no path is ever joined, so no traversal
        if found is None:
            return Response("Not found\n", status=404, content_type="text/plain; charset=utf-8")
        body, content_type = found
        return Response(body, status=200, content_type=content_type)

    # -- Socket.IO ----------------------------------------------------------------------
    def _events(self) -> None:
        sio = self.sio

        @sio.event
        async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
            logger.info("session %s connected", sid)
            # The page checks a question's length before sending it (a question far over the
            # limit would otherwise exceed the message size and drop the connection).
            await sio.emit("limits", {"max_prompt_chars": self.settings.max_prompt_chars}, to=sid)

        @sio.event
        async def disconnect(sid: str, reason: Any = None) -> None:
            dropped = self.dispatcher.cancel_session(sid) if self.dispatcher else 0
            logger.info("session %s disconnected; %d unfinished tasks dropped", sid, dropped)

        @sio.on("ai-query")
        async def ai_query(sid: str, data: Any) -> dict[str, Any]:
            return self.handle_query(sid, data)

    def handle_query(self, sid: str, data: Any) -> dict[str, Any]:
        """Validate a query and queue it; the return value is the Socket.IO acknowledgement."""
        text, model = (data, "") if isinstance(data, str) else (
            (data.get("text"), data.get("model", "")) if isinstance(data, dict) else (None, "")
        )
        if not isinstance(text, str) or not text.strip():
            return _error("bad_request", "Send a non-empty question as text.")
        if not isinstance(model, str) or len(model) > 128:
            return _error("bad_request", "The model name must be text of at most 128 characters.")
        if len(text) > self.settings.max_prompt_chars:
            return _error(
                "prompt_too_long",
                f"The question has {len(text)} characters; the limit is {self.settings.max_prompt_chars}. Shorten it.",
            )
        model = model or self.settings.default_model
        if self.dispatcher is None:
            return _error("unavailable", "The service is starting. Try again in a moment.")
        try:
            task = self.dispatcher.submit(sid, text, model)
        except QueueFull:
            return _error("busy", "The service is at capacity. Try again in a minute.")
        logger.debug("queued, %d chars", len(text), extra={"task_id": task.task_id, "session": sid})
        if self.settings.log_content:
            logger.debug("content prompt=%r", text, extra={"task_id": task.task_id})
        return {"task_id": task.task_id}

    def deliver(self, task: Task, outcome: Outcome) -> None:
        """Send an outcome to the one session that asked (called on the event loop)."""
        elapsed_ms = (time.time() - task.created) * 1000
        self.stats.record(outcome.answer is not None, elapsed_ms)
        logger.debug(
            "delivered %s after %.1f ms", "answer" if outcome.answer is not None else f"error {outcome.error_code}",
            elapsed_ms, extra={"task_id": task.task_id, "worker_id": outcome.worker_id},
        )
        if outcome.answer is not None:
            event, payload = "ai-response", {"task_id": task.task_id, "answer": outcome.answer, "model": outcome.model}
        else:
            event, payload = "ai-error", {"task_id": task.task_id, "code": outcome.error_code,
                                          "message": outcome.error_message}
        emit = asyncio.get_running_loop().create_task(self.sio.emit(event, payload, to=task.session))
        self._emits.add(emit)
        emit.add_done_callback(self._emits.discard)


class DeliveryStats:
    """Counts and latencies of delivered outcomes, summarised in one INFO line per interval."""

    def __init__(self) -> None:
        self.answers = 0
        self.errors = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def record(self, answered: bool, elapsed_ms: float) -> None:
        self.answers += answered
        self.errors += not answered
        self.total_ms += elapsed_ms
        self.max_ms = max(self.max_ms, elapsed_ms)

    def log_and_reset(self, interval_s: float, queued: int, workers: int) -> None:
        n = self.answers + self.errors
        if n:
            logger.info(
                "last %.0f s: %d answers, %d errors, mean %.1f ms, max %.1f ms; %d queued, %d workers",
                interval_s, self.answers, self.errors, self.total_ms / n, self.max_ms, queued, workers,
            )
        self.__init__()  # type: ignore[misc]


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
