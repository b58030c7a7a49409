"""File descriptor 2 into `logging`: what C libraries write to stderr gets our format and redaction too.

gRPC core logs through absl straight to file descriptor 2, for example one line per failed TLS
handshake on the results port (`I1130 12:43:33.952658   21723 ssl_transport_security.cc:2563]
Handshake failed ...`); Python's logging never sees it. `relay_stderr()` makes descriptor 2 a
pipe, a thread turns each line into a record of logger `stderr` (absl's I/W/E/F letter gives the
level), and returns the real stderr, where the logging handler then writes. Whatever writes to
`sys.stderr` directly (a stray print) takes the same path. At exit the pipe is drained first; a
crash dump (faulthandler) goes to the real stderr directly, since the relay thread may be dead.
"""

from __future__ import annotations

import atexit
import faulthandler
import logging
import os
import re
import sys
import threading
from typing import TextIO

# absl: severity letter, MMDD, time, thread id, then "file.cc:line] message".
ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ (.*)$")
ABSL_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}

_state: dict[str, TextIO] = {}
_lock = threading.Lock()


def relay_stderr() -> TextIO:
    """Route file descriptor 2 through `logging` (once per process); returns a stream on the real stderr."""
    with _lock:
        if "real" in _state:
            return _state["real"]
        sys.stderr.flush()
        real_fd = os.dup(2)
        real = os.fdopen(real_fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace")
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        relay = threading.Thread(target=_relay, args=(read_fd,), name="stderr-relay", daemon=True)
        relay.start()
        faulthandler.enable(file=real)
        atexit.register(_drain, real_fd, relay)
        _state["real"] = real
        return real


def relayed_stderr() -> TextIO | None:
    """The real stderr if this process relays descriptor 2 (then nothing may write to sys.stderr for it)."""
    return _state.get("real")


def record_for(line: str) -> tuple[int, str]:
    """The level and message for one stderr line: absl's severity letter, else WARNING."""
    match = ABSL_LINE.match(line)
    if match:
        return ABSL_LEVELS[match[1]], match[2]
    return logging.WARNING, line


def _relay(read_fd: int) -> None:
    log = logging.getLogger("stderr")
    with open(read_fd, "rb") as pipe:
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.strip():
                level, message = record_for(line)
                log.log(level, "%s", message)


def _drain(real_fd: int, relay: threading.Thread) -> None:
    """At exit: descriptor 2 back to the real stderr (closing the pipe), then let the relay finish."""
    sys.stderr.flush()
    os.dup2(real_fd, 2)
    relay.join(timeout=2)
