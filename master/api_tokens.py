"""Personal API tokens (`Authorization: Bearer aisys_...`): made and revoked by their user, stored hashed."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass

from master.accounts import User

PREFIX = "aisys_"
MAX_TOKENS_PER_USER = 20


@dataclass(frozen=True)
class TokenInfo:
    id: int
    label: str
    created_at: float
    last_used_at: float | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: sqlite3.Connection, user_id: int, label: str) -> tuple[TokenInfo, str]:
    """A new token for the user: its record and the token itself (shown once, never stored)."""
    if int(conn.execute("SELECT COUNT(*) FROM api_tokens WHERE user_id = ? AND revoked_at IS NULL",
                        (user_id,)).fetchone()[0]) >= MAX_TOKENS_PER_USER:
        raise ValueError(f"at most {MAX_TOKENS_PER_USER} live tokens per user: revoke one first")
    token = PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    with conn:
        cur = conn.execute("INSERT INTO api_tokens (user_id, label, token_hash, created_at) VALUES (?, ?, ?, ?)",
                           (user_id, label, _hash(token), now))
    return TokenInfo(int(cur.lastrowid or 0), label, now, None), token


def list_tokens(conn: sqlite3.Connection, user_id: int) -> list[TokenInfo]:
    rows = conn.execute("SELECT id, label, created_at, last_used_at FROM api_tokens"
                        " WHERE user_id = ? AND revoked_at IS NULL ORDER BY id", (user_id,)).fetchall()
    return [TokenInfo(int(r[0]), str(r[1]), float(r[2]), r[3]) for r in rows]


def revoke_token(conn: sqlite3.Connection, user_id: int, token_id: int) -> bool:
    """Revoke one of the user's own tokens; False when there is no such live token of theirs."""
    with conn:
        cur = conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
                           (time.time(), token_id, user_id))
    return cur.rowcount == 1


def user_for_token(conn: sqlite3.Connection, token: str) -> User | None:
    """The (enabled) user of a live token, or None."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    token_hash = _hash(token)
    row = conn.execute(
        "SELECT u.id, u.name, u.role, u.disabled FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.disabled = 0", (token_hash,)).fetchone()
    if row is None:
        return None
    with conn:
        conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE token_hash = ?", (time.time(), token_hash))
    return User(int(row[0]), str(row[1]), str(row[2]), bool(row[3]))
