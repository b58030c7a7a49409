"""Run by the sslyze venv's Python (tests/test_tls_profile.py), not imported by the suite.

Scans one TLS endpoint with the scan commands Mozilla's profile needs, checks the result against
Mozilla "intermediate" exactly as `sslyze --mozilla_config=intermediate` does, and prints one JSON
object: the findings (criterion -> description; empty when compliant) and what the endpoint offers.

    python tests/sslyze_audit.py HOST:PORT --ca CA.crt [--cert CLIENT.crt --key CLIENT.key]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sslyze import (
    ClientAuthenticationCredentials,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)
from sslyze.mozilla_tls_profile.tls_config_checker import (
    SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    MozillaTlsConfiguration,
    ServerNotCompliantWithTlsConfiguration,
    ServerScanResultIncomplete,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)
from sslyze.plugins.certificate_info.implementation import CertificateInfoExtraArgument
from sslyze.scanner.models import ScanCommandsExtraArguments

SUITE_RESULTS = {
    "TLS 1.0": "tls_1_0_cipher_suites",
    "TLS 1.1": "tls_1_1_cipher_suites",
    "TLS 1.2": "tls_1_2_cipher_suites",
    "TLS 1.3": "tls_1_3_cipher_suites",
}


def offers(result: Any) -> dict[str, Any]:
    """Protocols with their accepted suites, and the accepted key-exchange groups."""
    out: dict[str, Any] = {}
    for name, attr in SUITE_RESULTS.items():
        attempt = getattr(result, attr)
        if attempt.result is not None and attempt.result.accepted_cipher_suites:
            out[name] = [s.cipher_suite.name for s in attempt.result.accepted_cipher_suites]
    curves = result.elliptic_curves.result
    out["groups"] = sorted(c.name for c in curves.supported_curves or []) if curves else None
    return out


def audit(target: str, ca: Path, cert: Path | None, key: Path | None) -> dict[str, Any]:
    host, _, port = target.rpartition(":")
    credentials = ClientAuthenticationCredentials(certificate_chain_path=cert, key_path=key) if cert and key else None
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(hostname=host, port=int(port), ip_address="127.0.0.1"),
        network_configuration=ServerNetworkConfiguration(tls_server_name_indication=host,
                                                         tls_client_auth_credentials=credentials),
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
        scan_commands_extra_arguments=ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=ca)
        ),
    )
    scanner = Scanner()
    scanner.queue_scans([request])
    (scan,) = list(scanner.get_results())
    if scan.scan_status != ServerScanStatusEnum.COMPLETED or scan.scan_result is None:
        return {"target": target, "error": f"scan did not complete: {scan.connectivity_error_trace}"}
    try:
        check_server_against_tls_configuration(
            server_scan_result=scan,
            tls_config_to_check_against=MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE),
        )
        findings: dict[str, str] = {}
    except ServerNotCompliantWithTlsConfiguration as exc:
        findings = dict(exc.issues)
    except ServerScanResultIncomplete as exc:
        return {"target": target, "error": f"scan incomplete: {exc}"}
    return {"target": target, "findings": findings, "offers": offers(scan.scan_result)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT (the host is the SNI name; the address is 127.0.0.1)")
    parser.add_argument("--ca", type=Path, required=True, help="the CA that signed the server certificate")
    parser.add_argument("--cert", type=Path, help="client certificate, for servers that require one")
    parser.add_argument("--key", type=Path, help="client private key")
    args = parser.parse_args()
    print(json.dumps(audit(args.target, args.ca, args.cert, args.key)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
