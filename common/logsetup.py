"""One logging setup for every process: one line per event, key=value, every line redacted."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from types import TracebackType

from common.redaction import redact

# Fields a record may carry via `extra=` and that get their own key.
CONTEXT_FIELDS = ("task_id", "worker_id", "session")


class RedactingFormatter(logging.Formatter):
    """`time=… level=… component=… logger=… msg="…"` with every secret removed, tracebacks included."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        t = time.gmtime(record.created)
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string must not lose the event
            message = f"{record.msg!r} (unformattable: {type(exc).__name__})"
        parts = [
            f"time={self.formatTime(record)}",
            f"level={record.levelname}",
            f"component={self.component}",
            f"logger={record.name}",
        ]
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                parts.append(f"{name}={value}")
        text = message
        if record.exc_info:
            # formatException walks the chained causes (__cause__/__context__) too.
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        parts.append("msg=" + json.dumps(redact(text), ensure_ascii=False))
        return " ".join(parts)


def configure_logging(component: str, level: str = "INFO") -> None:
    """Replace every root handler with one redacting stderr handler; route warnings there too."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(component))
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    # Libraries that add their own handlers would bypass redaction: send them through the root.
    for name in ("hypercorn.error", "hypercorn.access", "quart.app", "quart.serving", "engineio", "socketio", "httpx",
                 "google_genai", "grpc", "paho"):
        lib = logging.getLogger(name)
        for h in list(lib.handlers):
            lib.removeHandler(h)
        lib.propagate = True
    # Uncaught exceptions (main thread, paho's network thread, any other) go through the
    # redacting handler too, instead of Python's raw traceback printer.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("uncaught").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "?"
    logging.getLogger("uncaught").critical(
        "uncaught exception in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)  # type: ignore[arg-type]
    )
