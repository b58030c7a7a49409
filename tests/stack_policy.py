"""The deployment invariants of stack.yml, as a function that lists every violation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

STACK_FILE = Path(__file__).resolve().parent.parent / "stack.yml"
# The newest compose file version Debian 12's Docker 20.10 reads, and the first with `pids` limits;
# without `version:` Docker 20.10 refuses the file ("unsupported Compose file version: 1.0").
COMPOSE_VERSION = "3.9"
# One replica with state each: a rolling update must stop the old task before starting the new one.
# Prometheus and Grafana too: each holds a database on its volume that one process at a time may open.
STOP_FIRST = {"master", "mosquitto", "prometheus", "grafana"}
# Images we do not build: each pinned to a version tag (never `latest`), run as a non-root `user:`.
THIRD_PARTY = {"mosquitto", "prometheus", "grafana"}
PINNED_TAG = re.compile(r"^[a-z0-9./-]+:(?!latest$)v?[0-9][0-9A-Za-z.-]*$")

SECRET_LIKE_ENV = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|_KEY)$")
SECRET_LIKE_VALUE = re.compile(r"AIza[0-9A-Za-z_-]{35}|-----BEGIN|\$7\$")
NETWORKS = {"master": {"frontend", "backend"}, "mosquitto": {"backend"}, "worker": {"backend", "egress"},
            "prometheus": {"backend"}, "grafana": {"backend"}}
# The port a service's web listener uses (the published target): its metrics port must be another.
WEB_PORT = "8443"
# Which service may mount each secret; anything not listed is mounted nowhere.
SECRET_OWNERS = {
    "ca_crt": {"master", "mosquitto", "worker"},
    "master_crt": {"master"}, "master_key": {"master"},
    "mosquitto_crt": {"mosquitto"}, "mosquitto_key": {"mosquitto"}, "mosquitto_passwd": {"mosquitto"},
    "worker_crt": {"worker"}, "worker_key": {"worker"},
    "mqtt_master_password": {"master"}, "mqtt_worker_password": {"worker"},
    "session_secret": {"master"}, "initial_admin_password": {"master"}, "gemini_api_key": {"worker"},
    "grafana_admin_password": {"grafana"},
}


def stack_secret_table(stack: dict[str, Any] | None = None) -> dict[str, set[str]]:
    """Which services mount each secret, as stack.yml (the one table) says."""
    stack = stack if stack is not None else yaml.safe_load(STACK_FILE.read_text())
    table: dict[str, set[str]] = {name: set() for name in stack.get("secrets", {}) or {}}
    for service, svc in (stack.get("services") or {}).items():
        for secret in _names(svc.get("secrets", [])):
            table.setdefault(secret, set()).add(service)
    return table


def _names(items: Any) -> set[str]:
    if isinstance(items, dict):
        return set(items)
    return {i if isinstance(i, str) else i.get("source", "") for i in items or []}


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {}) or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {str(k): str(v) for k, v in env.items()}


def _metrics_port_violations(name: str, svc: dict[str, Any]) -> list[str]:
    """/metrics stays on the backend: never published, never the web listener's port."""
    env = _env(svc)
    metrics = env.get("METRICS_PORT")
    if metrics is None:
        return []
    out = []
    if metrics in (env.get("WEB_PORT", WEB_PORT), WEB_PORT):
        out.append(f"{name}: METRICS_PORT {metrics} is the web port: /metrics needs a port of its own")
    for port in svc.get("ports", []) or []:
        target = str(port.get("target")) if isinstance(port, dict) else str(port).rsplit(":", 1)[-1].split("/")[0]
        if target == metrics:
            out.append(f"{name}: publishes its metrics port {metrics}")
    return out


def _third_party_violations(name: str, svc: dict[str, Any]) -> list[str]:
    """An image we do not build: a pinned version tag, and a non-root user set in the stack."""
    out = []
    image = str(svc.get("image", ""))
    if not PINNED_TAG.match(image):
        out.append(f"{name}: image {image!r} is not pinned to a version tag (never latest)")
    uid = str(svc.get("user", "")).split(":", 1)[0]
    if not uid.isdigit() or int(uid) == 0:
        out.append(f"{name}: user {svc.get('user')!r}: set a non-root numeric user")
    return out


