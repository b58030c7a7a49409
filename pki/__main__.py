"""gen-pki: make the CA and the leaf certificates (`python -m pki --help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from cryptography.x509.oid import ExtendedKeyUsageOID

from common.cert_roles import cert_role
from pki.generate import CA_NAME, Report, cert_sans, generate
from pki.store import PkiError, load_cert

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
USAGE_NAMES = {ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth", ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth"}


def _usage_names(cert: x509.Certificate) -> str:
    names: list[str] = []
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        names += [USAGE_NAMES.get(oid, oid.dotted_string) for oid in eku]
    except x509.ExtensionNotFound:
        pass
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            names.append(f"CA(pathlen={bc.path_length})")
    except x509.ExtensionNotFound:
        pass
    return ",".join(names) or "-"


def summary_line(name: str, cert: x509.Certificate, action: str) -> str:
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":").upper()
    sans = ",".join(cert_sans(cert)) or "-"
    return (
        f"{name:<10} {action:<7} subject={cert.subject.rfc4514_string()} role={cert_role(cert) or '-'} "
        f"sans={sans} usage={_usage_names(cert)} "
        f"expires={cert.not_valid_after_utc:%Y-%m-%d} sha256={fingerprint}"
    )


def print_summary(out: Path, report: Report) -> None:
    print(f"PKI in {out} (directory 0700, keys 0600); trust {out / (CA_NAME + '.crt')}")
    for name in [CA_NAME, "master", "mosquitto", "worker"]:
        action = "created" if name in report.created else "kept"
        print(summary_line(name, load_cert(out / f"{name}.crt"), action))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gen-pki.sh",
        description="Make the ai-system CA and the master, mosquitto and worker certificates.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default pki/out)")
    parser.add_argument(
        "--hostname",
        action="append",
        default=[],
        metavar="NAME",
        help="extra SAN for the master certificate (public host name); repeatable",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--renew", action="store_true", help="re-issue every leaf from the existing CA")
    mode.add_argument("--force", action="store_true", help="replace the CA and every leaf")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        report = generate(args.out, tuple(args.hostname), renew=args.renew, force=args.force)
        print_summary(args.out, report)
    except PkiError as exc:
        print(f"gen-pki: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gen-pki: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
