"""Retention: every interval, delete conversations (and their tasks) not used for CONVERSATION_RETENTION_DAYS."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from master.conversations import expire_before, retention_cutoff, title_of
from master.store import Database
from master.task_journal import TaskJournal

logger = logging.getLogger(__name__)


async def expire_once(db: Database, journal: TaskJournal, days: int) -> tuple[int, int]:
    """Delete what is older than `days` now; returns (conversations, tasks). Logs one INFO line when it deleted any.

    A question asked in an old conversation before this starts is in the store first and keeps it. One asked while
    the store deletes it (its row still in the journal, answered or not) gets the conversation back, without the
    older messages, before its row is written: it is stored like any question acknowledged.
    """
    async with journal.paused():
        expired, tasks = await db.run(expire_before, retention_cutoff(days))
        revived = revive_asked_in(journal, set(expired))
    if expired or tasks:
        logger.info("retention: deleted %d conversations and %d tasks not used for %d days", len(expired), tasks, days)
    else:
        logger.debug("retention: nothing older than %d days", days)
    if revived:
        logger.info("retention: %d of them were asked in while being deleted: kept, with the new questions only", revived)
    return len(expired), tasks


def revive_asked_in(journal: TaskJournal, expired: set[str]) -> int:
    """Start again (journal: written before their tasks) each expired conversation a question not yet written
    belongs to, titled by the first of them."""
    revived: set[str] = set()
    for row in sorted(journal.pending_questions(), key=lambda r: r["created_at"]):
        conversation_id = row.get("conversation_id")
        if conversation_id in expired and conversation_id not in revived:
            journal.conversation_started(conversation_id, row["user_id"], title_of(row["prompt"]), row["created_at"])
            revived.add(conversation_id)
    return len(revived)


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
