"""MQTT credentials: random passwords, and a Python-written $7$ file that mosquitto accepts."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.local_broker import reload_broker, run_broker
from common.tls import client_context
from pki.credentials import (
    MQTT_USERS,
    PBKDF2_ITERATIONS,
    ensure_credentials,
    hash_password,
    password_file_name,
    verify_password,
)
from tests.pki_helpers import Pki
from tests.mqtt_helpers import CONNACK_ACCEPTED, CONNACK_NOT_AUTHORISED, raw_connack, tls_socket

REPO = Path(__file__).resolve().parent.parent


def test_hash_has_mosquitto_7_format() -> None:
    """`$7$<iterations>$<b64 12-byte salt>$<b64 64-byte hash>`, at least 1,000 iterations."""
    import base64

    _, kind, iterations, salt, digest = hash_password("pw-for-format").split("$")
    assert kind == "7" and int(iterations) == PBKDF2_ITERATIONS >= 1000
    assert len(base64.b64decode(salt)) == 12 and len(base64.b64decode(digest)) == 64


def test_hash_verifies_right_password_only() -> None:
    """The $7$ hash verifies its own password and refuses one a character off."""
    encoded = hash_password("correct horse")
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horsf", encoded)


def test_too_few_iterations_are_refused() -> None:
    """Fewer than 1,000 PBKDF2 iterations is refused with a message naming the minimum."""
    with pytest.raises(ValueError, match="1,000"):
        hash_password("x" * 10, iterations=999)


def test_files_are_0600_in_0700_dir_and_differ(tmp_path: Path) -> None:
    """Each password is random, 0600; the hash file holds no password."""
    out = tmp_path / "creds"
    assert ensure_credentials(out) == [*MQTT_USERS, "session_secret", "initial_admin_password",
                                     "grafana_admin_password"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    passwords = []
    for user in MQTT_USERS:
        path = out / password_file_name(user)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        passwords.append(path.read_text().strip())
    assert len(set(passwords)) == 2 and all(len(p) >= 40 for p in passwords)
    hashes = (out / "mosquitto_passwd").read_text()
    assert stat.S_IMODE((out / "mosquitto_passwd").stat().st_mode) == 0o600
    assert not any(p in hashes for p in passwords)


def test_rerun_keeps_passwords_and_hashes(tmp_path: Path) -> None:
    """A second run changes no credential file (idempotent)."""
    out = tmp_path / "creds"
    ensure_credentials(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert ensure_credentials(out) == []
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_rotate_replaces_one_password(tmp_path: Path) -> None:
    """Rotating one secret replaces only that one; the others keep their values."""
    out = tmp_path / "creds"
    ensure_credentials(out)
    master_before = (out / "mqtt_master_password").read_text()
    worker_before = (out / "mqtt_worker_password").read_text()
    assert ensure_credentials(out, rotate=("worker",)) == ["worker"]
    session_before = (out / "session_secret").read_text()
    assert ensure_credentials(out, rotate=("session_secret",)) == ["session_secret"]
    assert (out / "session_secret").read_text() != session_before
    assert (out / "mqtt_master_password").read_text() == master_before
    assert (out / "mqtt_worker_password").read_text() != worker_before


@pytest.mark.integration
def test_cli_never_prints_a_password(tmp_path: Path) -> None:
    """scripts/gen-credentials.sh makes the passwords without printing any of them."""
    out = tmp_path / "creds"
    env = {**os.environ, "AISYS_PYTHON": sys.executable}
    result = subprocess.run(
        [str(REPO / "scripts" / "gen-credentials.sh"), "--out", str(out)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    for user in MQTT_USERS:
        assert (out / password_file_name(user)).read_text().strip() not in result.stdout + result.stderr


@pytest.mark.integration
def test_mosquitto_accepts_python_hashes_and_rereads_on_sighup(pki: Pki, tmp_path: Path) -> None:
    """Our $7$ file: right password -> CONNACK 0, wrong -> 5; after rotation + SIGHUP the new one works."""
    creds = tmp_path / "creds"
    ensure_credentials(creds)
    passwd = creds / "mosquitto_passwd"
    ctx = client_context(pki.tls())
    with run_broker(pki.ca, pki.cert("mosquitto"), pki.key("mosquitto"), passwd) as broker:
        old = (creds / "mqtt_worker_password").read_text().strip()
        with tls_socket(broker.port, ctx) as s:
            assert raw_connack(s, "w1", "worker", old) == CONNACK_ACCEPTED
        with tls_socket(broker.port, ctx) as s:
            assert raw_connack(s, "w2", "worker", "not-the-password") == CONNACK_NOT_AUTHORISED

        ensure_credentials(creds, rotate=("worker",))
        # The broker reads its own copy: refresh it, then SIGHUP (what a rotation does).
        (broker.directory / "mosquitto_passwd").write_bytes(passwd.read_bytes())
        reload_broker(broker)
        new = (creds / "mqtt_worker_password").read_text().strip()
        import time

        for _ in range(50):
            with tls_socket(broker.port, ctx) as s:
                if raw_connack(s, "w3", "worker", new) == CONNACK_ACCEPTED:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the rotated password was not accepted after SIGHUP")
        with tls_socket(broker.port, ctx) as s:
            assert raw_connack(s, "w4", "worker", old) == CONNACK_NOT_AUTHORISED
