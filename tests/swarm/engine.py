"""A Docker engine in a single-node swarm for the Swarm test: reuse what runs, start (and later stop) what does not."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


class NoEngine(Exception):
    """No Docker engine can run here (and none could be installed): the Swarm test is skipped with this reason."""


@dataclass
class Engine:
    """The engine the test talks to and what the test itself set up (and must take down)."""

    started_dockerd: subprocess.Popen[bytes] | None
    created_swarm: bool
    server_version: str
    client_version: str


def docker(*args: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[str]:
    """Run the docker client; on failure raise with its stderr."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def _install_docker() -> None:
    """Debian's docker.io (engine 20.10 on Debian 12) with apt-get; NoEngine when that is impossible."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise NoEngine("no dockerd and no way to install one (needs root and apt-get: apt-get install -y docker.io)")
    logger.info("installing docker.io with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "docker.io"]):
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()[-500:]}")


def _start_dockerd(log_dir: Path) -> subprocess.Popen[bytes]:
    if os.geteuid() != 0:
        raise NoEngine("dockerd is not running and only root can start it")
    with (log_dir / "dockerd.log").open("wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _engine_answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_dockerd(proc)
            tail = (log_dir / "dockerd.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"dockerd did not come up (see {log_dir}/dockerd.log):\n{tail}")
        time.sleep(0.2)
    return proc


def _stop_dockerd(proc: subprocess.Popen[bytes]) -> None:
    """Stop the dockerd this test started (by its PID); it stops the containerd it started."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def swarm_engine() -> Iterator[Engine]:
    """A docker engine that is a swarm manager; what this created is undone on exit, nothing else."""
    if shutil.which("dockerd") is None:
        _install_docker()
    if shutil.which("docker") is None:
        raise NoEngine("no docker client (apt-get install -y docker.io)")
    log_dir = Path(tempfile.mkdtemp(prefix="aisys-dockerd-"))
    started = None if _engine_answers() else _start_dockerd(log_dir)
    created_swarm = False
    try:
        if docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() != "active":
            docker("swarm", "init", "--advertise-addr", "127.0.0.1")
            created_swarm = True
        versions = docker("version", "--format", "{{.Client.Version}} {{.Server.Version}}").stdout.split()
        yield Engine(started, created_swarm, server_version=versions[1], client_version=versions[0])
    finally:
        if created_swarm:
            docker("swarm", "leave", "--force", check=False)
        if started is not None:
            _stop_dockerd(started)
        shutil.rmtree(log_dir, ignore_errors=True)
