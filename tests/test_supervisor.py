"""devstack/supervisor.py on stand-in processes and a manual clock: back-off, crash loops, shutdown order.

The real launcher under kill -9 is tested in tests/test_local_run.py.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytest

from devstack.supervisor import BackOff, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProc:
    """What Supervisor and stop_process use of a Popen: pid, poll, send_signal, wait, kill."""

    def __init__(self, pid: int, stopped: list[str], name: str) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stopped = stopped
        self.name = name

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self.stopped.append(self.name)
        self.returncode = -signum

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.returncode = -signal.SIGKILL


class Children:
    """Start functions that make FakeProcs and remember every start."""

    def __init__(self) -> None:
        self.starts: dict[str, list[FakeProc]] = {}
        self.stopped: list[str] = []
        self.next_pid = 100

    def starter(self, name: str):  # type: ignore[no-untyped-def]
        def start() -> FakeProc:
            self.next_pid += 1
            proc = FakeProc(self.next_pid, self.stopped, name)
            self.starts.setdefault(name, []).append(proc)
            return proc
        return start

    def kill(self, name: str, code: int = -signal.SIGKILL) -> None:
        self.starts[name][-1].returncode = code


def restart_delays(sup: Supervisor, clock: Clock, children: Children, name: str, exits: int) -> list[float]:
    """Kill `name` `exits` times at once after each start; the seconds each restart waited."""
    delays = []
    for _ in range(exits):
        children.kill(name)
        sup.check()
        killed_at = clock.now
        count = len(children.starts[name])
        while len(children.starts[name]) == count:
            clock.now += 0.5
            sup.check()
        delays.append(clock.now - killed_at)
    return delays


def make(backoff: BackOff = BackOff()) -> tuple[Supervisor, Clock, Children]:
    clock = Clock()
    return Supervisor(backoff, clock=clock), clock, Children()


def test_restart_waits_doubling_backoff_up_to_max_when_child_keeps_exiting() -> None:
    """Each quick exit doubles the wait before the restart: 1, 2, 4, 8, 16, then 30 s at most."""
    sup, clock, children = make(BackOff(loop_exits=100))
    sup.add("worker-1", children.starter("worker-1"))  # type: ignore[arg-type]
    assert restart_delays(sup, clock, children, "worker-1", 7) == [1, 2, 4, 8, 16, 30, 30]
    assert sup.processes["worker-1"] is children.starts["worker-1"][-1]


def test_backoff_resets_when_child_stayed_up_long_enough() -> None:
    """After a restarted child has run for `stable_after_s`, its next exit waits the first back-off again."""
    sup, clock, children = make(BackOff(loop_exits=100))
    sup.add("master", children.starter("master"))  # type: ignore[arg-type]
    assert restart_delays(sup, clock, children, "master", 3) == [1, 2, 4]
    clock.now += 60
    sup.check()
    assert restart_delays(sup, clock, children, "master", 1) == [1]


def test_exit_is_logged_with_name_pid_code_and_backoff(caplog: pytest.LogCaptureFixture) -> None:
    """The line for an exit names the child, its PID, its exit code (and signal) and the back-off."""
    sup, clock, children = make()
    sup.add("worker-2", children.starter("worker-2"))  # type: ignore[arg-type]
    pid = children.starts["worker-2"][0].pid
    with caplog.at_level(logging.WARNING, logger="devstack.supervisor"):
        children.kill("worker-2")
        sup.check()
        clock.now += 1
        sup.check()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"worker-2 (pid {pid}) exited unexpectedly with code -9 (killed by SIGKILL); restarting it in 1 s",
        f"worker-2 restarted (pid {children.starts['worker-2'][1].pid})",
    ]


def test_crash_loop_is_reported_once_with_log_end_and_retried_at_max_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """5 exits within a minute: one ERROR naming the child and its log's last line; it is still retried, every 30 s."""
    log = tmp_path / "worker-1.log"
    log.write_text("starting\nCRITICAL cannot start worker: TLS_CERT_FILE=/x is not readable\n")
    sup, clock, children = make()
    sup.add("worker-1", children.starter("worker-1"), log_path=log)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="devstack.supervisor"):
        delays = restart_delays(sup, clock, children, "worker-1", 7)
    assert delays == [1, 2, 4, 8, 30, 30, 30]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("worker-1 keeps exiting: 5 exits within 60 s, the last with code -9")
    assert "retrying every 30 s" in errors[0] and str(log) in errors[0]
    assert errors[0].endswith("; its log ends: CRITICAL cannot start worker: TLS_CERT_FILE=/x is not readable)")
    assert len(children.starts["worker-1"]) == 8


def test_crash_loop_ends_when_child_stays_up(caplog: pytest.LogCaptureFixture) -> None:
    """A crash-looping child that then stays up a minute is reported recovered, and its back-off starts at 1 s again."""
    sup, clock, children = make()
    sup.add("mosquitto", children.starter("mosquitto"))  # type: ignore[arg-type]
    restart_delays(sup, clock, children, "mosquitto", 5)
    clock.now += 60
    with caplog.at_level(logging.WARNING, logger="devstack.supervisor"):
        sup.check()
    assert "mosquitto has stayed up for 60 s after 5 restarts: back-off reset to 1 s" in caplog.messages
    assert restart_delays(sup, clock, children, "mosquitto", 1) == [1]


def test_stop_during_backoff_does_not_restart_the_child() -> None:
    """A child waiting for its restart when stop() is called is never started again."""
    sup, clock, children = make()
    sup.add("worker-1", children.starter("worker-1"))  # type: ignore[arg-type]
    children.kill("worker-1")
    sup.check()
    sup.stop()
    clock.now += 100
    sup.check()
    assert len(children.starts["worker-1"]) == 1


def test_stop_stops_workers_then_master_then_broker() -> None:
    """stop() signals the children in the reverse order they were added: workers, the master, mosquitto."""
    sup, _clock, children = make()
    for name in ("mosquitto", "master", "worker-1", "worker-2"):
        sup.add(name, children.starter(name))  # type: ignore[arg-type]
    sup.stop()
    assert children.stopped == ["worker-2", "worker-1", "master", "mosquitto"]


def test_restart_that_fails_to_start_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    """A start function that raises on restart counts as an exit: logged with the error, tried again after back-off."""
    sup, clock, children = make()
    real_start = children.starter("master")
    failures = [OSError("python vanished")]

    def start():  # type: ignore[no-untyped-def]
        if failures and len(children.starts.get("master", [])) == 1:
            raise failures.pop()
        return real_start()

    sup.add("master", start)
    with caplog.at_level(logging.WARNING, logger="devstack.supervisor"):
        children.kill("master")
        sup.check()
        clock.now += 1
        sup.check()
        clock.now += 2
        sup.check()
    assert "master exited unexpectedly with no process (OSError: python vanished); restarting it in 2 s" in caplog.messages
    assert len(children.starts["master"]) == 2
