"""The tasks' life in the store, written in batches: one transaction per flush, never on the event loop.

The dispatcher reports each change (accepted, assigned, back in the queue, finished, dropped); the
journal keeps the latest row image per task and writes them every `interval_s` in one transaction on
the store's thread. A worker's result is acknowledged only once its answer is written (the results
edge awaits `durable()`, which joins the next periodic write: one transaction per interval however
many results arrive in it), so an answer the worker will not send again is never lost; a question
accepted in the last `interval_s` before the master dies can be (docs/RELIABILITY.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

from master.dispatcher import CACHED_BY, Outcome, StoredTask, Task
from master.store import Database

logger = logging.getLogger(__name__)


class TaskJournal:
    def __init__(self, db: Database, interval_s: float = 0.05) -> None:
        self.db = db
        self.interval_s = interval_s
        self._rows: dict[str, dict[str, Any]] = {}  # task id -> the columns to write
        self._deleted: set[str] = set()
        # Conversations started since the last flush, written before their first task (same transaction).
        self._conversations: dict[str, dict[str, Any]] = {}
        self._wake = asyncio.Event()
        # One flush at a time: a flush that returns has written everything reported before it was called,
        # including what another flush had taken and was still writing.
        self._flushing = asyncio.Lock()
        # Resolved when the next flush to take its rows has written them: what `durable()` callers wait for.
        self._next_write: asyncio.Future[None] | None = None

    # -- what the dispatcher reports (on the event loop; cheap) -------------------------------------
    def accepted(self, task: Task) -> None:
        self._rows[task.task_id] = {
            "id": task.task_id, "user_id": task.user_id, "prompt": task.prompt, "model": task.model,
            "priority": task.priority, "state": "queued", "attempts": task.attempts, "token": task.token,
            "worker_id": None, "created_at": task.created, "conversation_id": task.conversation_id,
        }
        self._wake.set()

    def assigned(self, task: Task) -> None:
        self._update(task, state="assigned", attempts=task.attempts, worker_id=task.worker_id)

    def requeued(self, task: Task) -> None:
        self._update(task, state="queued", attempts=task.attempts, worker_id=None)

    def finished(self, task: Task, outcome: Outcome) -> None:
        self._update(task, state="answered" if outcome.answer is not None else "failed",
                     # stopped: the answer written until then is kept (state failed, error_code stopped)
                     answer=outcome.answer if outcome.answer is not None else outcome.partial,
                     answer_model=outcome.model, error_code=outcome.error_code,
                     error_message=outcome.error_message, worker_id=outcome.worker_id, finished_at=time.time())

    def dropped(self, task: Task) -> None:
        """Cancelled: forgotten by the store too."""
        self._rows.pop(task.task_id, None)
        self._deleted.add(task.task_id)
        self._wake.set()

    def conversation_started(self, conversation_id: str, user_id: int, title: str, created_at: float) -> None:
        """A new conversation, written with (and before) its first task in the next flush."""
        self._conversations[conversation_id] = {"id": conversation_id, "user_id": user_id, "title": title,
                                                "created_at": created_at, "updated_at": created_at}
        self._wake.set()

    def pending_conversation_owner(self, conversation_id: str) -> int | None:
        """The user of a conversation started but not yet flushed (else None: ask the store). Once a flush takes
        it, its write is already on the store's thread, ahead of any read asked for after this call."""
        row = self._conversations.get(conversation_id)
        return None if row is None else int(row["user_id"])

    def pending_questions(self) -> list[dict[str, Any]]:
        """The rows of tasks accepted since the last flush (id, user_id, prompt, conversation_id, created_at, ...)."""
        return [row for row in self._rows.values() if "prompt" in row]

    def _update(self, task: Task, **columns: Any) -> None:
        row = self._rows.setdefault(task.task_id, {"id": task.task_id})
        row.update(columns)
        self._wake.set()

    # -- writing ----------------------------------------------------------------------------------
    async def flush(self) -> int:
        """Write everything reported so far in one transaction; returns how many rows."""
        async with self._flushing:
            return await self._flush_now()

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Write everything reported so far, then write nothing more until the block ends (retention deletes
        and repairs with no task row written in between)."""
        async with self._flushing:
            await self._flush_now()
            yield

    async def durable(self) -> None:
        """Return once everything reported so far is written, by the next periodic flush (group commit)."""
        if self._next_write is None:
            self._next_write = asyncio.get_running_loop().create_future()
        waiter = self._next_write
        self._wake.set()
        await asyncio.shield(waiter)  # a cancelled waiter must not cancel the others'

    async def _flush_now(self) -> int:
        rows, deleted, conversations, waiter = self._rows, self._deleted, self._conversations, self._next_write
        self._rows, self._deleted, self._conversations, self._next_write = {}, set(), {}, None
        if not (rows or deleted or conversations):
            _release(waiter)
            return 0
        write = asyncio.ensure_future(self.db.run(write_rows, list(rows.values()), deleted, list(conversations.values())))
        try:
            await asyncio.shield(write)  # cancelled (shutdown) mid-write: the write goes on in the store's thread
        except asyncio.CancelledError:
            write.add_done_callback(lambda f: self._written(f, rows, deleted, conversations, waiter, log=True))
            raise
        except sqlite3.Error:
            self._written(write, rows, deleted, conversations, waiter)
            raise
        self._written(write, rows, deleted, conversations, waiter)
        return len(rows) + len(deleted)

    def _written(self, write: asyncio.Future[None], rows: dict[str, dict[str, Any]], deleted: set[str],
                 conversations: dict[str, dict[str, Any]], waiter: asyncio.Future[None] | None, log: bool = False) -> None:
        """Release the write's waiters, or, if it failed, keep its changes (under anything newer) for the next
        flush, whose waiters they become (`log`: nobody else reports the failure)."""
        if not write.cancelled() and write.exception() is None:
            _release(waiter)
            return
        if log and not write.cancelled():
            logger.error("could not write %d task changes to the store (%s); kept for the next write",
                         len(rows) + len(deleted), type(write.exception()).__name__)
        self._conversations = {**conversations, **self._conversations}
        for task_id, row in rows.items():
            self._rows[task_id] = {**row, **self._rows.get(task_id, {})}
        self._deleted |= deleted
        if waiter is not None:
            if self._next_write is None:
                self._next_write = waiter
            else:
                self._next_write.add_done_callback(lambda f, w=waiter: _settle_like(w, f))
        self._wake.set()

    async def run(self) -> None:
        """Flush every `interval_s` while there is something to write."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.interval_s)
            try:
                await self.flush()
            except sqlite3.Error:
                logger.exception("could not write tasks to the store; retrying in %.0f ms", self.interval_s * 1000)
                self._wake.set()


