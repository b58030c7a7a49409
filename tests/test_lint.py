"""Static checks that CI runs with the suite: hadolint on the Dockerfiles, shellcheck on the scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is missing: it comes with the test extra (pip install -e '.[test]')"
    return found


@pytest.mark.integration
def test_hadolint_passes_both_dockerfiles() -> None:
    """hadolint finds nothing in master/Dockerfile and worker/Dockerfile."""
    result = subprocess.run([tool("hadolint"), "master/Dockerfile", "worker/Dockerfile"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_shellcheck_passes_every_script() -> None:
    """shellcheck -x finds nothing in any script or .ci/run."""
    scripts = sorted(str(p.relative_to(REPO)) for p in (REPO / "scripts").glob("*.sh")) + [".ci/run"]
    result = subprocess.run([tool("shellcheck"), "-x", *scripts], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scripts_are_strict_and_executable() -> None:
    """Every script: bash shebang, set -euo pipefail (sourced libraries excepted), executable, no set -x."""
    for path in sorted((REPO / "scripts").glob("*.sh")) + [REPO / ".ci" / "run"]:
        text = path.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), path
        code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        assert not any("set -x" in line or "set -o xtrace" in line for line in code), path
        if path.name not in ("lib.sh", "swarm-lib.sh"):
            assert "set -euo pipefail" in text, path
            assert path.stat().st_mode & 0o111, f"{path} is not executable"
