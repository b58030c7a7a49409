#!/usr/bin/env bash
# Run the whole system locally: mosquitto + master + workers on 127.0.0.1, over TLS at every hop.
# Makes the PKI and MQTT credentials on first run. Gemini when GEMINI_API_KEY_FILE names a key
# file, the offline echo model otherwise. Ctrl-C or SIGTERM stops everything.
# Usage: [GEMINI_API_KEY_FILE=path] scripts/run-local.sh [--workers N] [--capacity N] [--web-port P]
#        [--echo-latency S] [--log-level LEVEL]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

# 1. Python dependencies of both services in .venv (installed only when pyproject.toml changed).
ensure_venv master,worker
# 2. The broker binary.
ensure_mosquitto
# 3. PKI and credentials on first run, then the processes; exec so signals reach the launcher.
exec "$VENV/bin/python" -m devstack.local_run "$@"
