"""master/retention.py: expiring old conversations never loses a question asked in one while it is deleted."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from master.accounts import add_user
from master.conversations import conversation_messages, expire_before, new_conversation_id
from master.dispatcher import Outcome, Task, owner_of
from master.retention import expire_once
from master.store import Database, open_database
from master.task_journal import TaskJournal, load_open_tasks, write_rows

THREE_DAYS_AGO = time.time() - 3 * 86_400


class SignalsExpire:
    """The store, telling when retention's delete has been handed to the store's thread."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.expire_queued = asyncio.Event()

    async def run(self, fn: Any, *args: Any) -> Any:
        if fn is expire_before:
            self.expire_queued.set()  # run_in_executor below queues it before anything else runs
        return await self.db.run(fn, *args)


async def old_conversation(db: Database, user_id: int) -> str:
    """A conversation with one answered question, last used three days ago."""
    conversation_id = new_conversation_id()
    await db.run(write_rows, [{"id": "old-task", "user_id": user_id, "prompt": "old question", "model": "echo",
                               "priority": 1, "state": "answered", "token": "t", "answer": "old answer",
                               "created_at": THREE_DAYS_AGO, "finished_at": THREE_DAYS_AGO,
                               "conversation_id": conversation_id}], set(),
                 [{"id": conversation_id, "user_id": user_id, "title": "old question", "created_at": THREE_DAYS_AGO,
                   "updated_at": THREE_DAYS_AGO}])
    return conversation_id


async def test_questions_asked_while_their_conversation_expires_are_stored(tmp_path: Path) -> None:
    """Two questions land between retention's start and its delete, one answered at once: both are stored, in it."""
    db = await open_database(tmp_path / "m.db")
    journal = TaskJournal(db, interval_s=0.01)
    writer = asyncio.create_task(journal.run())
    release = threading.Event()
    try:
        user = await db.run(add_user, "dora", "hash-not-used-here", "user")
        conversation_id = await old_conversation(db, user.id)
        store_busy = asyncio.ensure_future(db.run(lambda conn: release.wait(10)))  # holds the store's thread
        watched = SignalsExpire(db)
        retention = asyncio.create_task(expire_once(watched, journal, 2))  # type: ignore[arg-type]
        await asyncio.wait_for(watched.expire_queued.wait(), 10)

        running, answered = (Task(task_id, owner_of(user.id), prompt, "echo", 1, time.time(), user_id=user.id,
                                  conversation_id=conversation_id)
                             for task_id, prompt in (("new-task", "a new question"), ("quick-task", "a quick one")))
        journal.accepted(running)  # what the dispatcher reports as it takes each
        journal.accepted(answered)
        journal.finished(answered, Outcome("quick-task", answer="at once", model="echo", worker_id="w1"))
        acknowledged = asyncio.ensure_future(journal.durable())  # the askers and the worker wait for this
        release.set()
        assert await asyncio.wait_for(retention, 10) == (1, 1)  # the old conversation and its old task went
        await asyncio.wait_for(acknowledged, 10)
        await store_busy

        [stored] = await db.run(load_open_tasks)
        assert (stored.task_id, stored.conversation_id) == ("new-task", conversation_id)
        kept = await db.run(conversation_messages, user.id, conversation_id)
        assert kept is not None, "the conversation the stored questions belong to is gone"
        assert kept["conversation"]["title"] == "a new question"
        assert [(m["task_id"], m["state"]) for m in kept["messages"]] == [("new-task", "queued"), ("quick-task", "answered")]
    finally:
        release.set()  # a failed assertion must not leave the store's thread held
        writer.cancel()
        db.close()


async def test_a_question_asked_before_retention_starts_keeps_its_old_conversation(tmp_path: Path) -> None:
    """Written first (retention writes what is reported before it deletes), the question makes the conversation recent."""
    db = await open_database(tmp_path / "m.db")
    journal = TaskJournal(db)
    try:
        user = await db.run(add_user, "eve", "hash-not-used-here", "user")
        conversation_id = await old_conversation(db, user.id)
        question = Task("new-task", owner_of(user.id), "a new question", "echo", 1, time.time(), user_id=user.id,
                        conversation_id=conversation_id)
        journal.accepted(question)
        assert await expire_once(db, journal, 2) == (0, 0)
        kept = await db.run(conversation_messages, user.id, conversation_id)
        assert kept is not None and [m["task_id"] for m in kept["messages"]] == ["old-task", "new-task"]
    finally:
        db.close()
