"""Make or refresh the PKI directory: CA plus master, mosquitto and worker leaves."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pki.authority import ROLES, Issued, create_ca, issue_leaf, leaf_sans
from pki.store import PkiError, ensure_private_dir, load_cert, load_issued, write_issued

CA_NAME = "ca"
# A leaf that expires sooner than this is re-issued by a plain run.
RENEW_BEFORE = dt.timedelta(days=14)


@dataclass
class Report:
    """What a run did: file stems created or re-issued, and those kept."""

    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    public_key = ca.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        return False
    try:
        public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return cert.issuer == ca.subject


def cert_sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in ext]


def _leaf_is_current(out: Path, name: str, ca: Issued, wanted_sans: list[str]) -> bool:
    """True when the leaf exists, matches its key, chains to `ca`, has the SANs and is not expiring."""
    if not (out / f"{name}.key").exists() or not (out / f"{name}.crt").exists():
        return False
    try:
        leaf = load_issued(out, name)
    except PkiError:
        return False
    expiring = leaf.cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) < RENEW_BEFORE
    return signed_by(leaf.cert, ca.cert) and set(wanted_sans) <= set(cert_sans(leaf.cert)) and not expiring


def _load_or_create_ca(out: Path, force: bool, renew: bool, report: Report) -> Issued:
    key_path, cert_path = out / f"{CA_NAME}.key", out / f"{CA_NAME}.crt"
    exists = key_path.exists() or cert_path.exists()
    if exists and not force:
        if not (key_path.exists() and cert_path.exists()):
            missing = cert_path if key_path.exists() else key_path
            raise PkiError(f"{missing} is missing while the rest of the CA exists: restore it or re-run with --force")
        ca = load_issued(out, CA_NAME)
        report.kept.append(CA_NAME)
        return ca
    if renew and not exists:
        raise PkiError(f"--renew needs an existing CA in {out}: run without --renew first")
    ca = create_ca()
    write_issued(out, CA_NAME, ca)
    report.created.append(CA_NAME)
    return ca


def generate(out: Path, hostnames: tuple[str, ...] = (), renew: bool = False, force: bool = False) -> Report:
    """Create what is missing in `out`; `renew` re-issues every leaf; `force` replaces the CA too."""
    ensure_private_dir(out)
    report = Report()
    ca = _load_or_create_ca(out, force, renew, report)
    ca_is_new = CA_NAME in report.created
    for role in ROLES.values():
        extra = hostnames if role.name == "master" else ()
        wanted = leaf_sans(role, extra)
        if not (ca_is_new or renew) and _leaf_is_current(out, role.name, ca, wanted):
            report.kept.append(role.name)
            continue
        if role.name == "master":
            # Keep the host names a previous run added: a rerun without --hostname must not drop them.
            extra = tuple(dict.fromkeys((*_previous_sans(out / "master.crt"), *extra)))
        write_issued(out, role.name, issue_leaf(ca, role, extra))
        report.created.append(role.name)
    return report


def _previous_sans(path: Path) -> list[str]:
    if not path.exists():
        return []
    try:
        return cert_sans(load_cert(path))
    except PkiError:
        return []
