#!/usr/bin/env python3
"""A fake `docker` for testing the Swarm scripts: records each call, keeps secrets and deployed services.

`stack deploy` reads the stack file as Docker does (the ${VAR:-default} / ${VAR:?error} interpolation,
external secret names) and keeps, per service, the secrets it mounts, so the scripts read the secret
table back from "deployed" services exactly as they do from a real engine.

FAKE_DOCKER_LOG: JSON lines, one per call ({"args": [...], "secret_env": {...}, "version_env": {...}}).
FAKE_DOCKER_STATE: JSON {"secrets": {name: sha256 of content}, "services": {...}}.
FAKE_DOCKER_ROLLOUT: what `service inspect` reports as UpdateStatus.State (default completed; "" for none).
FAKE_DOCKER_TASK_LAG: how many task inspections after an update still show the old spec (default 0).
FAKE_DOCKER_SWARM: what `info` reports as the swarm state (default active).
FAKE_DOCKER_VERSION: what `version` reports as "CLIENT ENGINE" (default "28.2.2 20.10.24+dfsg1").
"""

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


def interpolate(value: str) -> str:
    """Docker's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution; a missing required one exits 1."""
    def sub(m: re.Match[str]) -> str:
        current = os.environ.get(m["name"], "")
        if m["op"] == ":?" and not current:
            print(f"required variable {m['name']} is missing a value: {m['arg']}", file=sys.stderr)
            sys.exit(1)
        return current or (m["arg"] if m["op"] == ":-" else "")
    return _VAR.sub(sub, value)


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v) for v in node]
    return interpolate(node) if isinstance(node, str) else node


def deploy(stack_file: str, stack: str) -> dict[str, Any]:
    """The services of a stack file: per service its secret mounts, under their external names."""
    spec = _walk(yaml.safe_load(Path(stack_file).read_text()))
    names = {key: (s or {}).get("name", key) for key, s in (spec.get("secrets") or {}).items()}
    services = {}
    for name, svc in spec["services"].items():
        mounts = [{"target": m.get("target", m["source"]), "source": names[m["source"]], "uid": m.get("uid", "0"),
                   "gid": m.get("gid", "0"), "mode": f"0{m.get('mode', 0o444):o}"} for m in svc.get("secrets", [])]
        env = svc.get("environment") or {}
        services[f"{stack}_{name}"] = {"secrets": mounts, "environment": env, "gen": 0, "polls": 0}
    return services


def update(service: dict[str, Any], args: list[str]) -> None:
    """Apply --secret-rm NAME / --secret-add source=..,target=.. to a service; its spec changes."""
    for flag, value in zip(args, args[1:]):
        if flag == "--secret-rm":
            service["secrets"] = [m for m in service["secrets"] if m["source"] != value]
        elif flag == "--secret-add":
            fields = dict(kv.split("=", 1) for kv in value.split(","))
            service["secrets"].append({"target": fields["target"], "source": fields["source"], "uid": fields["uid"],
                                       "gid": fields["gid"], "mode": fields["mode"]})
    service["gen"] += 1
    service["polls"] = 0


def container_spec(gen: int) -> str:
    """What the rollout check's template prints for a container spec: one value per spec generation."""
    return json.dumps({"gen": gen})


def main() -> int:
    args = sys.argv[1:]
    log, state_path = Path(os.environ["FAKE_DOCKER_LOG"]), Path(os.environ["FAKE_DOCKER_STATE"])
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    secret_env = {k: v for k, v in os.environ.items() if k.endswith("_SECRET")}
    version_env = {k: v for k, v in os.environ.items() if k.endswith("_VERSION")}
    with log.open("a") as f:
        f.write(json.dumps({"args": args, "secret_env": secret_env, "version_env": version_env}) + "\n")
    secrets = state.setdefault("secrets", {})
    services = state.setdefault("services", {})
    rc = 0
    match args:
        case ["version", "--format", _]:
            print(os.environ.get("FAKE_DOCKER_VERSION", "28.2.2 20.10.24+dfsg1"))
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
        case ["stack", "deploy", "--prune", "-c", stack_file, stack]:
            services.clear()
            services.update(deploy(stack_file, stack))
        case ["service", "ls", "--filter", _, "--format", _]:
            print("\n".join(sorted(services)))
        case ["service", "inspect", "--format", fmt, name] if name in services:
            svc = services[name]
            if "UpdateStatus" in fmt:
                print(os.environ.get("FAKE_DOCKER_ROLLOUT", "completed"))
            elif fmt.startswith("{{with .Spec.TaskTemplate.ContainerSpec}}"):
                print(container_spec(svc["gen"]))
            elif ".Secrets" in fmt:
                for m in svc["secrets"]:
                    print(m["target"], m["source"], m["uid"], m["gid"], m["mode"])
            elif "Replicas" in fmt:
                print(1)
        case ["service", "ps", "--no-trunc", "--filter", "desired-state=running", "--format", _, name] \
                if name in services:
            print(f"task-{name}")
        case ["inspect", "--format", _, task] if task.removeprefix("task-") in services:
            svc = services[task.removeprefix("task-")]
            svc["polls"] += 1
            lagging = svc["polls"] <= int(os.environ.get("FAKE_DOCKER_TASK_LAG", "0"))
            print("running", container_spec(svc["gen"] - 1 if lagging else svc["gen"]))
        case ["service", "update", "--detach", *flags, name] if name in services:
            update(services[name], flags)
        case ["stack", "rm", _] | ["service", "scale", _] | ["build", *_] | ["push", _]:
            pass
        case _:
            print(f"fake docker: unexpected call {args}", file=sys.stderr)
            rc = 2
    state_path.write_text(json.dumps(state))
    return rc


if __name__ == "__main__":
    sys.exit(main())
