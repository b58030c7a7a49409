"""One SQLite connection on one thread: every call runs there, never on the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from common.secret_files import ConfigError
from master.store.migrations import migrate

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating it 0600 in a 0700 directory if new) and migrate the store at `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(path, check_same_thread=False, timeout=5.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL keeps it consistent
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"DATABASE_FILE={path} cannot be opened as the store ({exc}): point it at a writable file "
            "on a volume (its directory must be writable too)"
        ) from None
    return conn


class Database:
    """The store's connection, used only from its own thread; `await run(fn, ...)` calls `fn(conn, ...)` there.

    Made by `open_database` (async, for the master) or `open_database_sync` (the operator command).
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, executor: concurrent.futures.ThreadPoolExecutor) -> None:
        self.path = path
        self._conn = conn
        self._executor = executor

    async def run(self, fn: Callable[Concatenate[sqlite3.Connection, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._conn, *args, **kwargs))

    def run_sync(self, fn: Callable[Concatenate[sqlite3.Connection, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """For code that is not on an event loop (start-up, the operator command)."""
        return self._executor.submit(fn, self._conn, *args, **kwargs).result()

    def close(self) -> None:
        self._executor.submit(self._conn.close).result()
        self._executor.shutdown(wait=True)


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")


async def open_database(path: Path) -> Database:
    """Open and migrate the store on its own thread, without blocking the event loop."""
    executor = _executor()
    try:
        conn = await asyncio.get_running_loop().run_in_executor(executor, connect, path)
    except BaseException:
        executor.shutdown(wait=False)
        raise
    return Database(path, conn, executor)


def open_database_sync(path: Path) -> Database:
    executor = _executor()
    try:
        conn = executor.submit(connect, path).result()
    except BaseException:
        executor.shutdown(wait=False)
        raise
    return Database(path, conn, executor)
