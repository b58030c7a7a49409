"""TLS on every endpoint as `sslyze --mozilla_config=intermediate` judges it, with our CA.

sslyze runs from its own venv (.venv-sslyze, from the `tls-audit` extra of pyproject.toml): it pins
an older cryptography than the services use. tests/sslyze_audit.py does the scan and the Mozilla
check there and prints the findings as JSON; any finding fails a test and is printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.tls import (
    ALLOWED_GROUPS,
    OPENSSL_CONF_FILE,
    TLS12_CIPHERS,
    TLS13_CIPHERSUITES,
    accepted_groups,
    client_context,
    server_context,
)
from devstack.local_broker import free_port, stop_process
from devstack.local_run import LocalStack, run_local_stack
from tests.conftest import Pki

REPO = Path(__file__).resolve().parent.parent
SSLYZE_VENV = REPO / ".venv-sslyze"
AUDIT = REPO / "tests" / "sslyze_audit.py"
# sslyze's names for X25519, P-256 and P-384: all that Mozilla "intermediate" allows.
PROFILE_GROUPS = ["X25519", "secp256r1", "secp384r1"]


def tls_audit_requirements() -> list[str]:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return list(extras["tls-audit"])


@pytest.fixture(scope="session")
def sslyze_python() -> Path:
    """The Python of .venv-sslyze, made (once per requirement set) with the `tls-audit` extra."""
    requirements = tls_audit_requirements()
    python = SSLYZE_VENV / "bin" / "python"
    stamp = SSLYZE_VENV / (".installed-" + hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:16])
    if not stamp.exists():
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(SSLYZE_VENV)], check=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirements],
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"cannot install {requirements} into {SSLYZE_VENV}: {done.stderr[-2000:]}")
        stamp.touch()
    return python


def audit(python: Path, port: int, ca: Path, client: tuple[Path, Path] | None = None) -> dict[str, Any]:
    """sslyze's Mozilla "intermediate" check of localhost:`port`: {"findings": {...}, "offers": {...}}."""
    cmd = [str(python), "-W", "ignore", str(AUDIT), f"localhost:{port}", "--ca", str(ca)]
    if client is not None:
        cmd += ["--cert", str(client[0]), "--key", str(client[1])]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"sslyze_audit.py failed:\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(done.stdout)
    assert "error" not in result, result
    return result


def shown(result: dict[str, Any]) -> str:
    """The findings and what the port offers, for an assertion message."""
    return json.dumps(result, indent=2)


