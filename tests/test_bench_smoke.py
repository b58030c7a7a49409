"""The benchmark runs and prints every figure (a few tasks only; no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


def test_quick_benchmark_prints_every_figure(tmp_path: Path) -> None:
    """bench --quick runs against the real stack and reports every figure, with no errors."""
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=240, env={**os.environ})
    assert result.returncode == 0, result.stdout + result.stderr
    for figure in ("saturation", "25 % load", "50 % load", "90 % load", "floor, 1 in flight",
                   "system / floor throughput", "utilisation", "Socket.IO connections held", "master RSS"):
        assert figure in result.stdout, figure
    report = json.loads(out.read_text())
    assert report["saturation"]["errors"] == 0 and report["saturation"]["tasks_per_s"] > 0
    assert report["connections"]["held"] == 20
    assert set(report["load"]) == {"25%", "50%", "90%"}


def test_quick_first_chunk_benchmark_prints_its_figures(tmp_path: Path) -> None:
    """bench --first-chunk --quick streams answers through Socket.IO and reports the time to first chunk."""
    out = tmp_path / "first.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--first-chunk", "--quick", "--json", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=240, env={**os.environ})
    assert result.returncode == 0, result.stdout + result.stderr
    for figure in ("time to first chunk", "over the model's first token", "floor, 1 in flight"):
        assert figure in result.stdout, figure
    report = json.loads(out.read_text())["first_chunk"]
    assert report["errors"] == 0 and report["answers"] > 0 and report["chunks"] > report["answers"]
