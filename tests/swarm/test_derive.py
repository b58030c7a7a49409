"""The Swarm test's stack file differs from stack.yml only where a kernel without IPVS needs it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.swarm.derive import derive_test_stack

STACK = Path(__file__).resolve().parents[2] / "stack.yml"


def _paths(node: object, prefix: str = "") -> dict[str, object]:
    """Every leaf of a YAML tree by its dotted path."""
    if isinstance(node, dict):
        return {k: v for key, child in node.items() for k, v in _paths(child, f"{prefix}{key}.").items()}
    if isinstance(node, list):
        return {k: v for i, child in enumerate(node) for k, v in _paths(child, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): node}


def test_derive_changes_only_endpoint_mode_and_the_master_port() -> None:
    """dnsrr on each service, the master's port in host mode on the given port; every other leaf is equal."""
    stack = yaml.safe_load(STACK.read_text())
    before, after = _paths(stack), _paths(derive_test_stack(stack, 18443))
    changed = {k for k in before.keys() | after.keys() if before.get(k, "<absent>") != after.get(k, "<absent>")}
    assert changed == {f"services.{s}.deploy.endpoint_mode" for s in stack["services"]} | {
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
