"""Keep the local stack's processes running: restart one that exits, with back-off; stop them all in order.

A watcher thread polls the children. A child that exits while the stack runs is logged (name, PID,
exit code, back-off) and started again with the same start function (same command, environment,
log file and port) after its back-off: 1 s, doubling to 30 s, back to 1 s once it has stayed up
for a minute. A child that exits 5 times within a minute is reported as crash-looping (with the
last line of its log) and retried every 30 s for as long as the stack runs: the others keep serving,
and the usual cause (a dependency that is itself restarting, a port still held) goes away.
`stop()` ends supervision first, so a child waiting for its restart is not restarted, then stops
the children by PID in the reverse of the order they were added (workers, master, mosquitto).
"""

from __future__ import annotations

import collections
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.local_broker import stop_process

logger = logging.getLogger(__name__)

Starter = Callable[[], "subprocess.Popen[bytes]"]


@dataclass(frozen=True)
class BackOff:
    """When to restart, and what counts as crash-looping or as having recovered."""

    first_s: float = 1.0
    max_s: float = 30.0
    stable_after_s: float = 60.0
    loop_exits: int = 5
    loop_window_s: float = 60.0


@dataclass
class _Child:
    name: str
    start: Starter
    log_path: Path | None
    stop_timeout: float
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    delay_s: float = 0.0
    restart_at: float | None = None
    exits: collections.deque[float] = field(default_factory=collections.deque)
    looping: bool = False
    restarts: int = 0


def describe_exit(code: int | None) -> str:
    """`code 3`, or `code -9 (killed by SIGKILL)`."""
    if code is None:
        return "no exit code (it could not be started)"
    if code < 0:
        try:
            return f"code {code} (killed by {signal.Signals(-code).name})"
        except ValueError:
            return f"code {code}"
    return f"code {code}"


def _last_log_line(path: Path | None) -> str:
    if path is None or not path.is_file():
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, 2) - 2000))
        lines = f.read().decode(errors="replace").strip().splitlines()
    return lines[-1][-300:] if lines else ""


class Supervisor:
    """The stack's children by name; `processes` is the live name -> Popen map (updated on restart)."""

    def __init__(self, backoff: BackOff = BackOff(), clock: Callable[[], float] = time.monotonic,
                 on_start: Callable[[Supervisor], None] | None = None) -> None:
        self.backoff = backoff
        self.clock = clock
        self.on_start = on_start
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._children: dict[str, _Child] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._watching = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, name: str, start: Starter, *, log_path: Path | None = None, stop_timeout: float = 15.0) -> subprocess.Popen[bytes]:
        """Start a child now (an exception from `start` propagates: start-up errors stay immediate)."""
        child = _Child(name, start, log_path, stop_timeout, delay_s=self.backoff.first_s)
        with self._lock:
            self._children[name] = child
            self._start(child)
        assert child.proc is not None
        return child.proc

    def _start(self, child: _Child) -> None:
        child.proc = child.start()
        child.started_at = self.clock()
        child.restart_at = None
        self.processes[child.name] = child.proc
        if self.on_start is not None:
            self.on_start(self)

    def check(self) -> None:
        """One pass: notice children that exited, restart those whose back-off is over."""
        with self._lock:
            if self._stopping:
                return
            now = self.clock()
            for child in self._children.values():
                if child.restart_at is None:
                    self._notice_exit(child, now)
                elif now >= child.restart_at:
                    self._restart(child, now)

    def _notice_exit(self, child: _Child, now: float) -> None:
        assert child.proc is not None
        code = child.proc.poll()
        if code is None:
            if child.looping and now - child.started_at >= self.backoff.stable_after_s:
                child.looping = False
                child.delay_s = self.backoff.first_s
                logger.warning("%s has stayed up for %.0f s after %d restarts: back-off reset to %.0f s",
                               child.name, self.backoff.stable_after_s, child.restarts, child.delay_s)
            return
        self._schedule(child, now, describe_exit(code), child.proc.pid)

    def _schedule(self, child: _Child, now: float, why: str, pid: int | None) -> None:
        if now - child.started_at >= self.backoff.stable_after_s and not child.looping:
            child.delay_s = self.backoff.first_s
        child.exits.append(now)
        while child.exits and now - child.exits[0] > self.backoff.loop_window_s:
            child.exits.popleft()
        if len(child.exits) >= self.backoff.loop_exits:
            child.delay_s = self.backoff.max_s
            if not child.looping:
                child.looping = True
                last = _last_log_line(child.log_path)
                logger.error(
                    "%s keeps exiting: %d exits within %.0f s, the last with %s; retrying every %.0f s while "
                    "the rest of the stack runs (see %s%s)", child.name, len(child.exits), self.backoff.loop_window_s,
                    why, child.delay_s, child.log_path or "its output",
                    f"; its log ends: {last}" if last else "")
        who = f"{child.name} (pid {pid})" if pid is not None else child.name
        logger.warning("%s exited unexpectedly with %s; restarting it in %.0f s", who, why, child.delay_s)
        child.restart_at = now + child.delay_s
        child.delay_s = min(child.delay_s * 2, self.backoff.max_s)

    def _restart(self, child: _Child, now: float) -> None:
        try:
            self._start(child)
        except Exception as exc:  # e.g. the binary vanished: treat as an exit and try again later
            child.started_at = now
            self._schedule(child, now, f"no process ({type(exc).__name__}: {exc})", None)
            return
        child.restarts += 1
        assert child.proc is not None
        logger.warning("%s restarted (pid %d)", child.name, child.proc.pid)

    def watch(self, interval_s: float = 0.2) -> None:
        """Supervise from a daemon thread until `stop()`."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._watching.wait(interval_s):
                try:
                    self.check()
                except Exception:  # never let the watcher die silently
                    logger.exception("supervisor pass failed")

        self._thread = threading.Thread(target=loop, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End supervision (nothing is restarted after this), then stop every child in reverse order of `add`."""
        with self._lock:
            self._stopping = True
        self._watching.set()
        if self._thread is not None:
            self._thread.join()
        for child in reversed(list(self._children.values())):
            if child.proc is not None:
                stop_process(child.proc, timeout=child.stop_timeout)
