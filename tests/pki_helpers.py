"""A throwaway PKI for tests: our own CA, leaves and MQTT credentials, made by the project's `pki` code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    """Generate a CA, every leaf and the MQTT credentials under `base/pki`."""
    pki = Pki(base / "pki", base / "pki" / "credentials")
    generate(pki.out, hostnames)
    ensure_credentials(pki.creds)
    return pki
