#!/usr/bin/env bash
# Make the CA and the master, mosquitto and worker certificates (python -m pki).
# Usage: scripts/gen-pki.sh [--out DIR] [--hostname NAME ...] [--renew] [--force]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
PY="$(project_python)"
exec "$PY" -m pki "$@"
