"""Schema migrations: plain SQL files applied in order, recorded in a version table.

`migrations/NNNN_name.sql`, applied once each, in one transaction each, in number order. Plain SQL
rather than Alembic: the schema is small, SQLite-only, and this keeps SQLAlchemy out of the
internet-facing image. A file once released is never edited; a change is a new file.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file, in version order; a misnamed or duplicate file is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME_RE.match(path.name)
        if not match:
            raise ValueError(f"migration {path.name} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations have version {version}")
        found[version] = Migration(version, match.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply every migration newer than the database; returns the versions applied."""
    applied = []
    version = current_version(conn)
    known = available(directory)
    if known and version > known[-1].version:
        raise RuntimeError(
            f"the database is at schema version {version}, newer than this program knows ({known[-1].version}): "
            "run the newer master, or restore a backup"
        )
    for migration in known:
        if migration.version <= version:
            continue
        with conn:  # one transaction: the schema change and its record together
            conn.executescript(f"BEGIN;\n{migration.sql}\n;")
            conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                         (migration.version, migration.name, time.time()))
        logger.info("database migrated to version %d (%s)", migration.version, migration.name)
        applied.append(migration.version)
    return applied
