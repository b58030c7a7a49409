#!/usr/bin/env bash
# Build the master and worker images (and push them with --push).
# Usage: scripts/build.sh [--tag TAG] [--registry REGISTRY] [--push]
set -euo pipefail
# shellcheck source=scripts/swarm-lib.sh
source "$(dirname "$0")/swarm-lib.sh"
cd "$REPO_ROOT"

usage() { echo "usage: scripts/build.sh [--tag TAG] [--registry REGISTRY] [--push]" >&2; exit 1; }
tag="${TAG:-latest}" registry="${REGISTRY:-ai-system}" push=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || usage; tag="$2"; shift 2 ;;
    --registry) [ $# -ge 2 ] || usage; registry="$2"; shift 2 ;;
    --push) push=1; shift ;;
    *) usage ;;
  esac
done

# One image per service, built from the repository root (the Dockerfiles copy common/).
for service in master worker; do
  docker build -f "$service/Dockerfile" -t "$registry/$service:$tag" .
  if [ "$push" -eq 1 ]; then docker push "$registry/$service:$tag"; fi
done
echo "built $registry/master:$tag and $registry/worker:$tag"
