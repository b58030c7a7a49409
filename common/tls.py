"""Every TLS context and gRPC credential of the system; nothing else opens a key or certificate."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from common.secret_files import ConfigError, read_file_setting

logger = logging.getLogger(__name__)

# Mozilla "intermediate" (https://ssl-config.mozilla.org/, as sslyze --mozilla_config=intermediate
# judges it). TLS 1.2 suites: ECDHE with AEAD only (no CBC, no DHE: our keys are ECDSA and we ship no
# DH parameters). mosquitto/mosquitto.conf carries the same two lists (tests/test_tls_profile.py).
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
TLS13_CIPHERSUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
# Key-exchange groups the profile allows, by OpenSSL short name, in order of preference.
ALLOWED_GROUPS = ("X25519", "prime256v1", "secp384r1")
# Every other group this OpenSSL might offer; server_context() checks that each is refused.
OTHER_GROUPS = (
    "secp521r1", "X448", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192",
    "secp256k1", "brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1",
)
# The OpenSSL configuration that sets ALLOWED_GROUPS for a whole process (mosquitto and the
# master): OPENSSL_CONF must name it when the process starts.
OPENSSL_CONF_FILE = Path(__file__).resolve().with_name("openssl.cnf")


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


class _SocketClosedOnFailedHandshake(ssl.SSLSocket):
    """An SSLSocket that closes itself when its handshake fails.

    paho-mqtt (under aiomqtt) wraps with do_handshake_on_connect=False, then calls do_handshake() and lets a
    failure propagate without closing the socket: every refused or broken handshake (a broker restarting,
    another CA) left a file descriptor open until the garbage collector found it."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # a non-blocking handshake in progress, not a failure
        except BaseException:
            self.close()
            raise


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A TLS 1.2+ client context that trusts only our CA and checks the host name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.sslsocket_class = _SocketClosedOnFailedHandshake
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=files.read_ca().decode())
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if files.cert is not None:
        files.read_key()
        ctx.load_cert_chain(str(files.cert), str(files.key))
    return ctx


def server_context(files: TlsFiles, alpn: Sequence[str] = ("http/1.1",)) -> ssl.SSLContext:
    """The HTTPS server context: Mozilla "intermediate" (TLS 1.2+, AEAD suites, X25519/P-256/P-384).

    Python 3.11's ssl sets key-exchange groups only through set_ecdh_curve, which with OpenSSL 3
    leaves exactly one group. The full list comes from OpenSSL's own configuration
    (OPENSSL_CONF=common/openssl.cnf at process start); this function checks what the context
    really accepts and, when anything outside the profile is accepted (the variable was not set),
    narrows the context to P-256 alone, which every TLS client supports. ALPN defaults to HTTP/1.1:
    Engine.IO refuses WebSockets over HTTP/2 (RFC 8441), and uvicorn speaks no HTTP/2.
    """
    files.check()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)  # TLS 1.3 suites: OpenSSL's default three, all in the profile
    # The profile leaves the choice of suite to the client (all are strong; ChaCha20 is faster
    # on clients without AES instructions). No renegotiation: TLS 1.3 has none either.
    ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    ctx.load_cert_chain(str(files.cert), str(files.key))
    ctx.set_alpn_protocols(list(alpn))
    # Cheapest first, stop at the first accepted: ~5 ms without OPENSSL_CONF, ~20 ms with it.
    outside = next((g for g in OTHER_GROUPS if _handshake_with_group(ctx, g)), None)
    if outside is not None:
        ctx.set_ecdh_curve("prime256v1")
        logger.warning(
            "TLS group %s was accepted (start the process with OPENSSL_CONF=%s): offering P-256 only",
            outside, OPENSSL_CONF_FILE,
        )
    return ctx


def accepted_groups(server: ssl.SSLContext) -> tuple[str, ...]:
    """The key-exchange groups `server` completes a TLS 1.3 handshake with, tried one at a time in memory.

    `server` must hold its certificate. A TLS 1.3 handshake negotiates the group independently of
    the certificate, so each try isolates one group; no socket is opened.
    """
    return tuple(g for g in (*ALLOWED_GROUPS, *OTHER_GROUPS) if _handshake_with_group(server, g))


def _handshake_with_group(server: ssl.SSLContext, group: str) -> bool:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE  # only the key exchange is under test, not the certificate
    client.minimum_version = client.maximum_version = ssl.TLSVersion.TLSv1_3
    try:
        client.set_ecdh_curve(group)
    except (ValueError, ssl.SSLError):
        return False  # this OpenSSL does not know the group, so it cannot accept it either
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    ends = (client.wrap_bio(c_in, c_out), server.wrap_bio(s_in, s_out, server_side=True))
    done = [False, False]
    for _ in range(6):  # a TLS 1.3 handshake takes two flights each way
        for i, end in enumerate(ends):
            if done[i]:
                continue
            try:
                end.do_handshake()
                done[i] = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLError:
                return False
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done):
            return True
    return False


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
