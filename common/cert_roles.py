"""The role a leaf certificate of our CA was issued for: its subject OU (`master`, `mosquitto`, `worker`).

One definition, used by the CA tool when it issues and prints certificates and by the master when
it decides whether a gRPC peer is a worker.
"""

from __future__ import annotations

import functools

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

WORKER_ROLE = "worker"


def cert_role(cert: x509.Certificate) -> str | None:
    """The role a leaf was issued for (its single OU), or None when it has none or several."""
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(values[0].value) if len(values) == 1 else None


def has_client_auth(cert: x509.Certificate) -> bool:
    """The certificate's extended key usage allows TLS client authentication."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku


@functools.lru_cache(maxsize=64)
def is_worker_certificate(pem: bytes) -> bool:
    """An (already CA-verified) PEM certificate carries clientAuth and exactly the worker role."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return False
    return has_client_auth(cert) and cert_role(cert) == WORKER_ROLE
