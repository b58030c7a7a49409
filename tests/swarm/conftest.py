"""The Swarm test's engine, images and phase timings (printed at the end of the run)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.swarm.engine import Engine, NoEngine, swarm_engine

REPO = Path(__file__).resolve().parents[2]
PHASES: list[tuple[str, float]] = []
NOTES: list[str] = []


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Time one phase of the Swarm test; the figures are printed in the terminal summary."""
    start = time.monotonic()
    try:
        yield
    finally:
        PHASES.append((name, time.monotonic() - start))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the Swarm test last: the quick tests report first, and none runs right after dockerd stops
    (the benchmark smoke test has timed out twice when it did)."""
    here = Path(__file__).parent
    items.sort(key=lambda item: here in Path(str(item.path)).parents)


def note(text: str) -> None:
    """A figure worth reading after the run (printed under the phase timings)."""
    NOTES.append(text)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if PHASES:
        terminalreporter.write_sep("-", "Swarm test phases (seconds)")
        for name, seconds in PHASES:
            terminalreporter.write_line(f"{seconds:7.1f}  {name}")
        for text in NOTES:
            terminalreporter.write_line(f"         {text}")


def run_script(name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 900,
               ) -> subprocess.CompletedProcess[str]:
    """Run one of scripts/ as an operator would; fail the test with its output when it fails."""
    result = subprocess.run([str(REPO / "scripts" / name), *args], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "AISYS_PYTHON": sys.executable, **(env or {})}, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"scripts/{name} {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                    f"{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="package")
def engine() -> Iterator[Engine]:
    """Docker's engine as a single-node swarm manager (installed, started, initialised when needed), undone as soon
    as tests/swarm is done, so that the rest of the suite runs without it."""
    with contextlib.ExitStack() as stack:
        try:
            with phase("engine: docker.io present, dockerd running, swarm active"):
                running = stack.enter_context(swarm_engine())
        except NoEngine as exc:
            pytest.skip(f"no Docker engine can run here: {exc}")
        yield running


@pytest.fixture(scope="package")
def images(engine: Engine) -> None:
    """The stand-in base images (cached by tag) and the real master and worker images (scripts/build.sh)."""
    with phase("stand-in base images (scripts/standin-images.sh)"):
        run_script("standin-images.sh")
    with phase("master and worker images (scripts/build.sh)"):
        run_script("build.sh")
