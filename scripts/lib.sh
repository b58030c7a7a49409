#!/usr/bin/env bash
# Shared helpers for the scripts: the project venv and the Python that runs our modules.
# Sourced, not executed.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AISYS_VENV:-$REPO_ROOT/.venv}"

# die MESSAGE: one line on stderr, exit 1.
die() {
  echo "$(basename "$0"): error: $*" >&2
  exit 1
}

# ensure_venv [EXTRA] [DIR]: make or reuse a venv (default .venv), install the project (with EXTRA)
# when pyproject.toml changed.
ensure_venv() {
  local extra="${1:-}" venv="${2:-$VENV}" spec stamp
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || die "cannot create a venv at $venv: install python3-venv (apt-get install -y python3-venv)"
  fi
  spec="$REPO_ROOT"
  [ -n "$extra" ] && spec="${REPO_ROOT}[$extra]"
  stamp="$venv/.installed-${extra:-base}-$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e "$spec"
    touch "$stamp"
  fi
}

# project_python: the interpreter that has our dependencies (AISYS_PYTHON overrides, e.g. in tests).
project_python() {
  if [ -n "${AISYS_PYTHON:-}" ]; then
    echo "$AISYS_PYTHON"
  else
    ensure_venv >&2
    echo "$VENV/bin/python"
  fi
}

# ensure_mosquitto: install the broker with apt-get when the binary is missing.
ensure_mosquitto() {
  if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    die "mosquitto is not installed and cannot be installed here: run 'sudo apt-get install -y mosquitto' and try again"
  fi
  echo "Installing mosquitto with apt-get..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null) \
    || die "apt-get could not install mosquitto: check the network and the apt sources"
}

# ensure_test_tool COMMAND PACKAGE WHAT: a Debian package some tests need (apt-get when missing and possible);
# returns 1, saying which tests will be skipped, when it cannot be had.
ensure_test_tool() {
  local command="$1" package="$2" what="$3"
  if command -v "$command" >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "$command is not installed: the $what will be skipped (apt-get install -y $package)" >&2
    return 1
  fi
  echo "Installing $package with apt-get ($what)..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null) || {
    echo "apt-get could not install $package: the $what will be skipped" >&2
    return 1
  }
}

# ensure_chromium: Debian's chromium for the browser tests.
ensure_chromium() { ensure_test_tool chromium chromium "browser tests"; }

# ensure_prometheus: Debian's prometheus (and promtool) for the tests that run the stack's monitoring config.
ensure_prometheus() { ensure_test_tool prometheus prometheus "Prometheus tests"; }
