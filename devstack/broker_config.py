"""Render mosquitto/mosquitto.conf for a local run: same directives, local paths and port."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from common.tls import OPENSSL_CONF_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_TEMPLATE = REPO_ROOT / "mosquitto" / "mosquitto.conf"
ACL_TEMPLATE = REPO_ROOT / "mosquitto" / "acl"
DEFAULT_TOPIC_PREFIX = "upb"


@dataclass(frozen=True)
class BrokerFiles:
    """Where a local broker finds its files."""

    ca_cert: Path
    cert: Path
    key: Path
    password_file: Path
    acl_file: Path
    data_dir: Path


def render_config(files: BrokerFiles, port: int, bind: str = "127.0.0.1", user: str | None = None) -> str:
    """The Docker config with every path, the listener and (optionally) the run-as user replaced."""
    replacements = {
        "password_file": str(files.password_file),
        "acl_file": str(files.acl_file),
        "persistence_location": f"{files.data_dir}/",
        "cafile": str(files.ca_cert),
        "certfile": str(files.cert),
        "keyfile": str(files.key),
        "listener": f"{port} {bind}",
    }
    seen: set[str] = set()
    lines = []
    for line in CONF_TEMPLATE.read_text().splitlines():
        directive = line.split(" ", 1)[0]
        if directive in replacements:
            line = f"{directive} {replacements[directive]}"
            seen.add(directive)
        lines.append(line)
    missing = set(replacements) - seen
    if missing:
        raise ValueError(f"{CONF_TEMPLATE} lacks directives {sorted(missing)}: the renderer and the file disagree")
    if user:
        lines.insert(0, f"user {user}")
    return "\n".join(lines) + "\n"


def broker_env() -> dict[str, str]:
    """The environment mosquitto runs with: OpenSSL's configuration sets its TLS groups.

    Mosquitto 2.0 has no directive for key-exchange groups; it loads OpenSSL's configuration at
    start-up, and common/openssl.cnf limits them to X25519, P-256 and P-384 (Mozilla intermediate).
    """
    return {**os.environ, "OPENSSL_CONF": str(OPENSSL_CONF_FILE)}


def render_acl(topic_prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """The ACL with the topic prefix replaced (the committed file uses the default)."""
    text = ACL_TEMPLATE.read_text()
    if topic_prefix == DEFAULT_TOPIC_PREFIX:
        return text
    return text.replace(f" {DEFAULT_TOPIC_PREFIX}/", f" {topic_prefix}/")
