"""Server-side login sessions: a random token in a signed `__Host-` cookie, its SHA-256 in the store.

Logout, a password change and `disable` delete the stored session, which ends it at once: the
cookie alone is worth nothing. A session ends after `idle_s` without use or `max_s` after login.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass

from itsdangerous import BadSignature, Signer

from master.accounts import User

COOKIE_NAME = "__Host-aisys_session"
CSRF_COOKIE_NAME = "__Host-aisys_csrf"
# Secure, HttpOnly, SameSite=Strict, Path=/ and no Domain: what the __Host- prefix requires and more.
COOKIE_FLAGS = dict(secure=True, httponly=True, samesite="Strict", path="/")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionLifetime:
    idle_s: float
    max_s: float

    def alive(self, created_at: float, last_seen: float, now: float) -> bool:
        return now - last_seen <= self.idle_s and now - created_at <= self.max_s


@dataclass(frozen=True)
class ActiveSession:
    token_hash: str
    user: User
    created_at: float


class CookieSigner:
    """Signs session tokens with the session secret; a cookie with a bad signature is no cookie."""

    def __init__(self, secret: str) -> None:
        self._signer = Signer(secret, salt="aisys-session")
        self._csrf_key = hashlib.sha256(b"aisys-csrf:" + secret.encode()).digest()

    def sign(self, token: str) -> str:
        return self._signer.sign(token).decode()

    def token(self, cookie_value: str | None) -> str | None:
        if not cookie_value or len(cookie_value) > 256:
            return None
        try:
            return self._signer.unsign(cookie_value).decode()
        except (BadSignature, UnicodeDecodeError):
            return None

    def csrf_for(self, session_hash: str) -> str:
        """The CSRF token of a logged-in session (for logout and other state changes)."""
        return hmac.new(self._csrf_key, session_hash.encode(), hashlib.sha256).hexdigest()


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of a token the client sent with the one expected (both present)."""
    return bool(given) and bool(expected) and hmac.compare_digest(str(given).encode(), str(expected).encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)


def create_session(conn: sqlite3.Connection, user_id: int, token: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    with conn:
        conn.execute("INSERT INTO sessions (token_hash, user_id, created_at, last_seen) VALUES (?, ?, ?, ?)",
                     (token_hash(token), user_id, now, now))


def find_session(conn: sqlite3.Connection, session_hash: str, lifetime: SessionLifetime,
                 now: float | None = None) -> ActiveSession | None:
    """The live session with this hash, or None (unknown, expired, or its user disabled); expired ones are deleted."""
    now = time.time() if now is None else now
    row = conn.execute(
        "SELECT s.created_at, s.last_seen, u.id, u.name, u.role, u.disabled FROM sessions s"
        " JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?", (session_hash,),
    ).fetchone()
    if row is None:
        return None
    created_at, last_seen, user = float(row[0]), float(row[1]), User(int(row[2]), str(row[3]), str(row[4]), bool(row[5]))
    if user.disabled or not lifetime.alive(created_at, last_seen, now):
        delete_session(conn, session_hash)
        return None
    return ActiveSession(session_hash, user, created_at)


def delete_session(conn: sqlite3.Connection, session_hash: str) -> None:
    with conn:
        conn.execute("DELETE FROM sessions WHERE token_hash = ?", (session_hash,))


def live_sessions(conn: sqlite3.Connection, hashes: Iterable[str], lifetime: SessionLifetime,
                  touched: dict[str, float], now: float | None = None) -> set[str]:
    """Record use (`touched`: hash -> last use) and return which of `hashes` are still live sessions."""
    now = time.time() if now is None else now
    with conn:
        conn.executemany("UPDATE sessions SET last_seen = MAX(last_seen, ?) WHERE token_hash = ?",
                         [(seen, h) for h, seen in touched.items()])
    live = set()
    wanted = list(set(hashes))
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        rows = conn.execute(
            "SELECT s.token_hash, s.created_at, s.last_seen FROM sessions s JOIN users u ON u.id = s.user_id"
            f" WHERE u.disabled = 0 AND s.token_hash IN ({','.join('?' * len(chunk))})", chunk,
        ).fetchall()
        live.update(str(r[0]) for r in rows if lifetime.alive(float(r[1]), float(r[2]), now))
    return live


def delete_expired(conn: sqlite3.Connection, lifetime: SessionLifetime, now: float | None = None) -> int:
    now = time.time() if now is None else now
    with conn:
        cur = conn.execute("DELETE FROM sessions WHERE last_seen < ? OR created_at < ?",
                           (now - lifetime.idle_s, now - lifetime.max_s))
    return cur.rowcount
