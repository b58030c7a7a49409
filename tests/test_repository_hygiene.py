"""Nothing secret is tracked by git: no private key, no password file, no key-shaped string."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PEM_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z]+ )*PRIVATE KEY-----")
GEMINI_KEY = re.compile(r"AIza[0-9A-Za-z_-]{35}")
MOSQUITTO_HASH = re.compile(r"^[^:\s]+:\$[67]\$", re.M)
SECRET_FILE_NAMES = re.compile(r"(^|/)(mosquitto_passwd|mqtt_\w+_password|gemini_api_key|session_secret|.*\.key)$")


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: nothing is tracked")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in out.decode().split("\0") if name]


@pytest.mark.integration
def test_no_private_key_or_key_shaped_string_is_tracked() -> None:
    """No tracked file holds a PEM private key, a Gemini-shaped key or a mosquitto hash."""
    offenders = []
    for path in tracked_files():
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for what, pattern in (("PEM private key", PEM_PRIVATE_KEY), ("Gemini-shaped key", GEMINI_KEY),
                              ("mosquitto password hash", MOSQUITTO_HASH)):
            if pattern.search(text):
                offenders.append(f"{path.relative_to(REPO)}: {what}")
    assert offenders == []


@pytest.mark.integration
def test_no_secret_file_is_tracked() -> None:
    """No tracked file has the name of a secret (password file, key file, mosquitto_passwd)."""
    names = [str(p.relative_to(REPO)) for p in tracked_files()]
    assert [n for n in names if SECRET_FILE_NAMES.search(n)] == []


@pytest.mark.integration
def test_generated_material_is_ignored() -> None:
    """pki/out/ and .run/ (where keys, passwords and logs go) are git-ignored."""
    for path in ("pki/out/ca.key", "pki/out/credentials/mqtt_master_password", ".run/logs/master.log"):
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert result.returncode == 0, f"{path} is not ignored"


def test_the_scan_detects_what_it_looks_for() -> None:
    """The patterns above match real key material (built here at run time, never committed)."""
    from pki.authority import new_key
    from pki.credentials import hash_password, password_file_text
    from pki.store import key_pem

    assert PEM_PRIVATE_KEY.search(key_pem(new_key()).decode())
    assert GEMINI_KEY.search("x AIza" + "A" * 35 + " y")
    assert MOSQUITTO_HASH.search(password_file_text({"master": "p" * 20}))
    assert hash_password("p" * 20).startswith("$7$")
