"""MQTT credentials: random passwords and a Mosquitto `$7$` (PBKDF2-SHA512) password file.

`python -m pki.credentials [--out DIR] [--rotate USER]` writes, into a 0700 directory:
`mqtt_master_password`, `mqtt_worker_password` (0600, the plain passwords for the clients),
`mosquitto_passwd` (0600, hashes only, for the broker), `session_secret` and
`initial_admin_password` (0600, for the master) and `grafana_admin_password` (0600, for Grafana in
the stack). It never prints a secret.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import secrets
import sys
from pathlib import Path

from pki.store import KEY_MODE, PkiError, ensure_private_dir, write_atomic

MQTT_USERS = ("master", "worker")
SESSION_SECRET = "session_secret"  # signs the master's session cookies
INITIAL_ADMIN_PASSWORD = "initial_admin_password"  # the first admin of a new store (read once by the master)
GRAFANA_ADMIN_PASSWORD = "grafana_admin_password"  # Grafana's admin in the stack (GF_SECURITY_ADMIN_PASSWORD__FILE)
PBKDF2_ITERATIONS = 10_000
SALT_BYTES = 12
HASH_BYTES = 64
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "credentials"


def password_file_name(user: str) -> str:
    return f"mqtt_{user}_password"


def new_password() -> str:
    """A 256-bit random password, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """Mosquitto 2.0's `$7$<iterations>$<b64 salt>$<b64 PBKDF2-SHA512 hash>`."""
    if iterations < 1000:
        raise ValueError("use at least 1,000 PBKDF2 iterations")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Check `password` against a `$7$` hash (what mosquitto does at CONNECT)."""
    try:
        _, kind, iterations, salt, digest = encoded.split("$")
        if kind != "7":
            return False
        expected = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt), int(iterations), HASH_BYTES
        )
    except ValueError:
        return False
    return hmac.compare_digest(expected, base64.b64decode(digest))


def password_file_text(passwords: dict[str, str]) -> str:
    return "".join(f"{user}:{hash_password(pw)}\n" for user, pw in passwords.items())


def read_password(path: Path) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise PkiError(f"{path} is not readable ({exc.strerror}): fix it or re-run with --rotate") from None
    if not value:
        raise PkiError(f"{path} is empty: re-run with --rotate {path.name.split('_')[1]}")
    return value


def ensure_credentials(out: Path, rotate: tuple[str, ...] = ()) -> list[str]:
    """Create missing passwords (and those in `rotate`), then rewrite the hash file if anything changed.

    Returns the users whose password was created or replaced.
    """
    ensure_private_dir(out)
    passwords: dict[str, str] = {}
    changed: list[str] = []
    for user in MQTT_USERS:
        path = out / password_file_name(user)
        if path.exists() and user not in rotate:
            passwords[user] = read_password(path)
            continue
        passwords[user] = new_password()
        write_atomic(path, passwords[user].encode() + b"\n", KEY_MODE)
        changed.append(user)
    hashes_path = out / "mosquitto_passwd"
    if changed or not _hash_file_matches(hashes_path, passwords):
        write_atomic(hashes_path, password_file_text(passwords).encode(), KEY_MODE)
    session = out / SESSION_SECRET
    if not session.exists() or SESSION_SECRET in rotate:
        write_atomic(session, new_password().encode() + b"\n", KEY_MODE)
        changed.append(SESSION_SECRET)
    admin = out / INITIAL_ADMIN_PASSWORD
    if not admin.exists():
        write_atomic(admin, new_password().encode() + b"\n", KEY_MODE)
        changed.append(INITIAL_ADMIN_PASSWORD)
    grafana = out / GRAFANA_ADMIN_PASSWORD
    if not grafana.exists():  # Grafana reads it at its first start only (like the first admin)
        write_atomic(grafana, new_password().encode() + b"\n", KEY_MODE)
        changed.append(GRAFANA_ADMIN_PASSWORD)
    return changed


def _hash_file_matches(path: Path, passwords: dict[str, str]) -> bool:
    try:
        lines = dict(line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    except OSError:
        return False
    return set(lines) == set(passwords) and all(
        verify_password(pw, lines[user]) for user, pw in passwords.items()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gen-credentials.sh",
        description="Make random MQTT passwords for 'master' and 'worker' and the mosquitto password file.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default pki/out/credentials)")
    parser.add_argument(
        "--rotate", action="append", default=[], choices=(*MQTT_USERS, SESSION_SECRET),
        help="replace this user's password (or the session secret); repeatable"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        changed = ensure_credentials(args.out, tuple(args.rotate))
    except (PkiError, OSError) as exc:
        print(f"gen-credentials: error: {exc}", file=sys.stderr)
        return 1
    for user in MQTT_USERS:
        state = "created" if user in changed else "kept"
        print(f"{user:<7} {state:<7} password in {args.out / password_file_name(user)} (0600)")
    print(f"mosquitto password file (PBKDF2-SHA512 hashes only): {args.out / 'mosquitto_passwd'}")
    state = "created" if SESSION_SECRET in changed else "kept"
    print(f"session secret {state} in {args.out / SESSION_SECRET} (0600)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
