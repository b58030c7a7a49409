#!/usr/bin/env bash
# Deploy (or update) the stack: create each missing secret under a versioned name, then
# `docker stack deploy`. Idempotent: a rerun creates nothing and redeploys the same versions.
# Usage: GEMINI_API_KEY_FILE=path scripts/deploy.sh --public-origin https://chat.example.org [--stack-file FILE]
#   --public-origin (or PUBLIC_ORIGINS) is required: the origin(s) browsers use, comma-separated.
#   --stack-file: a stack file derived from stack.yml (default stack.yml; the Swarm test uses one).
set -euo pipefail
# shellcheck source=scripts/swarm-lib.sh
source "$(dirname "$0")/swarm-lib.sh"
cd "$REPO_ROOT"

usage() {
  echo "usage: GEMINI_API_KEY_FILE=path scripts/deploy.sh --public-origin URL [--stack-file FILE]" >&2
  exit 1
}
stack_file=stack.yml
while [ $# -gt 0 ]; do
  case "$1" in
    --public-origin) [ $# -ge 2 ] || usage; export PUBLIC_ORIGINS="$2"; shift 2 ;;
    --stack-file) [ $# -ge 2 ] || usage; stack_file="$2"; shift 2 ;;
    *) usage ;;
  esac
done
[ -n "${PUBLIC_ORIGINS:-}" ] \
  || die "the public origin is required: --public-origin https://chat.example.org (the address browsers use)"
[ -r "$stack_file" ] || die "cannot read the stack file $stack_file"

# 1. Docker 20.10 or newer, client and engine (compose file 3.9; Debian 12 ships 20.10).
check_docker_version

# 2. The swarm must be active (docker swarm init).
[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ] \
  || die "this docker engine is not in a swarm: run 'docker swarm init' first"

# 3. Each secret: keep the current version, or create <name>_v1 from its file.
for name in "${SECRETS[@]}"; do
  if [ -z "$(current_secret "$name")" ]; then
    src="$(secret_source "$name")"
    # A credentials directory made before Grafana joined the stack lacks its password: make it
    # (gen-credentials.sh adds only what is missing and keeps every existing file).
    if [ "$name" = grafana_admin_password ] && [ ! -e "$src" ]; then
      "$REPO_ROOT/scripts/gen-credentials.sh" --out "$CREDS_DIR" >/dev/null
    fi
    [ -n "$src" ] || die "GEMINI_API_KEY_FILE is not set: point it at a file holding the Gemini API key"
    create_secret "${name}_v1" "$src"
  fi
done

# 4. Deploy with every *_SECRET variable naming the current version, every config named after its content.
export_current_secrets
export_config_versions
docker stack deploy --prune -c "$stack_file" "$STACK"
echo "deployed stack $STACK; open ${PUBLIC_ORIGINS%%,*} and trust $PKI_DIR/ca.crt"