def _release(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _settle_like(waiter: asyncio.Future[None], done: asyncio.Future[None]) -> None:
    if not waiter.done():
        if done.cancelled() or done.exception() is not None:
            waiter.cancel()
        else:
            waiter.set_result(None)


def write_rows(conn: sqlite3.Connection, rows: list[dict[str, Any]], deleted: set[str],
               conversations: list[dict[str, Any]] | None = None) -> None:
    with conn:
        conn.executemany("INSERT OR IGNORE INTO conversations (id, user_id, title, created_at, updated_at)"
                         " VALUES (:id, :user_id, :title, :created_at, :updated_at)", conversations or [])
        for row in rows:
            if "prompt" in row:  # a new task (maybe already moved on): insert it whole
                full = {"attempts": 0, "worker_id": None, "answer": None, "answer_model": None, "error_code": None,
                        "error_message": None, "finished_at": None, "conversation_id": None, **row}
                # Not written if its conversation was deleted meanwhile (its tasks are cancelled by the deleter).
                written = conn.execute(
                    "INSERT OR REPLACE INTO tasks (id, user_id, prompt, model, priority, state, attempts, token,"
                    " worker_id, answer, answer_model, error_code, error_message, created_at, finished_at,"
                    " conversation_id)"
                    " SELECT :id, :user_id, :prompt, :model, :priority, :state, :attempts, :token, :worker_id,"
                    " :answer, :answer_model, :error_code, :error_message, :created_at, :finished_at, :conversation_id"
                    " WHERE :conversation_id IS NULL"
                    " OR EXISTS (SELECT 1 FROM conversations WHERE id = :conversation_id)", full).rowcount
                if written and full["conversation_id"] is not None:
                    conn.execute("UPDATE conversations SET updated_at = MAX(updated_at, :created_at)"
                                 " WHERE id = :conversation_id", full)
            else:
                columns = [c for c in row if c != "id"]
                conn.execute(f"UPDATE tasks SET {', '.join(f'{c} = :{c}' for c in columns)} WHERE id = :id", row)
        conn.executemany("DELETE FROM tasks WHERE id = ?", [(t,) for t in deleted])


def load_open_tasks(conn: sqlite3.Connection) -> list[StoredTask]:
    rows = conn.execute(
        "SELECT id, user_id, prompt, model, priority, state, attempts, token, worker_id, created_at, conversation_id"
        " FROM tasks WHERE state IN ('queued', 'assigned') ORDER BY created_at").fetchall()
    return [StoredTask(str(r[0]), int(r[1]), str(r[2]), str(r[3]), int(r[4]), str(r[5]), int(r[6]), str(r[7]),
                       r[8], float(r[9]), r[10]) for r in rows]


def finished_since(conn: sqlite3.Connection, user_id: int, since: float, limit: int = 200) -> list[dict[str, Any]]:
    """The user's answers and errors finished after `since` (Unix time), oldest first."""
    rows = conn.execute(
        "SELECT id, state, answer, answer_model, error_code, error_message, finished_at, prompt, conversation_id"
        " FROM tasks WHERE user_id = ? AND finished_at > ? ORDER BY finished_at LIMIT ?",
        (user_id, since, limit)).fetchall()
    out = []
    for task_id, state, answer, model, code, message, finished_at, prompt, conversation_id in rows:
        if state == "answered":
            out.append({"event": "ai-response", "task_id": task_id, "answer": answer, "model": model or "",
                        "finished_at": finished_at, "prompt": prompt, "conversation_id": conversation_id})
        else:
            out.append({"event": "ai-error", "task_id": task_id, "code": code, "message": message,
                        "finished_at": finished_at, "prompt": prompt, "conversation_id": conversation_id})
            if code == "stopped":
                out[-1]["partial"] = answer or ""
    return out


TASK_COLUMNS = ("id, state, prompt, model, answer, answer_model, error_code, error_message, created_at, finished_at,"
                " worker_id")


def _task_dict(row: tuple) -> dict[str, Any]:  # type: ignore[type-arg]
    task_id, state, prompt, model, answer, answer_model, code, message, created_at, finished_at, worker_id = row
    return {"task_id": task_id, "state": state, "prompt": prompt, "model": answer_model or model, "answer": answer,
            "error": {"code": code, "message": message} if code else None, "created_at": created_at,
            "finished_at": finished_at, "cached": worker_id == CACHED_BY}


def user_task(conn: sqlite3.Connection, user_id: int, task_id: str) -> dict[str, Any] | None:
    """One of the user's tasks (another user's id is not found, like a missing one)."""
    row = conn.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ? AND user_id = ?", (task_id, user_id)).fetchone()
    return _task_dict(row) if row else None


def user_tasks(conn: sqlite3.Connection, user_id: int, before: float | None, limit: int) -> list[dict[str, Any]]:
    """The user's tasks, newest first, created before `before` (for paging)."""
    rows = conn.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE user_id = ? AND created_at < ?"
                        " ORDER BY created_at DESC LIMIT ?", (user_id, before or float("inf"), limit)).fetchall()
    return [_task_dict(r) for r in rows]

