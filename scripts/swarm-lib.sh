#!/usr/bin/env bash
# Helpers for the Swarm scripts: the stack name, the secret table, versioned secret names.
# Sourced, not executed. Never `set -x` here: secrets pass through these functions as paths.

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STACK="${STACK:-ai-system}"
PKI_DIR="${PKI_DIR:-$REPO_ROOT/pki/out}"
CREDS_DIR="${CREDS_DIR:-$PKI_DIR/credentials}"
SERVICE_UID=10001      # the user in our images
MOSQUITTO_UID=1883     # the user in eclipse-mosquitto

# The secrets of the stack, in the order they are created.
SECRETS=(ca_crt master_crt master_key mosquitto_crt mosquitto_key worker_crt worker_key
         mqtt_master_password mqtt_worker_password mosquitto_passwd session_secret gemini_api_key)

# secret_source NAME: the local file a secret is made from.
secret_source() {
  case "$1" in
    ca_crt) echo "$PKI_DIR/ca.crt" ;;
    master_crt|mosquitto_crt|worker_crt) echo "$PKI_DIR/${1%_crt}.crt" ;;
    master_key|mosquitto_key|worker_key) echo "$PKI_DIR/${1%_key}.key" ;;
    mqtt_master_password|mqtt_worker_password|mosquitto_passwd|session_secret) echo "$CREDS_DIR/$1" ;;
    gemini_api_key) echo "${GEMINI_API_KEY_FILE:-}" ;;
    *) die "unknown secret '$1' (one of: ${SECRETS[*]})" ;;
  esac
}

# secret_services NAME: the services (without the stack prefix) that mount a secret.
secret_services() {
  case "$1" in
    ca_crt) echo "master mosquitto worker" ;;
    master_crt|master_key|mqtt_master_password|session_secret) echo "master" ;;
    mosquitto_crt|mosquitto_key|mosquitto_passwd) echo "mosquitto" ;;
    worker_crt|worker_key|mqtt_worker_password|gemini_api_key) echo "worker" ;;
    *) die "unknown secret '$1'" ;;
  esac
}

# secret_env_var NAME: the stack.yml variable that holds a secret's current versioned name.
secret_env_var() {
  echo "$(echo "$1" | tr '[:lower:]' '[:upper:]')_SECRET"
}

# current_secret NAME: the highest existing NAME_v<N>, or nothing.
current_secret() {
  docker secret ls --filter "name=${1}_v" --format '{{.Name}}' | awk -v base="$1" '
    $0 ~ ("^" base "_v[0-9]+$") { n = substr($0, length(base) + 3) + 0; if (n > max) { max = n; best = $0 } }
    END { if (best != "") print best }'

}

# next_secret NAME: the versioned name after the current one (NAME_v1 when none exists).
next_secret() {
  local current n
  current="$(current_secret "$1")"
  n="${current##*_v}"
  [ -n "$current" ] || n=0
  echo "${1}_v$((n + 1))"
}

# create_secret VERSIONED_NAME FILE: create a secret from a file (its content is never printed).
create_secret() {
  [ -r "$2" ] || die "cannot read $2 for secret $1: run scripts/gen-pki.sh and scripts/gen-credentials.sh"
  docker secret create "$1" "$2" >/dev/null
  echo "created secret $1"
}

# secret_mount NAME VERSIONED SERVICE: the --secret-add value with the target and owner stack.yml uses.
secret_mount() {
  local uid="$SERVICE_UID"
  [ "$3" = mosquitto ] && uid="$MOSQUITTO_UID"
  echo "source=$2,target=$1,uid=$uid,gid=$uid,mode=0400"
}

# wait_for_rollout SERVICE: until its update completes; fails on rollback or pause.
wait_for_rollout() {
  local state i
  for i in $(seq 1 "${ROLLOUT_TIMEOUT_S:-300}"); do
    state="$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "$1")"
    case "$state" in
      ""|completed) return 0 ;;
      rollback_*|paused) die "update of $1 ended in '$state': the old secret is kept; see 'docker service ps $1'" ;;
    esac
    [ "$i" -eq 1 ] && echo "waiting for $1 to roll out..."
    sleep 1
  done
  die "update of $1 did not finish in ${ROLLOUT_TIMEOUT_S:-300} s"
}

# export_current_secrets: set every *_SECRET variable stack.yml reads to the current version.
export_current_secrets() {
  local name current
  for name in "${SECRETS[@]}"; do
    current="$(current_secret "$name")"
    [ -n "$current" ] || die "secret $name does not exist: run scripts/deploy.sh"
    export "$(secret_env_var "$name")=$current"
  done
}
