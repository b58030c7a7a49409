#!/usr/bin/env bash
# Benchmark the secured system on this machine: throughput at saturation, latency at 25/50/90 %
# load, CPU and RSS, the transport floor and the ratio, slot utilisation, connection scale.
# With --first-chunk: only the time to first answer chunk through Socket.IO (streaming), echo at
# --first-token S to its first word and --answer-time S in all, at --load of the slots.
# Usage: scripts/bench.sh [--workers W] [--capacity C] [--clients M] [--depth D] [--duration S]
#        [--connections N] [--json FILE] [--quick]
#        [--first-chunk [--first-token S] [--answer-time S] [--load F]]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

# 1. The driver's venv (the test extra has the load clients), and one runtime-only venv per
#    service, so each loads exactly what its image installs (no aiohttp, no test tools).
ensure_venv test
MASTER_VENV="${AISYS_MASTER_VENV:-$REPO_ROOT/.venv-master}"
WORKER_VENV="${AISYS_WORKER_VENV:-$REPO_ROOT/.venv-worker}"
ensure_venv master "$MASTER_VENV"
ensure_venv worker "$WORKER_VENV"
ensure_mosquitto
# 2. Run; figures on stdout (and as JSON with --json).
exec "$VENV/bin/python" -m bench --master-python "$MASTER_VENV/bin/python" \
  --worker-python "$WORKER_VENV/bin/python" "$@"
