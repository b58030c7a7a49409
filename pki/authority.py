"""Build the project's certificate authority and its leaf certificates (ECDSA P-256)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.cert_roles import WORKER_ROLE

CA_VALIDITY = dt.timedelta(days=5 * 365)
LEAF_VALIDITY = dt.timedelta(days=90)
# Certificates start slightly in the past so a peer with a lagging clock accepts them.
BACKDATE = dt.timedelta(minutes=5)
ORGANIZATION = "ai-system"


@dataclass(frozen=True)
class Role:
    """A kind of leaf certificate: its name (also its subject CN and OU), usage and SANs."""

    name: str
    server: bool
    default_sans: tuple[str, ...]


ROLES: dict[str, Role] = {
    "master": Role("master", server=True, default_sans=("master", "localhost", "127.0.0.1")),
    "mosquitto": Role("mosquitto", server=True, default_sans=("mosquitto", "localhost", "127.0.0.1")),
    WORKER_ROLE: Role(WORKER_ROLE, server=False, default_sans=()),
}


@dataclass(frozen=True)
class Issued:
    """A private key with its certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def create_ca(common_name: str = "ai-system CA") -> Issued:
    """A self-signed CA that may sign leaves only (path length 0)."""
    key = new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def _san_entry(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def leaf_sans(role: Role, extra_hostnames: tuple[str, ...] = ()) -> list[str]:
    """The role's default SANs followed by any extra host names, without repeats."""
    if not role.server:
        return []
    return list(dict.fromkeys((*role.default_sans, *extra_hostnames)))


def issue_leaf(ca: Issued, role: Role, extra_hostnames: tuple[str, ...] = ()) -> Issued:
    """A leaf for `role`, signed by `ca`, with its own fresh key."""
    key = new_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.name),
            x509.NameAttribute(NameOID.COMMON_NAME, role.name),
        ]
    )
    usage = ExtendedKeyUsageOID.SERVER_AUTH if role.server else ExtendedKeyUsageOID.CLIENT_AUTH
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + LEAF_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    sans = leaf_sans(role, extra_hostnames)
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_san_entry(s) for s in sans]), critical=False
        )
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))
