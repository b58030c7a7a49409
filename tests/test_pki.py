"""The CA and leaves made by pki/ and scripts/gen-pki.sh."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.cert_roles import cert_role
from pki.generate import cert_sans, generate, signed_by
from pki.store import load_cert

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
GEN_PKI = REPO / "scripts" / "gen-pki.sh"
LEAVES = ("master", "mosquitto", "worker")


def run_gen_pki(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AISYS_PYTHON": sys.executable}
    return subprocess.run([str(GEN_PKI), *args], capture_output=True, text=True, env=env, timeout=60)


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(out.iterdir()) if p.is_file()}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    result = run_gen_pki("--out", str(tmp_path / "pki"), "--hostname", "chat.example.org")
    assert result.returncode == 0, result.stderr
    return tmp_path / "pki"


def test_every_leaf_chains_to_the_ca(out: Path) -> None:
    """Each leaf is signed by the CA (checked in Python)."""
    ca = load_cert(out / "ca.crt")
    for name in LEAVES:
        assert signed_by(load_cert(out / f"{name}.crt"), ca), name


def test_openssl_verify_accepts_every_leaf(out: Path) -> None:
    """`openssl verify -CAfile` passes for every leaf, with the purpose each is for."""
    for name, purpose in (("master", "sslserver"), ("mosquitto", "sslserver"), ("worker", "sslclient")):
        result = subprocess.run(
            ["openssl", "verify", "-purpose", purpose, "-CAfile", str(out / "ca.crt"), str(out / f"{name}.crt")],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stdout + result.stderr


def test_openssl_verify_rejects_a_leaf_from_another_ca(out: Path, tmp_path: Path) -> None:
    """A leaf of one CA does not verify against another CA (the check above can fail)."""
    other = tmp_path / "other"
    generate(other)
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(other / "ca.crt"), str(out / "master.crt")], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "unable to get local issuer certificate" in result.stdout + result.stderr


def test_ca_is_p256_pathlen_0_cert_signing_only(out: Path) -> None:
    """The CA: P-256, CA:TRUE pathlen 0 critical, keyCertSign+cRLSign, SKI, about 5 years."""
    ca = load_cert(out / "ca.crt")
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    days = (ca.not_valid_after_utc - ca.not_valid_before_utc).days
    assert 5 * 365 - 2 <= days <= 5 * 366


@pytest.mark.parametrize(
    ("name", "usage", "sans"),
    [
        ("master", ExtendedKeyUsageOID.SERVER_AUTH, {"master", "localhost", "127.0.0.1", "chat.example.org"}),
        ("mosquitto", ExtendedKeyUsageOID.SERVER_AUTH, {"mosquitto", "localhost", "127.0.0.1"}),
        ("worker", ExtendedKeyUsageOID.CLIENT_AUTH, set()),
    ],
)

def test_leaf_has_its_usage_sans_and_role(out: Path, name: str, usage: x509.ObjectIdentifier, sans: set[str]) -> None:
    """Leaves: own P-256 key, digitalSignature, the one EKU of the role, SANs, AKI, ~90 days, role in subject."""
    cert = load_cert(out / f"{name}.crt")
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
    assert set(cert_sans(cert)) == sans
    cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert 89 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 91
    assert cert_role(cert) == name
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name


def test_directory_is_0700_and_keys_0600(out: Path) -> None:
    """Output directory 0700, every private key 0600."""
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    keys = list(out.glob("*.key"))
    assert len(keys) == 4
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_rerun_changes_no_file(out: Path) -> None:
    """A second run with the same arguments rewrites nothing (content and mtime)."""
    before = snapshot(out)
    result = run_gen_pki("--out", str(out), "--hostname", "chat.example.org")
    assert result.returncode == 0, result.stderr
    assert snapshot(out) == before
    assert "created" not in result.stdout.split("\n", 1)[1]


def test_rerun_without_hostname_keeps_the_extra_san(out: Path) -> None:
    """A rerun without --hostname keeps the master certificate that has it."""
    before = (out / "master.crt").read_bytes()
    assert run_gen_pki("--out", str(out)).returncode == 0
    assert (out / "master.crt").read_bytes() == before


def test_renew_keeps_ca_and_gives_new_leaf_serials(out: Path) -> None:
    """--renew re-issues every leaf from the same CA; the extra SAN survives."""
    ca_before = (out / "ca.crt").read_bytes(), (out / "ca.key").read_bytes()
    serials = {n: load_cert(out / f"{n}.crt").serial_number for n in LEAVES}
    result = run_gen_pki("--out", str(out), "--renew")
    assert result.returncode == 0, result.stderr
    assert ((out / "ca.crt").read_bytes(), (out / "ca.key").read_bytes()) == ca_before
    ca = load_cert(out / "ca.crt")
    for name in LEAVES:
        cert = load_cert(out / f"{name}.crt")
        assert cert.serial_number != serials[name]
        assert signed_by(cert, ca)
    assert "chat.example.org" in cert_sans(load_cert(out / "master.crt"))


def test_ca_is_not_replaced_without_force(out: Path) -> None:
    """Without --force the CA stays; with --force a new CA signs new leaves."""
    ca_before = (out / "ca.crt").read_bytes()
    assert run_gen_pki("--out", str(out)).returncode == 0
    assert (out / "ca.crt").read_bytes() == ca_before
    result = run_gen_pki("--out", str(out), "--force")
    assert result.returncode == 0, result.stderr
    assert (out / "ca.crt").read_bytes() != ca_before
    assert signed_by(load_cert(out / "worker.crt"), load_cert(out / "ca.crt"))


def test_missing_leaf_is_reissued_alone(out: Path) -> None:
    """Deleting one leaf and re-running re-creates only that leaf."""
    (out / "worker.crt").unlink()
    master_before = (out / "master.crt").read_bytes()
    assert run_gen_pki("--out", str(out)).returncode == 0
    assert (out / "worker.crt").exists()
    assert (out / "master.crt").read_bytes() == master_before


def test_corrupt_ca_key_gives_one_clear_line(out: Path) -> None:
    """A corrupt CA key: exit 1, one line naming the file and the fix, no traceback, nothing rewritten."""
    (out / "ca.key").write_text("not a key\n")
    before = snapshot(out)
    result = run_gen_pki("--out", str(out))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "ca.key is not an unencrypted PEM private key" in lines[0] and "--force" in lines[0]
    assert snapshot(out) == before


def test_unreadable_ca_key_gives_one_clear_line(out: Path) -> None:
    """A CA key that cannot be read (here: a directory in its place): exit 1, one line, no traceback."""
    (out / "ca.key").unlink()
    (out / "ca.key").mkdir()
    result = run_gen_pki("--out", str(out))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "ca.key is not readable" in result.stderr


def test_bad_flag_prints_usage_and_fails(tmp_path: Path) -> None:
    """An unknown flag: usage on stderr, exit 2, nothing created."""
    result = run_gen_pki("--out", str(tmp_path / "x"), "--bogus")
    assert result.returncode == 2
    assert "usage: gen-pki.sh" in result.stderr
    assert not (tmp_path / "x").exists()


def test_summary_prints_subject_sans_usage_expiry_fingerprint(out: Path) -> None:
    """The summary line of each certificate names what a reviewer checks."""
    result = run_gen_pki("--out", str(out))
    master = next(line for line in result.stdout.splitlines() if line.startswith("master"))
    for part in ("subject=CN=master", "sans=master,localhost,127.0.0.1,chat.example.org", "usage=serverAuth", "expires=", "sha256="):
        assert part in master
