#!/usr/bin/env bash
# Rotate one secret without a code change: create <name>_v<N+1> from FILE, swap it into every
# service that mounts it (same target path, /run/secrets/<name>), wait for the rollout, then
# remove the old version. A failed rollout keeps the old secret.
# Usage: scripts/rotate-secret.sh [--secret NAME] FILE     (NAME defaults to gemini_api_key)
set -euo pipefail
# shellcheck source=scripts/swarm-lib.sh
source "$(dirname "$0")/swarm-lib.sh"

usage() { echo "usage: scripts/rotate-secret.sh [--secret NAME] FILE   (NAME: ${SECRETS[*]})" >&2; exit 1; }
name=gemini_api_key file=""
while [ $# -gt 0 ]; do
  case "$1" in
    --secret) [ $# -ge 2 ] || usage; name="$2"; shift 2 ;;
    -*) usage ;;
    *) [ -z "$file" ] || usage; file="$1"; shift ;;
  esac
done
[ -n "$file" ] || usage
[[ " ${SECRETS[*]} " == *" $name "* ]] || usage
[ -r "$file" ] && [ -s "$file" ] || die "$file is not a readable, non-empty file"

rotate_secret() {
  local name="$1" file="$2" old new service services
  # 1. The new version, beside the old one; the services that mount it (as deployed from stack.yml).
  old="$(current_secret "$name")"
  [ -n "$old" ] || die "secret $name does not exist yet: run scripts/deploy.sh first"
  services="$(secret_services "$name")"
  [ -n "$services" ] || die "no service of stack $STACK mounts $name: run scripts/deploy.sh first"
  new="$(next_secret "$name")"
  create_secret "$new" "$file"
  # 2. Every service that mounts it: swap, same target, owner and mode.
  for service in $services; do
    docker service update --detach \
      --secret-rm "$(mounted_secret "$name" "$service")" --secret-add "$(secret_mount "$name" "$new" "$service")" \
      "${STACK}_${service}" >/dev/null
    echo "updating ${STACK}_${service}: $old -> $new"
  done
  # 3. Wait until their tasks run the new spec, then drop the old version.
  for service in $services; do
    wait_for_rollout "${STACK}_${service}"
  done
  docker secret rm "$old" >/dev/null
  echo "rotated $name: now $new; removed $old"
}

rotate_secret "$name" "$file"
