"""Conversations: a user's questions grouped as the page shows them; listed, loaded, deleted, expired.

The store functions here run on the store's thread (`await db.run(fn, ...)`); `Conversations` adds what
a deletion needs on the event loop: tasks still queued or running are cancelled through the dispatcher
(their owner gets the error `cancelled`), and the journal's pending writes go first. Every lookup is by
(user, conversation): another user's conversation is not found, exactly like a missing one.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

from master.dispatcher import Dispatcher, Task
from master.response_cache import ResponseCache
from master.store import Database
from master.task_journal import TASK_COLUMNS, TaskJournal, _task_dict

logger = logging.getLogger(__name__)
ID_RE = re.compile(r"^[0-9a-f]{32}$")
TITLE_CHARS = 60
# The newest messages a conversation loads with (older ones stay in the store until it is deleted).
MESSAGE_LIMIT = 500
PAGE_LIMIT_MAX = 100


def new_conversation_id() -> str:
    return uuid.uuid4().hex


def is_conversation_id(value: Any) -> bool:
    """The shape of an id this server hands out (32 lower-case hex characters)."""
    return isinstance(value, str) and ID_RE.match(value) is not None


def title_of(prompt: str) -> str:
    """The first question, on one line, shortened to TITLE_CHARS."""
    words = " ".join(prompt.split())
    return words if len(words) <= TITLE_CHARS else words[:TITLE_CHARS - 1].rstrip() + "…"


# -- the store (its thread) -----------------------------------------------------------------------
def conversation_owner(conn: sqlite3.Connection, conversation_id: str) -> int | None:
    row = conn.execute("SELECT user_id FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
    return None if row is None else int(row[0])


def _conversation_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    conversation_id, title, created_at, updated_at = row
    return {"conversation_id": conversation_id, "title": title, "created_at": created_at, "updated_at": updated_at}


def list_conversations(conn: sqlite3.Connection, user_id: int, before: float | None,
                       limit: int) -> list[dict[str, Any]]:
    """The user's conversations, most recently used first, used before `before` (for paging)."""
    rows = conn.execute("SELECT id, title, created_at, updated_at FROM conversations WHERE user_id = ?"
                        " AND updated_at < ? ORDER BY updated_at DESC, id LIMIT ?",
                        (user_id, float("inf") if before is None else before, limit)).fetchall()
    return [_conversation_dict(r) for r in rows]


def conversation_messages(conn: sqlite3.Connection, user_id: int, conversation_id: str,
                          limit: int = MESSAGE_LIMIT) -> dict[str, Any] | None:
    """One of the user's conversations and its newest `limit` tasks (question, state, answer or error), oldest first."""
    row = conn.execute("SELECT id, title, created_at, updated_at FROM conversations WHERE id = ? AND user_id = ?",
                       (conversation_id, user_id)).fetchone()
    if row is None:
        return None
    tasks = conn.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE conversation_id = ? AND user_id = ?"
                         " ORDER BY created_at DESC LIMIT ?", (conversation_id, user_id, limit)).fetchall()
    return {"conversation": _conversation_dict(row), "messages": [_task_dict(t) for t in reversed(tasks)]}


def delete_conversation(conn: sqlite3.Connection, user_id: int, conversation_id: str) -> int | None:
    """Delete one of the user's conversations and its tasks; how many tasks, or None if not found."""
    with conn:
        tasks = conn.execute("DELETE FROM tasks WHERE conversation_id = ? AND user_id = ?",
                             (conversation_id, user_id)).rowcount
        found = conn.execute("DELETE FROM conversations WHERE id = ? AND user_id = ?",
                             (conversation_id, user_id)).rowcount
    return tasks if found else None


def delete_user_data(conn: sqlite3.Connection, user_id: int) -> tuple[int, int]:
    """Delete every conversation and task of the user (the account, sessions and tokens stay)."""
    with conn:
        tasks = conn.execute("DELETE FROM tasks WHERE user_id = ?", (user_id,)).rowcount
        conversations = conn.execute("DELETE FROM conversations WHERE user_id = ?", (user_id,)).rowcount
    return conversations, tasks


