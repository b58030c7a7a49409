"""Shared fixtures: a throwaway CA and MQTT credentials made by our own pki code, and the real broker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.local_broker import RunningBroker, run_broker
from common.redaction import forget_secrets
from common.tls import TlsFiles
from pki.credentials import ensure_credentials, password_file_name
from pki.generate import generate


@dataclass(frozen=True)
class Pki:
    """A generated PKI directory and the MQTT credentials beside it."""

    out: Path
    creds: Path

    @property
    def ca(self) -> Path:
        return self.out / "ca.crt"

    def cert(self, role: str) -> Path:
        return self.out / f"{role}.crt"

    def key(self, role: str) -> Path:
        return self.out / f"{role}.key"

    def tls(self, role: str | None = None) -> TlsFiles:
        """Files for a client or server: our CA plus, when `role` is given, that role's pair."""
        if role is None:
            return TlsFiles(ca=self.ca)
        return TlsFiles(ca=self.ca, cert=self.cert(role), key=self.key(role))

    def password(self, user: str) -> str:
        return (self.creds / password_file_name(user)).read_text().strip()

    def password_path(self, user: str) -> Path:
        return self.creds / password_file_name(user)

    @property
    def mosquitto_passwd(self) -> Path:
        return self.creds / "mosquitto_passwd"


def make_pki(base: Path, hostnames: tuple[str, ...] = ()) -> Pki:
    pki = Pki(base / "pki", base / "pki" / "credentials")
    generate(pki.out, hostnames)
    ensure_credentials(pki.creds)
    return pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One CA and credentials for the whole run."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A second, unrelated CA: what an attacker's certificates chain to."""
    return make_pki(tmp_path_factory.mktemp("other-pki"))


@pytest.fixture(scope="session")
def broker(pki: Pki) -> Iterator[RunningBroker]:
    """The real mosquitto with our config, on a free 127.0.0.1 port; stopped at the end."""
    with run_broker(pki.ca, pki.cert("mosquitto"), pki.key("mosquitto"), pki.mosquitto_passwd) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_secrets_leak_between_tests() -> Iterator[None]:
    yield
    forget_secrets()
