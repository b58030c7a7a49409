#!/usr/bin/env bash
# Regenerate the gRPC stubs in common/rpc/ from proto/*.proto (commit the result).
# Usage: scripts/gen-proto.sh [--out DIR]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

out="."
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    *) echo "usage: scripts/gen-proto.sh [--out DIR]" >&2; exit 2 ;;
  esac
done
PY="$(project_python)"
mkdir -p "$out/common/rpc"
# -Icommon/rpc=proto maps the files into the package path, so the stubs import as common.rpc.*
"$PY" -m grpc_tools.protoc -Icommon/rpc=proto --python_out="$out" --grpc_python_out="$out" proto/worker.proto
