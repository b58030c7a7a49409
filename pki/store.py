"""Read and write PKI files with safe permissions, atomically."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki.authority import Issued

DIR_MODE = 0o700
KEY_MODE = 0o600
CERT_MODE = 0o644


class PkiError(Exception):
    """A PKI problem that the user can fix; its message is one line that says how."""


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` via a temporary file created with `mode`, then rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_issued(out: Path, name: str, issued: Issued) -> None:
    """Write `<name>.key` (0600) and then `<name>.crt`."""
    write_atomic(out / f"{name}.key", key_pem(issued.key), KEY_MODE)
    write_atomic(out / f"{name}.crt", issued.cert.public_bytes(serialization.Encoding.PEM), CERT_MODE)


def load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise PkiError(f"{path} is not readable ({exc.strerror}): fix its permissions or re-run with --force") from None
    except ValueError:
        raise PkiError(f"{path} is not a PEM certificate: restore it or re-run with --force") from None


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise PkiError(f"{path} is not readable ({exc.strerror}): fix its permissions or re-run with --force") from None
    except (ValueError, TypeError):
        raise PkiError(f"{path} is not an unencrypted PEM private key: restore it or re-run with --force") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path} is not an EC private key: restore it or re-run with --force")
    return key


def load_issued(out: Path, name: str) -> Issued:
    """Load `<name>.key` and `<name>.crt`, checking that they belong together."""
    key = load_key(out / f"{name}.key")
    cert = load_cert(out / f"{name}.crt")
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise PkiError(f"{out / name}.key does not match {name}.crt: restore the pair or re-run with --force")
    return Issued(key, cert)
