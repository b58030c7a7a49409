"""master/store: migrations applied once each in order, a store from the future refused, file modes."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from common.secret_files import ConfigError
from master.store import open_database_sync
from master.store.migrations import MIGRATIONS_DIR, available, current_version, migrate


def test_fresh_store_gets_every_migration_and_a_rerun_applies_none(tmp_path: Path) -> None:
    """A new file is migrated to the newest version; migrating again changes nothing."""
    conn = sqlite3.connect(tmp_path / "s.db")
    applied = migrate(conn)
    assert applied == [m.version for m in available()] and applied[0] == 1
    assert migrate(conn) == [] and current_version(conn) == applied[-1]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"users", "sessions", "daily_usage", "schema_migrations"} <= tables


def test_store_newer_than_the_program_is_refused(tmp_path: Path) -> None:
    """A database migrated by a newer master is not touched by an older one."""
    conn = sqlite3.connect(tmp_path / "s.db")
    migrate(conn)
    conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 0)")
    conn.commit()
    with pytest.raises(RuntimeError, match="newer than this program"):
        migrate(conn)


def test_failed_migration_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    """A migration that fails half-way is rolled back whole and not recorded."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_ok.sql").write_text("CREATE TABLE a (x INTEGER);")
    (directory / "0002_broken.sql").write_text("CREATE TABLE b (x INTEGER);\nTHIS IS NOT SQL;")
    conn = sqlite3.connect(tmp_path / "s.db")
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, directory)
    assert current_version(conn) == 1
    assert "b" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_misnamed_migration_is_an_error(tmp_path: Path) -> None:
    """Only NNNN_name.sql files are migrations; anything else in the folder is a mistake to report."""
    (tmp_path / "1_x.sql").write_text("")
    with pytest.raises(ValueError, match="NNNN_name.sql"):
        available(tmp_path)


def test_shipped_migrations_are_well_formed() -> None:
    """The migrations in the package parse and number from 1 without gaps."""
    versions = [m.version for m in available(MIGRATIONS_DIR)]
    assert versions == list(range(1, len(versions) + 1))


def test_new_store_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    """The file is created 0600 in a 0700 directory, in WAL mode."""
    path = tmp_path / "data" / "master.db"
    db = open_database_sync(path)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert db.run_sync(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    finally:
        db.close()


def test_unusable_store_path_is_one_clear_error(tmp_path: Path) -> None:
    """A store path under a file (not a directory) names DATABASE_FILE and says what to fix."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"DATABASE_FILE=.*writable"):
        open_database_sync(blocker / "master.db")
