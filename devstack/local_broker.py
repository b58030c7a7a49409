"""Start the real mosquitto binary with our config on 127.0.0.1, and stop it by PID."""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.broker_config import BrokerFiles, broker_env, render_acl, render_config

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
BROKER_USER = "mosquitto"


class BrokerError(RuntimeError):
    """The broker could not be started; the message says why and what to do."""


@dataclass(frozen=True)
class RunningBroker:
    port: int
    pid: int
    directory: Path
    log_path: Path


def find_mosquitto() -> str:
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise BrokerError("mosquitto is not installed: run 'apt-get install -y mosquitto' (scripts/test.sh does)")


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux), or the usual default."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A port to listen on that is free now, chosen below the ephemeral range: a port the kernel hands out
    (bind to 0) can be taken by any outgoing connection before the caller binds it, which parallel test
    processes made happen; a port outside that range can only be taken by another listener."""
    low, _ = _ephemeral_ports()
    rng = random.SystemRandom()
    for _ in range(100):
        port = rng.randrange(10_000, max(10_001, min(low, 32_768)))
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # no luck below the range: let the kernel choose
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _broker_user() -> str | None:
    """Mosquitto started as root drops to user 'mosquitto'; give it its files. None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(BROKER_USER)
    except KeyError:
        return "root"  # no unprivileged account to drop to; mosquitto then stays root
    return BROKER_USER


def prepare_broker_dir(
    directory: Path, ca_cert: Path, cert: Path, key: Path, password_file: Path, topic_prefix: str
) -> BrokerFiles:
    """Copy the broker's secrets into a 0700 directory that the broker's user owns."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    files = BrokerFiles(
        ca_cert=directory / "ca.crt",
        cert=directory / "mosquitto.crt",
        key=directory / "mosquitto.key",
        password_file=directory / "mosquitto_passwd",
        acl_file=directory / "acl",
        data_dir=directory / "data",
    )
    for src, dst in ((ca_cert, files.ca_cert), (cert, files.cert), (key, files.key), (password_file, files.password_file)):
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o600)
    files.acl_file.write_text(render_acl(topic_prefix))
    os.chmod(files.acl_file, 0o600)
    files.data_dir.mkdir(exist_ok=True)
    user = _broker_user()
    if user and user != "root":
        entry = pwd.getpwnam(user)
        for path in (directory, files.data_dir, *directory.glob("*"), *files.data_dir.glob("*")):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return files


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise BrokerError(f"mosquitto exited with code {proc.returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{port} within {timeout:.0f} s (log: {log_path})")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; always reaps."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class BrokerSetup:
    """A broker's rendered files and port: enough to start (and restart) the same broker."""

    binary: str
    directory: Path
    conf: Path
    port: int
    log_path: Path


def prepare_broker(
    ca_cert: Path,
    cert: Path,
    key: Path,
    password_file: Path,
    directory: Path,
    *,
    port: int | None = None,
    topic_prefix: str = "upb",
    log_path: Path | None = None,
) -> BrokerSetup:
    """Copy the broker's files into `directory` and render its config for `port` (a free one if None)."""
    binary = find_mosquitto()
    files = prepare_broker_dir(directory, ca_cert, cert, key, password_file, topic_prefix)
    chosen_port = port or free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(render_config(files, chosen_port, user=_broker_user()))
    return BrokerSetup(binary, directory, conf, chosen_port, log_path or directory / "mosquitto.log")


def start_broker_process(setup: BrokerSetup) -> subprocess.Popen[bytes]:
    """Start mosquitto with `setup`'s config, its output appended to `setup.log_path`; does not wait."""
    with open(setup.log_path, "ab") as log_file:
        # mosquitto 2.0 buffers stdout when it is a file: line-buffer it so the log is live.
        line_buffered = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
        return subprocess.Popen(
            [*line_buffered, setup.binary, "-c", str(setup.conf)], stdout=log_file, stderr=subprocess.STDOUT,
            env=broker_env(), process_group=0,
        )


def wait_for_broker(setup: BrokerSetup, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Return once the broker listens; BrokerError (with its log's end) if it exits or times out first."""
    _wait_for_port(setup.port, proc, setup.log_path, timeout)


def broker_temp_dir() -> Path:
    """A fresh directory for a broker's files, outside pytest's 0700 tmp tree (the broker's user must reach it)."""
    return Path(tempfile.mkdtemp(prefix="aisys-broker-"))


@contextlib.contextmanager
def run_broker(
    ca_cert: Path,
    cert: Path,
    key: Path,
    password_file: Path,
    *,
    directory: Path | None = None,
    port: int | None = None,
    topic_prefix: str = "upb",
    log_path: Path | None = None,
    start_timeout: float = 10.0,
) -> Iterator[RunningBroker]:
    """Run mosquitto on 127.0.0.1 with the rendered config; yields once it listens, stops on exit."""
    find_mosquitto()
    own_dir = directory is None
    broker_dir = broker_temp_dir() if directory is None else directory
    try:
        setup = prepare_broker(ca_cert, cert, key, password_file, broker_dir, port=port,
                               topic_prefix=topic_prefix, log_path=log_path)
        proc = start_broker_process(setup)
        try:
            wait_for_broker(setup, proc, start_timeout)
            yield RunningBroker(setup.port, proc.pid, broker_dir, setup.log_path)
        finally:
            stop_process(proc)
    finally:
        if own_dir:
            shutil.rmtree(broker_dir, ignore_errors=True)


def reload_broker(broker: RunningBroker) -> None:
    """SIGHUP: mosquitto re-reads its password and ACL files."""
    os.kill(broker.pid, signal.SIGHUP)
