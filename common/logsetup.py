"""One logging setup for every process: one line per event, key=value, every line redacted."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from types import TracebackType
from typing import TextIO

from common.redaction import redact
from common.stderr_relay import relay_stderr, relayed_stderr

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


def configure_logging(component: str, level: str = "INFO", *, relay_native_stderr: bool = False) -> None:
    """Make one redacting stderr handler the only way out of `logging`, for every logger, now and later.

    - the root logger gets that handler (and the level); every record propagates to it;
    - a library's own handler to stdout/stderr is removed now (any logger that has one) and refused
      later: python-engineio and python-socketio, given `logger=False`, add a bare
      `StreamHandler()` to `engineio.server` / `socketio.server` when the server object is built,
      which is after this call, and uvicorn's default `dictConfig` does the same; such a line
      reached stderr unformatted and unredacted;
    - a record that finds no handler (a library logger with `propagate = False`) goes to
      `logging.lastResort`, which is this handler instead of Python's bare one;
    - warnings, uncaught exceptions and uncaught thread exceptions are logged through it too;
    - with `relay_native_stderr` (services, not tests: it takes over file descriptor 2), what C
      libraries such as gRPC core write to stderr becomes records too (common/stderr_relay.py).
    Handlers that write elsewhere (a buffer, a file the operator configured) are left alone.
    """
    handler: logging.StreamHandler[TextIO]
    real_stderr = relay_stderr() if relay_native_stderr else relayed_stderr()  # once relayed, always
    if real_stderr is not None:
        handler = _RelayedStderrHandler(real_stderr)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(component))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.lastResort = handler
    logging.captureWarnings(True)
    for name in list(logging.Logger.manager.loggerDict):
        lib = logging.Logger.manager.loggerDict[name]
        if isinstance(lib, logging.Logger):
            for h in [h for h in lib.handlers if _writes_to_std_stream(h)]:
                lib.removeHandler(h)
                lib.propagate = True
    if logging.Logger.addHandler is not _add_handler_except_to_std_streams:
        logging.Logger.addHandler = _add_handler_except_to_std_streams  # type: ignore[method-assign]
    # Uncaught exceptions (main thread, paho's network thread, any other) go through the
    # redacting handler too, instead of Python's raw traceback printer.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


class _RelayedStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the real stderr while descriptor 2 is relayed into logging.

    A failed write is dropped: Python's default reports it on sys.stderr, which the relay would
    turn into another record for this handler, and so on without end.
    """

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802
        return


_logger_add_handler = logging.Logger.addHandler


def _add_handler_except_to_std_streams(self: logging.Logger, hdlr: logging.Handler) -> None:
    """Logger.addHandler after configure_logging: a handler to stdout/stderr on a non-root logger is dropped.

    The logger then propagates to the root handler instead, so the line is written once, in our
    format, redacted.
    """
    if self is not logging.getLogger() and _writes_to_std_stream(hdlr):
        self.propagate = True
        return
    _logger_add_handler(self, hdlr)


def _writes_to_std_stream(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return stream is not None and any(stream is s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__))


def _log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("uncaught").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "?"
    logging.getLogger("uncaught").critical(
        "uncaught exception in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)  # type: ignore[arg-type]
    )
