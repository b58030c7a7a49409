#!/usr/bin/env bash
# Scale a service of the stack. Only workers scale: the master holds the queue in memory and
# mosquitto is a single broker.
# Usage: scripts/scale.sh worker N      (N from 0 to 100)
set -euo pipefail
# shellcheck source=scripts/swarm-lib.sh
source "$(dirname "$0")/swarm-lib.sh"

usage() { echo "usage: scripts/scale.sh worker N   (N from 0 to 100)" >&2; exit 1; }
[ $# -eq 2 ] || usage
service="$1" replicas="$2"
[[ "$replicas" =~ ^[0-9]+$ ]] && [ "$replicas" -le 100 ] || usage
case "$service" in
  worker) ;;
  master|mosquitto) die "$service runs as exactly one replica (state in memory / one broker); scale 'worker'" ;;
  *) usage ;;
esac
docker service scale "${STACK}_${service}=${replicas}"
