#!/usr/bin/env bash
# Manage chat users: add, passwd, disable, enable, role, token, list. Passwords come from a prompt or
# standard input, never from arguments, and are never printed.
# Usage: scripts/users.sh [--swarm] add NAME [--admin] | passwd NAME | disable NAME | enable NAME
#        | role NAME user|admin | token NAME [--label L] | list
#   local (default): the store of scripts/run-local.sh (.run/master.db; DATABASE_FILE overrides)
#   --swarm: inside the running master container of the stack (docker exec), its volume's store
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

usage() {
  echo "usage: scripts/users.sh [--swarm] add NAME [--admin] | passwd NAME | disable NAME | enable NAME | role NAME user|admin | token NAME [--label L] | list" >&2
  exit 1
}
swarm=false
if [ "${1:-}" = "--swarm" ]; then
  swarm=true
  shift
fi
case "${1:-}" in
  add|passwd|disable|enable|role|token|list) ;;
  *) usage ;;
esac

if [ "$swarm" = true ]; then
  # 1. The master task's container on this node (the master is one replica; run this on its node).
  container="$(docker ps --quiet --filter "label=com.docker.swarm.service.name=${STACK:-ai-system}_master" | head -n 1)"
  [ -n "$container" ] || die "no running master container of stack ${STACK:-ai-system} on this node: run this on the node that runs it (docker service ps ${STACK:-ai-system}_master)"
  # 2. The same command inside it; -i passes the password through standard input.
  tty_flag=()
  [ -t 0 ] && tty_flag=(-t)
  exec docker exec -i "${tty_flag[@]}" "$container" python -m master.users_cli "$@"
fi

# Local: the launcher's store unless DATABASE_FILE names another.
export DATABASE_FILE="${DATABASE_FILE:-$REPO_ROOT/.run/master.db}"
PY="$(project_python)"
exec "$PY" -m master.users_cli "$@"
