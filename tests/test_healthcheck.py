"""common/healthcheck.py: what the Docker HEALTHCHECKs run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from common.healthcheck import main
from devstack.local_broker import RunningBroker
from tests.pki_helpers import Pki
from tests.stack_helpers import local_stack, wait_until


def test_file_check_fresh_stale_missing(tmp_path: Path) -> None:
    """The file check passes a fresh file and fails a stale or missing one."""
    f = tmp_path / "health"
    assert main(["file", str(f)]) == 1
    f.touch()
    assert main(["file", str(f), "--max-age", "5"]) == 0
    old = time.time() - 60
    os.utime(f, (old, old))
    assert main(["file", str(f), "--max-age", "5"]) == 1


@pytest.mark.integration
async def test_master_https_check_and_worker_health_path(pki: Pki, broker: RunningBroker, tmp_path: Path) -> None:
    """The master passes its HTTPS check with our CA and fails it with another; a connected worker touches its file."""
    import asyncio

    health = tmp_path / "worker-health"
    async with local_stack(pki, broker, workers=1, worker_overrides={"health_path": health}) as stack:
        url = f"https://localhost:{stack.master.web_port}/healthz"
        assert await asyncio.to_thread(main, ["https", url, "--ca", str(pki.ca)]) == 0
        await wait_until(health.exists, what="health file")
        assert main(["file", str(health), "--max-age", "10"]) == 0
    assert main(["https", url, "--ca", str(pki.ca)]) == 1  # stopped
