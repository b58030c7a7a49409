"""The committed gRPC stubs match proto/ (regenerated with the pinned grpcio-tools)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    """Regenerating from proto/worker.proto gives byte-identical stubs; if not, run scripts/gen-proto.sh."""
    env = {**os.environ, "AISYS_PYTHON": sys.executable}
    result = subprocess.run(
        [str(REPO / "scripts" / "gen-proto.sh"), "--out", str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    for name in ("worker_pb2.py", "worker_pb2_grpc.py"):
        fresh = (tmp_path / "common" / "rpc" / name).read_text()
        assert fresh == (REPO / "common" / "rpc" / name).read_text(), f"{name} is stale: run scripts/gen-proto.sh"
