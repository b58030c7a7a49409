"""Retention: every interval, delete conversations (and their tasks) not used for CONVERSATION_RETENTION_DAYS."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from master.conversations import expire_before, retention_cutoff
from master.store import Database
from master.task_journal import TaskJournal

logger = logging.getLogger(__name__)


async def expire_once(db: Database, journal: TaskJournal, days: int) -> tuple[int, int]:
    """Delete what is older than `days` now; returns (conversations, tasks). Logs one INFO line when it deleted any."""
    await journal.flush()  # a question asked a moment ago in an old conversation makes it recent
    conversations, tasks = await db.run(expire_before, retention_cutoff(days))
    if conversations or tasks:
        logger.info("retention: deleted %d conversations and %d tasks not used for %d days", conversations, tasks, days)
    else:
        logger.debug("retention: nothing older than %d days", days)
    return conversations, tasks


async def run_retention(db: Database, journal: TaskJournal, days: int, interval_s: float) -> None:
    """The periodic job (nothing to do when `days` is 0: keep forever)."""
    if days <= 0:
        return
    logger.info("retention: conversations not used for %d days are deleted (checked every %.0f s)", days, interval_s)
    while True:
        try:
            await expire_once(db, journal, days)
        except sqlite3.Error:
            logger.exception("retention: could not delete old conversations; trying again in %.0f s", interval_s)
        await asyncio.sleep(interval_s)
