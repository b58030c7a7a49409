"""Users in a local store: the demo user of the local run, and the users tests and the benchmark log in as."""

from __future__ import annotations

import secrets
from pathlib import Path

from master.accounts import Passwords, add_user, find_user
from master.store import open_database_sync

DEMO_USER = "demo"
# Cheap hashing for throwaway test users only (the master verifies any argon2id cost). The benchmark's
# users get the deployment's cost instead: an 8 MiB hash buffer, unlike the production 46 MiB one, stays
# in a malloc arena of the master after its first verification (docs/BENCHMARKS.md, issue 12's memory).
FAST_HASH = Passwords(time_cost=1, memory_kib=8192)


def ensure_demo_user(database: Path) -> str | None:
    """Create the user `demo` with a random password if missing; returns the password then, else None."""
    db = open_database_sync(database)
    try:
        if db.run_sync(find_user, DEMO_USER) is not None:
            return None
        password = secrets.token_urlsafe(12)
        db.run_sync(add_user, DEMO_USER, Passwords().hash(password), "user")
        return password
    finally:
        db.close()


def create_users(database: Path, names: list[str], role: str = "user",
                 passwords: Passwords = FAST_HASH) -> dict[str, str]:
    """Users with random passwords (returned), hashed by `passwords`, for tests and the benchmark."""
    db = open_database_sync(database)
    try:
        made = {}
        for name in names:
            password = secrets.token_urlsafe(12)
            db.run_sync(add_user, name, passwords.hash(password), role)
            made[name] = password
        return made
    finally:
        db.close()
