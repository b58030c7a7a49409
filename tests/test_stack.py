"""stack.yml: valid for `docker stack`, and every deployment invariant holds (tests/stack_policy.py)."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.stack_policy import SECRET_OWNERS, stack_secret_table, violations

REPO = Path(__file__).resolve().parent.parent
STACK = REPO / "stack.yml"


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return yaml.safe_load(STACK.read_text())


def _stack_config(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "stack", "config", "-c", str(STACK)], capture_output=True, text=True, cwd=REPO,
                          env={**{k: v for k, v in os.environ.items() if k != "PUBLIC_ORIGINS"}, **env})


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client on this machine")
def test_docker_stack_config_accepts_the_file() -> None:
    """The docker client reads stack.yml as a stack (with the one required setting given)."""
    result = _stack_config(PUBLIC_ORIGINS="https://chat.example.org")
    assert result.returncode == 0, result.stderr
    assert "internal: true" in result.stdout and "PUBLIC_ORIGINS: https://chat.example.org" in result.stdout


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client on this machine")
def test_docker_stack_config_without_public_origins_names_the_setting() -> None:
    """The master's origin has no default: without PUBLIC_ORIGINS the file is refused, naming it."""
    result = _stack_config()
    assert result.returncode != 0
    assert "required variable PUBLIC_ORIGINS is missing a value" in result.stderr


def test_secret_table_of_the_policy_is_the_stacks(stack: dict[str, Any]) -> None:
    """stack.yml is the one table of which service mounts which secret; the policy allows exactly it."""
    assert stack_secret_table(stack) == SECRET_OWNERS


def test_readme_secret_table_is_the_stacks(stack: dict[str, Any]) -> None:
    """The README's secret table says what stack.yml mounts, no more, no less."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("| secret | mounted into |"):]
    section = section[:section.index("\n\n")]
    table: dict[str, set[str]] = {}
    for row in section.splitlines()[2:]:
        names, services = row.strip("|").split("|")
        for name in re.findall(r"`([a-z_]+)`", names):
            table[name] = {s.strip() for s in services.split(",")}
    assert table == stack_secret_table(stack)


def test_the_stack_meets_every_invariant(stack: dict[str, Any]) -> None:
    assert violations(stack) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(s: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = s
        for p in parents:
            node = node[p]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return mutate


_DELETE = object()


def _add_secret(service: str, secret: str) -> Callable[[dict[str, Any]], None]:
    return lambda s: s["services"][service]["secrets"].append({"source": secret, "target": secret})


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "worker publishes a port": _set("services.worker.ports", [{"target": 9000, "published": 9000}]),
    "mosquitto publishes 8883": _set("services.mosquitto.ports", [{"target": 8883, "published": 8883}]),
    "mosquitto on frontend": _set("services.mosquitto.networks", ["frontend", "backend"]),
    "worker on frontend": _set("services.worker.networks", ["frontend", "backend", "egress"]),
    "backend not internal": _set("networks.backend.internal", _DELETE),
    "backend not encrypted": _set("networks.backend.driver_opts", {}),
    "password in environment": _set("services.master.environment.MQTT_PASSWORD", "hunter2hunter2"),
    "gemini key in environment": _set("services.worker.environment.GEMINI_API_KEY", "x"),
    "master key mounted into worker": _add_secret("worker", "master_key"),
    "gemini key mounted into master": _add_secret("master", "gemini_api_key"),
    "worker key mounted into mosquitto": _add_secret("mosquitto", "worker_key"),
    "missing healthcheck": _set("services.worker.healthcheck", _DELETE),
    "missing memory limit": _set("services.master.deploy.resources.limits.memory", _DELETE),
    "missing pids limit": _set("services.mosquitto.deploy.resources.limits.pids", _DELETE),
    "missing cap_drop": _set("services.master.cap_drop", _DELETE),
    "missing read_only": _set("services.worker.read_only", False),
    "no rollback": _set("services.worker.deploy.update_config", {"parallelism": 1}),
    "non-external secret": _set("secrets.session_secret", {"file": "./session_secret"}),
    "service-level tmpfs": _set("services.master.tmpfs", ["/tmp"]),
    "no compose version (Docker 20.10 reads 1.0)": _set("version", _DELETE),
    "compose version 3.8 (no pids limit)": _set("version", "3.8"),
    "master updates start-first": _set("services.master.deploy.update_config",
                                       {"parallelism": 1, "order": "start-first", "failure_action": "rollback"}),
    "master update order unset": _set("services.master.deploy.update_config", {"failure_action": "rollback"}),
    "mosquitto updates start-first": _set("services.mosquitto.deploy.update_config",
                                          {"order": "start-first", "failure_action": "rollback"}),
    "two masters": _set("services.master.deploy.replicas", 2),
    # Monitoring: on the backend only, never published, pinned, non-root, hardened like the rest.
    "prometheus publishes 9090": _set("services.prometheus.ports", [{"target": 9090, "published": 9090}]),
    "grafana publishes 3000": _set("services.grafana.ports", [{"target": 3000, "published": 3000, "mode": "host"}]),
    "grafana on frontend": _set("services.grafana.networks", ["frontend", "backend"]),
    "prometheus on egress": _set("services.prometheus.networks", ["backend", "egress"]),
    "prometheus image latest": _set("services.prometheus.image", "prom/prometheus:latest"),
    "grafana image without a tag": _set("services.grafana.image", "grafana/grafana"),
    "grafana as root": _set("services.grafana.user", "0:0"),
    "prometheus without a user": _set("services.prometheus.user", _DELETE),
    "grafana not read_only": _set("services.grafana.read_only", _DELETE),
    "prometheus without cap_drop": _set("services.prometheus.cap_drop", _DELETE),
    "grafana without a memory limit": _set("services.grafana.deploy.resources.limits.memory", _DELETE),
    "prometheus without a healthcheck": _set("services.prometheus.healthcheck", _DELETE),
    "grafana password in environment": _set("services.grafana.environment.GF_SECURITY_ADMIN_PASSWORD", "admin"),
    "grafana password mounted into the master": _add_secret("master", "grafana_admin_password"),
    "two prometheus replicas": _set("services.prometheus.deploy.replicas", 2),
    # /metrics: a port of its own, never published.
    "master metrics on the web port": _set("services.master.environment.METRICS_PORT", "8443"),
    "worker publishes its metrics port": _set("services.worker.ports", [{"target": 9101, "published": 9101}]),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_the_policy_catches(stack: dict[str, Any], name: str) -> None:
    """Each invariant can fail: breaking it in a copy of the real stack is reported."""
    broken = copy.deepcopy(stack)
    MUTATIONS[name](broken)
    assert violations(broken) != [], f"the policy missed: {name}"


def test_compose_anchors_resolved_for_every_service(stack: dict[str, Any]) -> None:
    """The shared logging/update/restart blocks really reach each service."""
    for svc in stack["services"].values():
        assert svc["logging"]["options"]["max-size"] == "10m"
        assert svc["deploy"]["restart_policy"]["condition"] == "any"
