#!/usr/bin/env bash
# Remove the stack (services, networks, configs). Secrets and the broker's volume are kept.
# Usage: scripts/stop.sh
set -euo pipefail
# shellcheck source=scripts/swarm-lib.sh
source "$(dirname "$0")/swarm-lib.sh"
[ $# -eq 0 ] || { echo "usage: scripts/stop.sh" >&2; exit 1; }
docker stack rm "$STACK"
echo "stack $STACK removed (secrets kept: 'docker secret ls')"
