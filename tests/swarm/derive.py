"""The Swarm test's stack file: `docker stack config -c stack.yml` with two changes for a kernel without IPVS.

Without IPVS a service's virtual IP and the ingress routing mesh do not work, so every service resolves
by DNS round robin (`endpoint_mode: dnsrr`) and the master's port is published on the node (`mode:
host`). Nothing else changes; tests/swarm/test_derive.py proves that.
"""

from __future__ import annotations

import copy
from typing import Any

MASTER_TARGET_PORT = 8443


def derive_test_stack(config: dict[str, Any], published_port: int) -> dict[str, Any]:
    """A copy of the rendered stack with dnsrr on every service and the master's port in host mode."""
    stack = copy.deepcopy(config)
    for svc in stack["services"].values():
        svc.setdefault("deploy", {})["endpoint_mode"] = "dnsrr"
    ports = stack["services"]["master"]["ports"]
    if len(ports) != 1 or int(ports[0]["target"]) != MASTER_TARGET_PORT:
        raise ValueError(f"the master should publish exactly one port, {MASTER_TARGET_PORT}; stack.yml has {ports}")
    ports[0] = {**ports[0], "mode": "host", "published": published_port}
    return stack