@pytest.fixture(scope="module")
def stack(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """mosquitto and the master as the local run starts them (no workers: only the ports matter)."""
    with run_local_stack(workers=0, web_port=free_port(), pki_dir=pki.out,
                         run_dir=tmp_path_factory.mktemp("tls-stack")) as running:
        yield running


@pytest.mark.integration
def test_https_port_passes_mozilla_intermediate(stack: LocalStack, sslyze_python: Path, pki: Pki) -> None:
    """The master's HTTPS port: no finding; TLS 1.2 and 1.3 only, X25519/P-256/P-384 only."""
    result = audit(sslyze_python, stack.web_port, pki.ca)
    assert result["findings"] == {}, shown(result)
    assert result["offers"]["groups"] == PROFILE_GROUPS, shown(result)
    assert set(result["offers"]) == {"TLS 1.2", "TLS 1.3", "groups"}, shown(result)


@pytest.mark.integration
def test_mqtt_port_passes_mozilla_intermediate(stack: LocalStack, sslyze_python: Path, pki: Pki) -> None:
    """mosquitto: no finding (no CBC suite, no X448 or P-521); TLS 1.2 and 1.3 only."""
    result = audit(sslyze_python, stack.mqtt_port, pki.ca)
    assert result["findings"] == {}, shown(result)
    assert result["offers"]["groups"] == PROFILE_GROUPS, shown(result)
    assert set(result["offers"]) == {"TLS 1.2", "TLS 1.3", "groups"}, shown(result)


@pytest.mark.integration
def test_grpc_port_has_no_finding_but_the_group_grpc_cannot_restrict(
    stack: LocalStack, sslyze_python: Path, pki: Pki
) -> None:
    """The gRPC port (worker certificate): P-521 is its one finding; grpcio has no setting for groups."""
    # If this fails because P-521 is gone, a grpcio upgrade fixed it: require no finding here and
    # update the README's TLS section.
    result = audit(sslyze_python, stack.grpc_port, pki.ca, (pki.cert("worker"), pki.key("worker")))
    assert set(result["findings"]) == {"tls_curves"}, shown(result)
    assert "secp521r1" in result["findings"]["tls_curves"], shown(result)
    assert result["offers"]["groups"] == [*PROFILE_GROUPS, "secp521r1"], shown(result)


def p521_only_client(pki: Pki, role: str | None = None) -> ssl.SSLContext:
    ctx = client_context(pki.tls(role))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_ecdh_curve("secp521r1")  # the only group this client offers
    return ctx


@pytest.mark.integration
def test_grpc_port_serves_a_client_offering_only_p521(stack: LocalStack, pki: Pki) -> None:
    """No grpcio setting removes P-521 (GRPC_SSL_CIPHER_SUITES sets suites only): the handshake succeeds."""
    ctx = p521_only_client(pki, "worker")
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", stack.grpc_port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == "TLSv1.3"


@pytest.mark.integration
def test_mqtt_port_refuses_a_client_offering_only_p521(stack: LocalStack, pki: Pki) -> None:
    """Control for the test above: the same client fails against mosquitto with a handshake failure alert."""
    with socket.create_connection(("127.0.0.1", stack.mqtt_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"), \
                p521_only_client(pki).wrap_socket(raw, server_hostname="localhost"):
            pass


# A TLS server on 127.0.0.1:0 that completes handshakes and hangs up; prints its port.
# argv: mode ("server_context": common.tls.server_context; "plain": Python's defaults plus CBC
# suites, a configuration outside the profile), CA, certificate, key.
TLS_SERVER = """
import asyncio, ssl, sys
from pathlib import Path
from common.tls import TlsFiles, server_context

mode, ca, cert, key = sys.argv[1:5]
if mode == "server_context":
    ctx = server_context(TlsFiles(ca=Path(ca), cert=Path(cert), key=Path(key)))
else:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+AES")
    ctx.load_cert_chain(cert, key)

async def hang_up(reader, writer):
    writer.close()

async def main():
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)  # scanners break handshakes
    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=ctx)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


@contextlib.contextmanager
def tls_server(pki: Pki, mode: str, openssl_conf: bool) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """TLS_SERVER as a process, with or without OPENSSL_CONF=common/openssl.cnf; yields its port."""
    env = {k: v for k, v in os.environ.items() if k != "OPENSSL_CONF"}
    if openssl_conf:
        env["OPENSSL_CONF"] = str(OPENSSL_CONF_FILE)
    proc = subprocess.Popen(
        [sys.executable, "-c", TLS_SERVER, mode, str(pki.ca), str(pki.cert("master")), str(pki.key("master"))],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.strip().isdigit():
            stop_process(proc)  # type: ignore[arg-type]
            raise RuntimeError(f"the TLS server did not start: {proc.stderr.read() if proc.stderr else ''}")
        yield int(line), proc
    finally:
        stop_process(proc)  # type: ignore[arg-type]
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.integration
def test_server_context_passes_mozilla_intermediate(sslyze_python: Path, pki: Pki) -> None:
    """server_context() in a process started with OPENSSL_CONF: no finding; X25519, P-256, P-384."""
    with tls_server(pki, "server_context", openssl_conf=True) as (port, _):
        result = audit(sslyze_python, port, pki.ca)
    assert result["findings"] == {}, shown(result)
    assert result["offers"]["groups"] == PROFILE_GROUPS, shown(result)
    assert "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" in result["offers"]["TLS 1.2"], shown(result)


@pytest.mark.integration
def test_server_context_without_openssl_conf_offers_p256_only(sslyze_python: Path, pki: Pki) -> None:
    """Without OPENSSL_CONF, server_context() narrows to P-256 (still no finding) and says why."""
    with tls_server(pki, "server_context", openssl_conf=False) as (port, proc):
        result = audit(sslyze_python, port, pki.ca)
        stop_process(proc)  # type: ignore[arg-type]
        err = proc.stderr.read() if proc.stderr else ""
    assert result["findings"] == {}, shown(result)
    assert result["offers"]["groups"] == ["secp256r1"], shown(result)
    assert "offering P-256 only" in err and "OPENSSL_CONF=" in err


@pytest.mark.integration
def test_audit_reports_a_server_outside_the_profile(sslyze_python: Path, pki: Pki) -> None:
    """The audit can fail: Python's default groups and CBC suites are both reported."""
    with tls_server(pki, "plain", openssl_conf=False) as (port, _):
        result = audit(sslyze_python, port, pki.ca)
    assert {"tls_curves", "ciphers"} <= set(result["findings"]), shown(result)
    assert "secp521r1" in result["findings"]["tls_curves"] and "X448" in result["findings"]["tls_curves"]
    assert "CBC" in result["findings"]["ciphers"]


def test_mosquitto_conf_has_the_cipher_lists_of_common_tls() -> None:
    """mosquitto.conf and common/tls.py name the same TLS 1.2 and TLS 1.3 suites."""
    directives = dict(
        line.split(" ", 1) for line in (REPO / "mosquitto" / "mosquitto.conf").read_text().splitlines()
        if line.startswith(("ciphers ", "ciphers_tls1.3 "))
    )
    assert directives == {"ciphers": TLS12_CIPHERS, "ciphers_tls1.3": TLS13_CIPHERSUITES}


def test_server_context_accepts_no_group_outside_the_profile(pki: Pki) -> None:
    """In this process, whatever OPENSSL_CONF is: the groups server_context() accepts are all allowed ones."""
    accepted = accepted_groups(server_context(pki.tls("master")))
    assert accepted and set(accepted) <= set(ALLOWED_GROUPS), accepted

