#!/usr/bin/env bash
# Make random MQTT passwords (users master, worker) and the mosquitto $7$ password file.
# Usage: scripts/gen-credentials.sh [--out DIR] [--rotate master|worker ...]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
PY="$(project_python)"
exec "$PY" -m pki.credentials "$@"
