"""A service with a missing or unusable secret or certificate stops with one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pki_helpers import Pki

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


def start(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_FILE") and k != "PUBLIC_ORIGINS"}
    return subprocess.run([sys.executable, "-m", module], env={**clean, **env}, capture_output=True, text=True,
                          timeout=30, cwd=REPO)


def base_env(pki: Pki, role: str) -> dict[str, str]:
    return {
        "MQTT_HOST": "127.0.0.1", "MQTT_PORT": "1", "WEB_PORT": "0", "GRPC_PORT": "0", "WEB_HOST": "127.0.0.1",
        "GRPC_HOST": "127.0.0.1", "RESULTS_ENDPOINT": "127.0.0.1:1",
        "MQTT_PASSWORD_FILE": str(pki.password_path(role)), "TLS_CA_FILE": str(pki.ca),
        "TLS_CERT_FILE": str(pki.cert(role)), "TLS_KEY_FILE": str(pki.key(role)),
        "PUBLIC_ORIGINS": "https://localhost:8443",
    }


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "level=CRITICAL" in line]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("module, role", [("master", "master"), ("worker", "worker")])
def test_missing_password_file_names_setting_and_path(pki: Pki, module: str, role: str, tmp_path: Path) -> None:
    """A password file that does not exist stops the service with one line naming the setting and path."""
    env = {**base_env(pki, role), "MQTT_PASSWORD_FILE": str(tmp_path / "nope")}
    assert_one_clear_line(start(module, env), f"MQTT_PASSWORD_FILE={tmp_path / 'nope'} does not exist")


@pytest.mark.parametrize("module, role", [("master", "master"), ("worker", "worker")])
def test_unset_secret_setting_is_named(pki: Pki, module: str, role: str) -> None:
    """An unset MQTT_PASSWORD_FILE stops the service with one line naming the setting."""
    env = base_env(pki, role)
    del env["MQTT_PASSWORD_FILE"]
    assert_one_clear_line(start(module, env), "MQTT_PASSWORD_FILE is not set")


def test_unreadable_key_file_names_setting_and_path(pki: Pki, tmp_path: Path) -> None:
    """A directory where the key should be (unreadable as a file) is named with its setting."""
    env = {**base_env(pki, "master"), "TLS_KEY_FILE": str(tmp_path)}
    assert_one_clear_line(start("master", env), f"TLS_KEY_FILE={tmp_path} is a directory")


def test_corrupt_certificate_names_setting_and_fix(pki: Pki, tmp_path: Path) -> None:
    """A certificate file that is not PEM stops the worker with one line naming the setting and the fix."""
    bad = tmp_path / "master.crt"
    bad.write_text("garbage\n")
    env = {**base_env(pki, "worker"), "TLS_CERT_FILE": str(bad)}
    assert_one_clear_line(start("worker", env), f"TLS_CERT_FILE={bad} is not a PEM certificate", "gen-pki.sh")


def test_missing_gemini_key_file_names_setting(pki: Pki, tmp_path: Path) -> None:
    """A Gemini key file that does not exist stops the worker with one line naming the setting."""
    env = {**base_env(pki, "worker"), "GEMINI_API_KEY_FILE": str(tmp_path / "key")}
    assert_one_clear_line(start("worker", env), f"GEMINI_API_KEY_FILE={tmp_path / 'key'} does not exist")


def test_empty_secret_file_is_refused(pki: Pki, tmp_path: Path) -> None:
    """An empty secret file stops the master with one line saying it is empty."""
    empty = tmp_path / "pw"
    empty.write_text("\n")
    env = {**base_env(pki, "master"), "MQTT_PASSWORD_FILE": str(empty)}
    assert_one_clear_line(start("master", env), f"MQTT_PASSWORD_FILE={empty} is empty")


def test_invalid_worker_id_is_refused(pki: Pki) -> None:
    """A WORKER_ID outside the allowed pattern stops the worker with one line naming it."""
    env = {**base_env(pki, "worker"), "WORKER_ID": "Bad/Id"}
    assert_one_clear_line(start("worker", env), "WORKER_ID", "must match")


def test_master_without_public_origins_says_what_to_set(pki: Pki) -> None:
    """A master started outside the launcher without PUBLIC_ORIGINS refuses to start, naming the setting and an example."""
    env = base_env(pki, "master")
    del env["PUBLIC_ORIGINS"]
    assert_one_clear_line(start("master", env), "PUBLIC_ORIGINS is not set", "https://chat.example.org")
