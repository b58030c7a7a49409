"""The Swarm test's stack file differs from stack.yml only where a kernel without IPVS needs it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.swarm.derive import NOT_DEPLOYED, derive_test_stack

STACK = Path(__file__).resolve().parents[2] / "stack.yml"


def _paths(node: object, prefix: str = "") -> dict[str, object]:
    """Every leaf of a YAML tree by its dotted path."""
    if isinstance(node, dict):
        return {k: v for key, child in node.items() for k, v in _paths(child, f"{prefix}{key}.").items()}
    if isinstance(node, list):
        return {k: v for i, child in enumerate(node) for k, v in _paths(child, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): node}


MONITORING_ONLY = ("services.prometheus.", "services.grafana.", "configs.prometheus_conf.", "configs.grafana_",
                   "volumes.prometheus_data", "volumes.grafana_data")


def test_derive_changes_only_endpoint_mode_and_the_master_port() -> None:
    """dnsrr on each deployed service, the master's port in host mode, the monitoring left out; every other leaf is equal."""
    stack = yaml.safe_load(STACK.read_text())
    before, after = _paths(stack), _paths(derive_test_stack(stack, 18443))
    removed = {k for k in before if k not in after}
    assert removed and all(k.startswith(MONITORING_ONLY) for k in removed), sorted(removed)
    assert {k.split(".")[1] for k in removed if k.startswith("services.")} == set(NOT_DEPLOYED)
    changed = {k for k in before.keys() | after.keys()
               if k not in removed and before.get(k, "<absent>") != after.get(k, "<absent>")}
    assert changed == {f"services.{s}.deploy.endpoint_mode" for s in stack["services"] if s not in NOT_DEPLOYED} | {
        "services.master.ports.0.mode", "services.master.ports.0.published"}
    derived = derive_test_stack(stack, 18443)
    assert derived["services"]["master"]["ports"] == [
        {"target": 8443, "published": 18443, "protocol": "tcp", "mode": "host"}]
    assert stack["services"]["master"]["ports"][0]["mode"] == "ingress"  # the input is not changed


def test_derive_refuses_a_master_with_other_ports() -> None:
    """A master publishing anything but 8443 is not silently rewritten."""
    stack = yaml.safe_load(STACK.read_text())
    stack["services"]["master"]["ports"].append({"target": 9000, "published": 9000})
    with pytest.raises(ValueError, match="exactly one port, 8443"):
        derive_test_stack(stack, 18443)


def test_derive_keeps_what_the_remaining_services_share() -> None:
    """Leaving the monitoring out drops its own configs and volumes, none another service mounts, and no secret."""
    stack = yaml.safe_load(STACK.read_text())
    derived = derive_test_stack(stack, 18443)
    assert set(derived["services"]) == {"master", "mosquitto", "worker"}
    assert set(derived["configs"]) == {"mosquitto_conf", "mosquitto_acl", "openssl_conf"}
    assert set(derived["volumes"]) == {"mosquitto_data", "master_data"}
    assert derived["secrets"] == stack["secrets"]  # deploy.sh still makes every secret; the Swarm test checks them all
