"""Every TLS context and gRPC credential of the system; nothing else opens a key or certificate."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from common.secret_files import ConfigError, read_file_setting


@dataclass(frozen=True)
class TlsFiles:
    """A service's CA bundle, certificate and key paths, with the settings that named them."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None
    ca_setting: str = "TLS_CA_FILE"
    cert_setting: str = "TLS_CERT_FILE"
    key_setting: str = "TLS_KEY_FILE"

    def read_ca(self) -> bytes:
        data = read_file_setting(self.ca_setting, self.ca, what="CA certificate")
        _check_pem_cert(self.ca_setting, self.ca, data)
        return data

    def read_cert(self) -> bytes:
        data = read_file_setting(self.cert_setting, self.cert, what="certificate")
        _check_pem_cert(self.cert_setting, self.cert, data)
        return data

    def read_key(self) -> bytes:
        data = read_file_setting(self.key_setting, self.key, what="private key")
        try:
            serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{self.key_setting}={self.key} is not an unencrypted PEM private key: run scripts/gen-pki.sh"
            ) from None
        return data

    def check(self) -> None:
        """Read everything now so a bad file stops start-up with one clear line."""
        self.read_ca()
        if self.cert is not None or self.key is not None:
            self.read_cert()
            self.read_key()


def _check_pem_cert(setting: str, path: Path | None, data: bytes) -> None:
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{setting}={path} is not a PEM certificate: run scripts/gen-pki.sh") from None


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A TLS 1.2+ client context that trusts only our CA and checks the host name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=files.read_ca().decode())
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if files.cert is not None:
        files.read_key()
        ctx.load_cert_chain(str(files.cert), str(files.key))
    return ctx


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A TLS 1.2+ server context with our certificate (used for HTTPS)."""
    files.check()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(files.cert), str(files.key))
    ctx.set_alpn_protocols(["http/1.1"])  # HTTP/1.1 only: docs/DESIGN.md "HTTPS is served as HTTP/1.1"
    return ctx


def grpc_server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """Mutual TLS for the results server; the files are re-read on each new handshake when they change."""
    files.check()

    def current_config() -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(files.read_key(), files.read_cert())], root_certificates=files.read_ca()
        )

    state = {"mtimes": _mtimes(files), "config": current_config()}

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        mtimes = _mtimes(files)
        if mtimes == state["mtimes"]:
            return None  # unchanged: gRPC keeps the current configuration
        try:
            state["config"] = current_config()
        except ConfigError:
            return None  # half-written renewal: keep serving the old certificate, retry next handshake
        state["mtimes"] = mtimes
        return state["config"]

    return grpc.dynamic_ssl_server_credentials(state["config"], fetch, require_client_authentication=True)


def _mtimes(files: TlsFiles) -> tuple[float, ...]:
    out = []
    for p in (files.ca, files.cert, files.key):
        try:
            out.append(Path(p).stat().st_mtime) if p is not None else out.append(0.0)
        except OSError:
            out.append(-1.0)
    return tuple(out)


def grpc_channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """The worker's client side of mutual TLS: our CA plus the worker certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=files.read_ca(),
        private_key=files.read_key() if files.key is not None else None,
        certificate_chain=files.read_cert() if files.cert is not None else None,
    )
