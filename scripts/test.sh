#!/usr/bin/env bash
# The test command: venv with the test extra, mosquitto (apt-get when missing), then pytest.
# Usage: scripts/test.sh [PYTEST ARGS...]   e.g. scripts/test.sh -m "not browser" -x
# Runs on AISYS_TEST_WORKERS pytest-xdist processes (default 2), one test file per process at a time
# (most tests wait on processes and sockets, not on the CPU); `-n 0` in the arguments runs in one.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

# 1. Python dependencies in .venv (reinstalled only when pyproject.toml changes).
ensure_venv test
# 2. The real broker binary the tests start.
ensure_mosquitto
# 3. A headless browser for the browser tests (Debian's chromium), and Prometheus for the monitoring tests;
#    those tests are skipped with a reason when absent.
ensure_chromium || true
ensure_prometheus || true
# 4. The suite; extra arguments go to pytest (after the defaults, so they win).
exec "$VENV/bin/python" -m pytest -n "${AISYS_TEST_WORKERS:-2}" --dist loadfile "$@"
