"""Retention: every interval, delete conversations (and their tasks) not used for CONVERSATION_RETENTION_DAYS."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable

from master.conversations import expire_before, retention_cutoff, title_of
from master.dispatcher import Task
from master.store import Database
from master.task_journal import TaskJournal

logger = logging.getLogger(__name__)


async def expire_once(db: Database, journal: TaskJournal, days: int,
                      open_tasks: Callable[[], Iterable[Task]]) -> tuple[int, int]:
    """Delete what is older than `days` now; returns (conversations, tasks). Logs one INFO line when it deleted any.

    A question asked in an old conversation before this starts is in the store first and keeps it. One asked while
    the store deletes it (`open_tasks` has it, its row is not written yet) gets the conversation back, without the
    older messages, before its row is written: it is stored like any question acknowledged.
    """
    async with journal.paused():
        expired, tasks = await db.run(expire_before, retention_cutoff(days))
        revived = revive_in_use(journal, set(expired), open_tasks())
    if expired or tasks:
        logger.info("retention: deleted %d conversations and %d tasks not used for %d days", len(expired), tasks, days)
    else:
        logger.debug("retention: nothing older than %d days", days)
    if revived:
        logger.info("retention: %d of them were asked in while being deleted: kept, with the new questions only", revived)
    return len(expired), tasks


def revive_in_use(journal: TaskJournal, expired: set[str], open_tasks: Iterable[Task]) -> int:
    """Start again (journal: written before their tasks) each expired conversation an open task belongs to."""
    revived: set[str] = set()
    for task in sorted(open_tasks, key=lambda t: t.created):
        if task.conversation_id in expired and task.conversation_id not in revived and not task.abandoned:
            journal.conversation_started(task.conversation_id, task.user_id, title_of(task.prompt), task.created)
            revived.add(task.conversation_id)
    return len(revived)


async def run_retention(db: Database, journal: TaskJournal, days: int, interval_s: float,
                        open_tasks: Callable[[], Iterable[Task]]) -> None:
    """The periodic job (nothing to do when `days` is 0: keep forever)."""
    if days <= 0:
        return
    logger.info("retention: conversations not used for %d days are deleted (checked every %.0f s)", days, interval_s)
    while True:
        try:
            await expire_once(db, journal, days, open_tasks)
        except sqlite3.Error:
            logger.exception("retention: could not delete old conversations; trying again in %.0f s", interval_s)
        await asyncio.sleep(interval_s)
