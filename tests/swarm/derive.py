"""The Swarm test's stack file: `docker stack config -c stack.yml` with the changes this machine needs.

Without IPVS a service's virtual IP and the ingress routing mesh do not work, so every service resolves
by DNS round robin (`endpoint_mode: dnsrr`) and the master's port is published on the node (`mode:
host`). No registry is reachable here and the monitoring images (prom/prometheus, grafana/grafana)
cannot be built as stand-ins the way python and mosquitto are (they are the upstream binaries, not a
Debian package), so `prometheus` and `grafana` are left out, with the configs and volumes only they use;
tests/test_stack.py checks their definitions by policy instead. Nothing else changes;
tests/swarm/test_derive.py proves that.
"""

from __future__ import annotations

import copy
from typing import Any

MASTER_TARGET_PORT = 8443
# Services whose images cannot be had on the test machine: deployed by users, checked by policy here.
NOT_DEPLOYED = ("prometheus", "grafana")


def _used(stack: dict[str, Any], kind: str) -> set[str]:
    """The configs (or volumes) any remaining service mounts."""
    used = set()
    for svc in stack["services"].values():
        for item in svc.get(kind, []) or []:
            if isinstance(item, dict):
                used.add(str(item.get("source", "")))
            elif kind == "volumes":
                used.add(str(item).split(":", 1)[0])
            else:
                used.add(str(item))
    return used


def derive_test_stack(config: dict[str, Any], published_port: int) -> dict[str, Any]:
    """A copy of the rendered stack without the monitoring services, dnsrr everywhere, the master's port in host mode."""
    stack = copy.deepcopy(config)
    dropped = [stack["services"].pop(name) for name in NOT_DEPLOYED if name in stack["services"]]
    for kind in ("configs", "volumes"):
        owned = {str(i.get("source", "")) for svc in dropped for i in svc.get(kind, []) or [] if isinstance(i, dict)}
        for name in owned - _used(stack, kind):
            (stack.get(kind) or {}).pop(name, None)
    for svc in stack["services"].values():
        svc.setdefault("deploy", {})["endpoint_mode"] = "dnsrr"
    ports = stack["services"]["master"]["ports"]
    if len(ports) != 1 or int(ports[0]["target"]) != MASTER_TARGET_PORT:
        raise ValueError(f"the master should publish exactly one port, {MASTER_TARGET_PORT}; stack.yml has {ports}")
    ports[0] = {**ports[0], "mode": "host", "published": published_port}
    return stack
