#!/usr/bin/env bash
# Build local stand-ins for the two public base images the Dockerfiles start from, for machines
# that reach Debian's mirror but no container registry (the Swarm test in CI). Each stand-in is
# Debian 12 (debootstrap --variant=minbase bookworm, docker import) plus Debian's python3 or
# mosquitto, tagged exactly as the production Dockerfiles and stack.yml name the official images.
# Cached: an existing tag is kept (--force rebuilds). Never push these images.
# Usage: scripts/standin-images.sh [--force] [--mirror URL]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

usage() { echo "usage: scripts/standin-images.sh [--force] [--mirror URL]" >&2; exit 1; }
force=0 mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1; shift ;;
    --mirror) [ $# -ge 2 ] || usage; mirror="$2"; shift 2 ;;
    *) usage ;;
  esac
done

BASE=ai-system-standin/debian:bookworm-minbase
PYTHON=python:3.11.14-slim-bookworm
MOSQUITTO=eclipse-mosquitto:2.0.22
DOCKERFILES="$REPO_ROOT/tests/swarm/standins"
CA_BUNDLE="${STANDIN_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# 0. Nothing to do when both stand-ins exist (or real images of those tags were pulled).
if [ "$force" -eq 0 ] && have_image "$PYTHON" && have_image "$MOSQUITTO"; then
  echo "stand-in images present: $PYTHON, $MOSQUITTO (--force rebuilds)"
  exit 0
fi
[ -r "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE: install ca-certificates or set STANDIN_CA_BUNDLE"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. The Debian 12 base: debootstrap a minimal rootfs and import it (apt-get installs debootstrap).
if [ "$force" -eq 1 ] || ! have_image "$BASE"; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      die "debootstrap is missing: run 'sudo apt-get install -y debootstrap'"
    fi
    echo "installing debootstrap with apt-get..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null) \
      || die "apt-get could not install debootstrap: check the network and the apt sources"
  fi
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root: run as root or build the stand-ins once as root"
  echo "debootstrap bookworm from $mirror..."
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above): check that $mirror is reachable"; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -c . | docker import --change 'CMD ["bash"]' - "$BASE" >/dev/null
  rm -rf "$work/rootfs"
  echo "imported $BASE"
fi

# 2. The stand-ins, built side by side with the host network and the host's CA bundle (pip reaches the index).
mkdir -p "$work/context"
cp "$CA_BUNDLE" "$work/context/ca-certificates.crt"
pids=() tags=()
for pair in "$PYTHON=python" "$MOSQUITTO=mosquitto"; do
  tag="${pair%%=*}" file="$DOCKERFILES/${pair#*=}.Dockerfile"
  if [ "$force" -eq 1 ] || ! have_image "$tag"; then
    docker build --quiet --network host --build-arg "BASE=$BASE" -f "$file" -t "$tag" "$work/context" \
      >"$work/build-${pair#*=}.log" 2>&1 &
    pids+=("$!") tags+=("$tag")
  fi
done
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    tail -n 20 "$work/build-"*.log >&2
    die "building the stand-in ${tags[$i]} failed (log above)"
  fi
  echo "built stand-in ${tags[$i]}"
done
