"""The master's SQLite store: one file (WAL), one schema module with its migrations, one thread."""

from master.store.database import Database, open_database, open_database_sync

__all__ = ["Database", "open_database", "open_database_sync"]
