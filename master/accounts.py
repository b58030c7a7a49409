"""User accounts in the store: names, argon2id password hashes, roles and the disabled flag.

The functions take a `sqlite3.Connection` and run on the store's thread (the master calls them
through `Database.run`, the operator command directly). Hashing is done by the caller: it is CPU
work that must run off the event loop, on a small executor of its own.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
ROLES = ("user", "admin")


class AccountError(ValueError):
    """An operator or user error about an account; the message says what to do."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    disabled: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Passwords:
    """argon2id hashing with this deployment's cost; `verify_or_waste` does the same work for a missing user."""

    def __init__(self, time_cost: int = 1, memory_kib: int = 47_104, parallelism: int = 1) -> None:
        # OWASP's first argon2id profile (46 MiB, t=1, p=1): about 70 ms on this project's 2-core machines.
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._dummy = self._hasher.hash("no such user: the same work as a wrong password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify_or_waste(self, stored_hash: str | None, password: str) -> bool:
        """True when `password` matches; with no stored hash, verify against a dummy so timing is the same."""
        try:
            return self._hasher.verify(stored_hash or self._dummy, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise AccountError(f"user name {name[:80]!r} is not valid: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password has {len(password)} characters; use at least {MIN_PASSWORD_CHARS}")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"the password is longer than {MAX_PASSWORD_CHARS} characters")
    return password


def _user(row: sqlite3.Row | tuple[object, ...]) -> User:
    return User(int(row[0]), str(row[1]), str(row[2]), bool(row[3]))


def add_user(conn: sqlite3.Connection, name: str, password_hash: str, role: str = "user") -> User:
    if role not in ROLES:
        raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}")
    now = time.time()
    try:
        with conn:
            cur = conn.execute(
                "INSERT INTO users (name, password_hash, role, created_at, password_changed_at) VALUES (?, ?, ?, ?, ?)",
                (check_name(name), password_hash, role, now, now),
            )
    except sqlite3.IntegrityError:
        raise AccountError(f"user {name!r} exists already: use 'passwd' to change the password") from None
    return User(int(cur.lastrowid or 0), name, role, False)


def find_user(conn: sqlite3.Connection, name: str) -> User | None:
    row = conn.execute("SELECT id, name, role, disabled FROM users WHERE name = ?", (name,)).fetchone()
    return _user(row) if row else None


def login_record(conn: sqlite3.Connection, name: str) -> tuple[User, str] | None:
    """The user and their password hash, for a login attempt."""
    row = conn.execute("SELECT id, name, role, disabled, password_hash FROM users WHERE name = ?", (name,)).fetchone()
    return (_user(row), str(row[4])) if row else None


def set_password(conn: sqlite3.Connection, name: str, password_hash: str) -> User:
    """Change a password and end every session of that user."""
    user = _require(conn, name)
    with conn:
        conn.execute("UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
                     (password_hash, time.time(), user.id))
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))
    return user


def set_role(conn: sqlite3.Connection, name: str, role: str) -> User:
    if role not in ROLES:
        raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}")
    user = _require(conn, name)
    with conn:
        conn.execute("UPDATE users SET role = ? WHERE id = ?", (role, user.id))
    return User(user.id, user.name, role, user.disabled)


def set_disabled(conn: sqlite3.Connection, name: str, disabled: bool) -> User:
    """Disable (ending every session at once) or enable a user."""
    user = _require(conn, name)
    with conn:
        conn.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user.id))
        if disabled:
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))
    return User(user.id, user.name, user.role, disabled)


def list_users(conn: sqlite3.Connection) -> list[User]:
    rows = conn.execute("SELECT id, name, role, disabled FROM users ORDER BY name COLLATE NOCASE").fetchall()
    return [_user(r) for r in rows]


def count_users(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])


def _require(conn: sqlite3.Connection, name: str) -> User:
    user = find_user(conn, name)
    if user is None:
        raise AccountError(f"no user {name!r}: see 'list'")
    return user
