#!/usr/bin/env bash
# Helpers for the Swarm scripts: the stack name, the secrets, versioned secret names, rollouts.
# Sourced, not executed. Never `set -x` here: secrets pass through these functions as paths.

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STACK="${STACK:-ai-system}"
PKI_DIR="${PKI_DIR:-$REPO_ROOT/pki/out}"
CREDS_DIR="${CREDS_DIR:-$PKI_DIR/credentials}"

# The secrets of the stack, in the order they are created.
SECRETS=(ca_crt master_crt master_key mosquitto_crt mosquitto_key worker_crt worker_key
         mqtt_master_password mqtt_worker_password mosquitto_passwd session_secret initial_admin_password
         gemini_api_key grafana_admin_password)

MIN_DOCKER=20.10  # compose file 3.9 (stack.yml); Debian 12's docker.io

# check_docker_version: die unless the docker client and engine are MIN_DOCKER or newer.
check_docker_version() {
  local versions part v
  versions="$(docker version --format '{{.Client.Version}} {{.Server.Version}}')" \
    || die "cannot reach the docker engine: start it (systemctl start docker) and check 'docker version'"
  for part in client:"${versions% *}" engine:"${versions#* }"; do
    v="${part#*:}"
    printf '%s\n%s\n' "$MIN_DOCKER" "$v" | sort -V -C \
      || die "docker ${part%%:*} $v is too old: this stack needs Docker $MIN_DOCKER or newer (compose file 3.9)"
  done
}

# secret_source NAME: the local file a secret is made from.
secret_source() {
  case "$1" in
    ca_crt) echo "$PKI_DIR/ca.crt" ;;
    master_crt|mosquitto_crt|worker_crt) echo "$PKI_DIR/${1%_crt}.crt" ;;
    master_key|mosquitto_key|worker_key) echo "$PKI_DIR/${1%_key}.key" ;;
    mqtt_master_password|mqtt_worker_password|mosquitto_passwd|session_secret|initial_admin_password|grafana_admin_password) echo "$CREDS_DIR/$1" ;;
    gemini_api_key) echo "${GEMINI_API_KEY_FILE:-}" ;;
    *) die "unknown secret '$1' (one of: ${SECRETS[*]})" ;;
  esac
}

# stack_services: the services of the deployed stack (full names).
stack_services() {
  docker service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Name}}' | sort
}

# mounted_secrets SERVICE: one line per secret the service mounts: TARGET SECRET_NAME UID GID MODE.
# stack.yml is the one table of which service mounts which secret; the scripts read it back from
# the services deployed from it, so a rotation swaps exactly what is mounted, with the same owner.
mounted_secrets() {
  docker service inspect --format \
    '{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.File.Name}} {{.SecretName}} {{.File.UID}} {{.File.GID}} {{printf "%#o" .File.Mode}}{{println}}{{end}}' \
    "$1"
}

# secret_services NAME: the services (without the stack prefix) that mount a secret, from the deployed stack.
secret_services() {
  local service
  for service in $(stack_services); do
    if mounted_secrets "$service" | awk -v n="$1" '$1 == n { found = 1 } END { exit !found }'; then
      echo "${service#"${STACK}_"}"
    fi
  done
}

# mounted_secret NAME SERVICE: the versioned secret SERVICE mounts at /run/secrets/NAME, or nothing.
mounted_secret() {
  mounted_secrets "${STACK}_$2" | awk -v n="$1" '$1 == n { print $2 }'
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

# secret_mount NAME VERSIONED SERVICE: the --secret-add value with the target, owner and mode the
# service mounts NAME with now (as stack.yml set them).
secret_mount() {
  mounted_secrets "${STACK}_$3" | awk -v n="$1" -v v="$2" \
    '$1 == n { printf "source=%s,target=%s,uid=%s,gid=%s,mode=%s\n", v, n, $3, $4, $5 }'
}

# What a rollout changes in a container spec (the whole spec is not comparable: the API fills defaults
# such as StopGracePeriod into the service's copy and not into the task's).
SPEC_FIELDS='{{.Image}} {{json .Env}} {{json .Args}} {{json .Mounts}} {{json .Secrets}} {{json .Configs}}'

# rollout_done SERVICE: 0 when every task the service wants running runs its current container spec
# (and there are as many as it wants); an update status alone is not enough: it is empty before the
# first update, and says `completed` for the previous update until the orchestrator starts this one.
rollout_done() {
  local spec want task count=0
  spec="$(docker service inspect --format "{{with .Spec.TaskTemplate.ContainerSpec}}$SPEC_FIELDS{{end}}" "$1")"
  want="$(docker service inspect --format '{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{end}}' "$1")"
  for task in $(docker service ps --no-trunc --filter desired-state=running --format '{{.ID}}' "$1"); do
    [ "$(docker inspect --format "{{.Status.State}} {{with .Spec.ContainerSpec}}$SPEC_FIELDS{{end}}" "$task")" \
      = "running $spec" ] || return 1
    count=$((count + 1))
  done
  [ -z "$want" ] || [ "$count" -eq "$want" ]
}

# wait_for_rollout SERVICE: until its tasks run the new spec; fails on rollback, pause or timeout.
wait_for_rollout() {
  local state i
  for i in $(seq 1 "${ROLLOUT_TIMEOUT_S:-300}"); do
    state="$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "$1")"
    case "$state" in
      rollback_*|paused) die "update of $1 ended in '$state': the old secret is kept; see 'docker service ps $1'" ;;
      updating) ;;
      *) if rollout_done "$1"; then return 0; fi ;;
    esac
    [ "$i" -eq 1 ] && echo "waiting for $1 to roll out..."
    sleep 1
  done
  die "update of $1 did not finish in ${ROLLOUT_TIMEOUT_S:-300} s: see 'docker service ps $1'"
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

# export_config_versions: name every config stack.yml reads after its content (the first 12 hex digits of
# its SHA-256) unless the caller set the variable: a changed file (a new ACL line) is then a new config,
# which `docker stack deploy` rolls out, instead of a deploy that fails because a config cannot change.
export_config_versions() {
  local var file
  while read -r var file; do
    if [ -z "${!var:-}" ]; then
      export "$var=$(sha256sum "$REPO_ROOT/$file" | cut -c1-12)"
    fi
  done <<'CONFIGS'
MOSQUITTO_CONF_VERSION mosquitto/mosquitto.conf
MOSQUITTO_ACL_VERSION mosquitto/acl
OPENSSL_CONF_VERSION common/openssl.cnf
PROMETHEUS_CONF_VERSION monitoring/prometheus.yml
GRAFANA_DATASOURCE_VERSION monitoring/grafana/provisioning/datasources/prometheus.yml
GRAFANA_DASHBOARDS_VERSION monitoring/grafana/provisioning/dashboards/ai-system.yml
GRAFANA_DASHBOARD_VERSION monitoring/grafana/dashboards/ai-system.json
CONFIGS
}