def violations(stack: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if str(stack.get("version")) != COMPOSE_VERSION:
        out.append(f"version is {stack.get('version')!r}, expected {COMPOSE_VERSION!r} (Docker 20.10 needs it)")
    services: dict[str, Any] = stack.get("services", {})
    if set(services) != set(NETWORKS):
        out.append(f"services are {sorted(services)}, expected {sorted(NETWORKS)}")
    for name, svc in services.items():
        # Published ports: only the master's 443 -> 8443.
        ports = svc.get("ports", [])
        allowed = name == "master" and len(ports) == 1 and isinstance(ports[0], dict) \
            and str(ports[0].get("published")) == "443" and str(ports[0].get("target")) == "8443"
        if ports and not allowed:
            out.append(f"{name}: publishes {ports}")
        if name == "master" and not allowed:
            out.append("master: must publish exactly 443 -> 8443")
        out.extend(_metrics_port_violations(name, svc))
        if name in THIRD_PARTY:
            out.extend(_third_party_violations(name, svc))
        nets = _names(svc.get("networks", []))
        if name in NETWORKS and nets != NETWORKS[name]:
            out.append(f"{name}: networks {sorted(nets)}, expected {sorted(NETWORKS[name])}")
        # Secrets only through files.
        env = _env(svc)
        for key, value in env.items():
            if SECRET_LIKE_ENV.search(key) and not key.endswith("_FILE"):
                out.append(f"{name}: secret-like environment value {key}")
            if key.endswith("_FILE") and not str(value).startswith("/run/secrets/"):
                out.append(f"{name}: {key} does not point into /run/secrets")
            if SECRET_LIKE_VALUE.search(str(value)):
                out.append(f"{name}: environment {key} holds secret material")
        for secret in _names(svc.get("secrets", [])):
            if name not in SECRET_OWNERS.get(secret, set()):
                out.append(f"{name}: mounts secret {secret} it must not have")
        # Hardening and operations.
        if svc.get("read_only") is not True:
            out.append(f"{name}: read_only root filesystem missing")
        if "ALL" not in (svc.get("cap_drop") or []):
            out.append(f"{name}: cap_drop ALL missing")
        if svc.get("cap_add"):
            out.append(f"{name}: adds capabilities {svc['cap_add']}")
        if not (svc.get("healthcheck") or {}).get("test"):
            out.append(f"{name}: healthcheck missing")
        deploy = svc.get("deploy", {}) or {}
        limits = (deploy.get("resources", {}) or {}).get("limits", {}) or {}
        for limit in ("cpus", "memory", "pids"):
            if limit not in limits:
                out.append(f"{name}: resource limit {limit} missing")
        if not deploy.get("restart_policy"):
            out.append(f"{name}: deploy.restart_policy missing")
        update = deploy.get("update_config") or {}
        if update.get("failure_action") != "rollback":
            out.append(f"{name}: update_config.failure_action is not rollback")
        if name in STOP_FIRST and (update.get("order") != "stop-first" or deploy.get("replicas", 1) != 1):
            out.append(f"{name}: one replica with state: replicas 1 and update_config.order stop-first")
        if not ((svc.get("logging") or {}).get("options") or {}).get("max-size"):
            out.append(f"{name}: log size limit missing")
        if "tmpfs" in svc:
            out.append(f"{name}: service-level tmpfs is ignored by swarm; use volumes type tmpfs")
    networks = stack.get("networks", {})
    backend = networks.get("backend", {}) or {}
    if backend.get("internal") is not True:
        out.append("backend network is not internal")
    if str((backend.get("driver_opts") or {}).get("encrypted")).lower() != "true":
        out.append("backend network is not encrypted")
    for secret_name, spec in (stack.get("secrets", {}) or {}).items():
        if not (spec or {}).get("external"):
            out.append(f"secret {secret_name} is not external")
        if "ca_key" in secret_name:
            out.append(f"the CA key is a secret ({secret_name})")
    return out