def expire_before(conn: sqlite3.Connection, cutoff: float) -> tuple[list[str], int]:
    """Delete conversations last used before `cutoff` (none with a task still open) and their tasks, and finished
    tasks of no conversation (REST API, older versions) that finished before it; returns (conversation ids, tasks)."""
    old = ("SELECT id FROM conversations c WHERE updated_at < ? AND NOT EXISTS (SELECT 1 FROM tasks t"
           " WHERE t.conversation_id = c.id AND t.state IN ('queued', 'assigned'))")
    with conn:
        expired = [row[0] for row in conn.execute(old, (cutoff,))]
        tasks = conn.executemany("DELETE FROM tasks WHERE conversation_id = ?", [(c,) for c in expired]).rowcount
        conn.executemany("DELETE FROM conversations WHERE id = ?", [(c,) for c in expired])
        tasks += conn.execute("DELETE FROM tasks WHERE conversation_id IS NULL AND finished_at < ?"
                              " AND state IN ('answered', 'failed')", (cutoff,)).rowcount
    return expired, tasks


# -- on the event loop ------------------------------------------------------------------------------
class Conversations:
    """Ownership checks and deletions, for the chat's events and the REST API alike."""

    def __init__(self, db: Database, dispatcher: Dispatcher, journal: TaskJournal,
                 cache: ResponseCache | None = None) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.journal = journal
        self.cache = cache  # the user's cached answers go with their deleted data

    async def is_owner(self, user_id: int, conversation_id: str) -> bool:
        """Whether the conversation exists and is the user's (one started a moment ago counts)."""
        pending = self.journal.pending_conversation_owner(conversation_id)
        if pending is not None:
            return pending == user_id
        return await self.db.run(conversation_owner, conversation_id) == user_id

    async def listed(self, user_id: int, before: float | None, limit: int) -> list[dict[str, Any]]:
        await self.journal.flush()  # a conversation started a moment ago is listed too
        return await self.db.run(list_conversations, user_id, before, limit)

    async def messages(self, user_id: int, conversation_id: str) -> dict[str, Any] | None:
        await self.journal.flush()  # with the latest state of each task
        return await self.db.run(conversation_messages, user_id, conversation_id)

    async def delete(self, user_id: int, conversation_id: str) -> bool:
        """Cancel its open tasks, delete it and its tasks; False if the user has no such conversation."""
        if not await self.is_owner(user_id, conversation_id):
            return False
        mine: Callable[[Task], bool] = lambda t: t.user_id == user_id and t.conversation_id == conversation_id
        cancelled = self._cancel(mine)
        await self.journal.flush()  # what the journal holds for it is written first, then deleted with it
        tasks = await self.db.run(delete_conversation, user_id, conversation_id)
        cancelled += self._cancel(mine)  # asked while it was being deleted (their rows are not written)
        if self.cache is not None:
            self.cache.forget_user(user_id)  # all of the user's: the cache does not know conversations
        logger.info("user %d deleted a conversation: %d tasks (%d were open)", user_id, tasks or 0, cancelled)
        return tasks is not None

    async def delete_all(self, user_id: int) -> tuple[int, int]:
        """Cancel the user's open tasks and delete all their conversations and tasks; returns the counts."""
        mine: Callable[[Task], bool] = lambda t: t.user_id == user_id
        cancelled = self._cancel(mine)
        await self.journal.flush()
        conversations, tasks = await self.db.run(delete_user_data, user_id)
        cancelled += self._cancel(mine)
        if cancelled:  # cancelled after the delete: their rows may have been written by the flush in between
            await self.journal.flush()
            more = await self.db.run(delete_user_data, user_id)
            conversations, tasks = conversations + more[0], tasks + more[1]
        if self.cache is not None:
            self.cache.forget_user(user_id)
        logger.info("user %d deleted all their data: %d conversations, %d tasks (%d were open)",
                    user_id, conversations, tasks, cancelled)
        return conversations, tasks

    def _cancel(self, which: Callable[[Task], bool]) -> int:
        """Cancel (the dispatcher's path: the owner gets `cancelled`) every open task `which` selects."""
        chosen = [t.task_id for t in list(self.dispatcher.tasks.values()) if not t.abandoned and which(t)]
        return sum(self.dispatcher.cancel_task(task_id) for task_id in chosen)


def retention_cutoff(days: int, now: float | None = None) -> float:
    return (time.time() if now is None else now) - days * 86_400.0
