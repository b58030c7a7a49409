"""master/task_journal.py: batched writes of the tasks' life, read back after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from master.accounts import add_user
from master.dispatcher import Dispatcher, Outcome, owner_of
from master.registry import WorkerRegistry
from master.store import open_database
from master.conversations import conversation_owner, delete_conversation, list_conversations, new_conversation_id
from master.task_journal import TaskJournal, finished_since, load_open_tasks, user_task
from common.messages import StatusMessage, TaskMessage


async def test_journal_round_trip_restores_queued_and_assigned_tasks(tmp_path: Path) -> None:
    """Accepted, assigned and finished tasks are written in one flush; a new dispatcher restores the open ones."""
    db = await open_database(tmp_path / "m.db")
    try:
        user = await db.run(add_user, "alice", "hash-not-used-here", "user")
        journal = TaskJournal(db)
        published: list[tuple[str, TaskMessage]] = []
        d = Dispatcher(WorkerRegistry(30), lambda w, m: published.append((w, m)) or True, lambda t, o: None,
                       journal=journal)
        d.on_status("w1", StatusMessage(state="idle", capacity=1, free_slots=1, models=("echo",)))
        running = d.submit(owner_of(user.id), "first", user_id=user.id)
        queued = d.submit(owner_of(user.id), "second", user_id=user.id)
        done = d.submit(owner_of(user.id), "third", user_id=user.id)
        d._queue.discard(done.task_id)  # settle "third" directly: a finished task is not restored
        d._finish(done, Outcome(done.task_id, answer="ok", model="echo", worker_id="w1"))
        assert await journal.flush() == 3
        stored = {s.task_id: s for s in await db.run(load_open_tasks)}
        assert stored[running.task_id].state == "assigned" and stored[running.task_id].worker_id == "w1"
        assert stored[running.task_id].token == running.token
        assert stored[queued.task_id].state == "queued" and done.task_id not in stored

        fresh = Dispatcher(WorkerRegistry(30), lambda w, m: True, lambda t, o: None)
        assert fresh.restore(stored.values()) == 2
        assert fresh.queued == 1 and fresh.tasks[running.task_id].worker_id == "w1"
        assert fresh.registry.workers["w1"].free_slots == 0  # not heard from since the restart: no new task yet

        [event] = await db.run(finished_since, user.id, 0.0)
        assert (event["event"], event["task_id"], event["answer"], event["prompt"]) == ("ai-response", done.task_id, "ok", "third")
    finally:
        db.close()


async def test_journal_batches_many_changes_into_one_flush(tmp_path: Path) -> None:
    """1,000 submits between two flushes cost one transaction; the run loop writes them within its interval."""
    db = await open_database(tmp_path / "m.db")
    try:
        user = await db.run(add_user, "bob", "hash-not-used-here", "user")
        journal = TaskJournal(db, interval_s=0.01)
        d = Dispatcher(WorkerRegistry(30), lambda w, m: True, lambda t, o: None, journal=journal)
        writer = asyncio.create_task(journal.run())
        for i in range(1000):
            d.submit(owner_of(user.id), f"q{i}", user_id=user.id)
        for _ in range(200):
            if len(await db.run(load_open_tasks)) == 1000:
                break
            await asyncio.sleep(0.01)
        writer.cancel()
        assert len(await db.run(load_open_tasks)) == 1000
    finally:
        db.close()


async def test_durable_waiters_share_one_periodic_write(tmp_path: Path) -> None:
    """100 results waiting to be durable are released together by one transaction, after their rows are written."""
    db = await open_database(tmp_path / "m.db")
    try:
        user = await db.run(add_user, "carol", "hash-not-used-here", "user")
        journal = TaskJournal(db, interval_s=0.02)
        writes = 0
        run = db.run

        async def counting_run(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal writes
            writes += 1
            return await run(fn, *args, **kwargs)

        db.run = counting_run  # type: ignore[method-assign]
        d = Dispatcher(WorkerRegistry(30), lambda w, m: True, lambda t, o: None, journal=journal)
        writer = asyncio.create_task(journal.run())
        try:
            for i in range(100):
                d.submit(owner_of(user.id), f"q{i}", user_id=user.id)
            await asyncio.wait_for(asyncio.gather(*(journal.durable() for _ in range(100))), 5)
            assert writes == 1
            assert len(await run(load_open_tasks)) == 100  # written before any waiter was released
            await asyncio.wait_for(journal.durable(), 5)  # nothing new: released by the next (empty) flush
            assert writes == 1
        finally:
            writer.cancel()
    finally:
        db.close()


async def test_journal_writes_a_conversation_with_its_first_task_and_skips_tasks_of_a_deleted_one(
        tmp_path: Path) -> None:
    """A new conversation is written before its task; later tasks move updated_at; a deleted one's late task is not."""
    db = await open_database(tmp_path / "m.db")
    try:
        user = await db.run(add_user, "carol", "hash-not-used-here", "user")
        journal = TaskJournal(db)
        d = Dispatcher(WorkerRegistry(30), lambda w, m: True, lambda t, o: None, journal=journal)
        conversation = new_conversation_id()
        first = d.submit(owner_of(user.id), "first", user_id=user.id, conversation_id=conversation)
        journal.conversation_started(conversation, user.id, "first", first.created)
        assert journal.pending_conversation_owner(conversation) == user.id
        await journal.flush()
        assert journal.pending_conversation_owner(conversation) is None
        assert await db.run(conversation_owner, conversation) == user.id
        second = d.submit(owner_of(user.id), "second", user_id=user.id, conversation_id=conversation)
        await journal.flush()
        [listed] = await db.run(list_conversations, user.id, None, 10)
        assert listed["updated_at"] == second.created and listed["title"] == "first"
        [restored] = {s.conversation_id for s in await db.run(load_open_tasks)}
        assert restored == conversation

        assert await db.run(delete_conversation, user.id, conversation) == 2
        late = d.submit(owner_of(user.id), "late", user_id=user.id, conversation_id=conversation)
        await journal.flush()  # its conversation is gone: the row is not written (no foreign-key failure either)
        assert await db.run(user_task, user.id, late.task_id) is None
        assert await db.run(load_open_tasks) == []
    finally:
        db.close()


async def test_flush_cancelled_mid_write_still_releases_its_waiters(tmp_path: Path) -> None:
    """Shutdown cancels the writer during a write: the write completes on the store's thread and its waiters go on."""
    db = await open_database(tmp_path / "m.db")
    try:
        user = await db.run(add_user, "dave", "hash-not-used-here", "user")
        journal = TaskJournal(db)
        d = Dispatcher(WorkerRegistry(30), lambda w, m: True, lambda t, o: None, journal=journal)
        for i in range(10):
            d.submit(owner_of(user.id), f"q{i}", user_id=user.id)
        waiting = asyncio.create_task(journal.durable())
        await asyncio.sleep(0)  # registered for the next write
        flushing = asyncio.create_task(journal.flush())
        for _ in range(3):
            await asyncio.sleep(0)  # into the write
        flushing.cancel()
        await asyncio.wait_for(waiting, 5)
        assert len(await db.run(load_open_tasks)) == 10
    finally:
        db.close()
