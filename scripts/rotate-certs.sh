#!/usr/bin/env bash
# Renew the leaf certificates from the existing CA and roll them into the services: each
# service gets its new certificate and key in one update (rolling, with rollback).
# The CA is unchanged, so old and new leaves are trusted side by side during the roll.
# Usage: scripts/rotate-certs.sh
set -euo pipefail
# shellcheck source=scripts/swarm-lib.sh
source "$(dirname "$0")/swarm-lib.sh"
cd "$REPO_ROOT"
[ $# -eq 0 ] || { echo "usage: scripts/rotate-certs.sh" >&2; exit 1; }

# 1. New leaves (same CA): scripts/gen-pki.sh --renew.
"$REPO_ROOT/scripts/gen-pki.sh" --out "$PKI_DIR" --renew >/dev/null
echo "renewed the master, mosquitto and worker certificates in $PKI_DIR"

# 2. Per service: new versions of its certificate and key, swapped in one update.
declare -A replaced=()
for service in master mosquitto worker; do
  args=()
  for kind in crt key; do
    name="${service}_${kind}"
    old="$(current_secret "$name")"
    [ -n "$old" ] || die "secret $name does not exist yet: run scripts/deploy.sh first"
    new="$(next_secret "$name")"
    create_secret "$new" "$(secret_source "$name")"
    args+=(--secret-rm "$(mounted_secret "$name" "$service")" --secret-add "$(secret_mount "$name" "$new" "$service")")
    replaced[$old]=1
  done
  docker service update --detach "${args[@]}" "${STACK}_${service}" >/dev/null
  echo "updating ${STACK}_${service} with its new certificate"
done

# 3. Wait for every rollout, then remove the old versions.
for service in master mosquitto worker; do
  wait_for_rollout "${STACK}_${service}"
done
for old in "${!replaced[@]}"; do
  docker secret rm "$old" >/dev/null
done
echo "certificates rotated; old versions removed"
