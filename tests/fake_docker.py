#!/usr/bin/env python3
"""A fake `docker` for testing the Swarm scripts: records each call and keeps a list of secrets.

FAKE_DOCKER_LOG: JSON lines, one per call ({"args": [...], "secret_env": {...}}).
FAKE_DOCKER_STATE: JSON {"secrets": {name: sha256 of content}}.
FAKE_DOCKER_ROLLOUT: what `service inspect` reports as UpdateStatus.State (default completed).
FAKE_DOCKER_SWARM: what `info` reports as the swarm state (default active).
"""

import hashlib
import json
import os
import sys
from pathlib import Path


def main() -> int:
    args = sys.argv[1:]
    log, state_path = Path(os.environ["FAKE_DOCKER_LOG"]), Path(os.environ["FAKE_DOCKER_STATE"])
    state = json.loads(state_path.read_text()) if state_path.exists() else {"secrets": {}}
    secret_env = {k: v for k, v in os.environ.items() if k.endswith("_SECRET")}
    with log.open("a") as f:
        f.write(json.dumps({"args": args, "secret_env": secret_env}) + "\n")
    secrets = state["secrets"]
    rc = 0
    match args:
        case ["info", "--format", _]:
            print(os.environ.get("FAKE_DOCKER_SWARM", "active"))
        case ["secret", "ls", "--filter", flt, "--format", _]:
            prefix = flt.split("=", 1)[1]
            print("\n".join(n for n in sorted(secrets) if prefix in n))
        case ["secret", "create", name, path]:
            if name in secrets:
                print(f"Error response from daemon: secret {name} already exists", file=sys.stderr)
                rc = 1
            else:
                secrets[name] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                print(hashlib.sha256(name.encode()).hexdigest()[:25])
        case ["secret", "rm", name]:
            if secrets.pop(name, None) is None:
                print(f"Error: no such secret: {name}", file=sys.stderr)
                rc = 1
        case ["service", "inspect", "--format", _, _]:
            print(os.environ.get("FAKE_DOCKER_ROLLOUT", "completed"))
        case ["stack", "deploy", *_] | ["stack", "rm", _] | ["service", "update", *_] | ["service", "scale", _] \
                | ["build", *_] | ["push", _]:
            pass
        case _:
            print(f"fake docker: unexpected call {args}", file=sys.stderr)
            rc = 2
    state_path.write_text(json.dumps(state))
    return rc


if __name__ == "__main__":
    sys.exit(main())
