"""Taking a question in: the same checks and limits for the chat (Socket.IO) and the REST API."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from master import metrics
from master.accounts import User
from master.dispatcher import Dispatcher, QueueFull, Task, owner_of
from master.fair_queue import PRIORITY_LEVELS
from master.queries import QueryRejected, parse_query
from master.response_cache import ResponseCache
from master.settings import MasterSettings
from master.store import Database
from master.user_limits import LimitExceeded, UserLimiter, read_daily_count, utc_day

logger = logging.getLogger(__name__)


class Refused(Exception):
    """A question not taken; `code` is stable, `message` says why and what to do."""

    def __init__(self, code: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    def as_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after_s is not None:
            error["retry_after_s"] = round(self.retry_after_s, 1)
        return {"error": error}


class Intake:
    def __init__(self, dispatcher: Dispatcher, settings: MasterSettings, limiter: UserLimiter, db: Database,
                 cache: ResponseCache | None = None, durable: Callable[[], Awaitable[object]] | None = None) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        self.limiter = limiter
        self.db = db
        self.cache = cache
        # The store's next write (the task journal's group commit): a question is acknowledged only after it.
        self.durable = durable

    async def stored(self) -> None:
        """Return once every question taken so far is in the store: then acknowledge it. A question
        acknowledged is never lost to a master crash (it is queued again after the restart)."""
        if self.durable is not None:
            await self.durable()

    async def take(self, user: User, data: Any, conversation_id: str | None = None) -> Task:
        """Validate, apply the user's limits, queue; raises Refused (counted in the metrics)."""
        if self.limiter.needs_daily_count(user.id):
            day = utc_day()
            self.limiter.load_daily_count(user.id, day, await self.db.run(read_daily_count, user.id, day))
        return self.take_now(user, data, conversation_id)

    def take_now(self, user: User, data: Any, conversation_id: str | None = None) -> Task:
        """`take` once the user's daily count is loaded (no await: nothing else runs in between)."""
        owner = owner_of(user.id)
        try:
            query = parse_query(data, self.settings.max_prompt_chars, self.settings.default_model)
            self._check_model(query.model)
            _check_priority(user, query.priority)
            self.limiter.check(user.id, user.is_admin, self.dispatcher.open_tasks(owner))
            hit = self.cache.get(user.id, query.model, query.text) if self.cache is not None else None
            if hit is not None:  # answered at once, no worker (still counted against the user's limits)
                task = self.dispatcher.answer_from_cache(owner, query.text, query.model, PRIORITY_LEVELS[query.priority],
                                                         user.id, hit.answer, hit.model, conversation_id=conversation_id)
            else:
                task = self.dispatcher.submit(owner, query.text, query.model, PRIORITY_LEVELS[query.priority],
                                              user_id=user.id, conversation_id=conversation_id)
        except QueryRejected as exc:
            metrics.refused(exc.code)
            raise Refused(exc.code, exc.message) from None
        except LimitExceeded as exc:
            metrics.refused(exc.code)
            raise Refused(exc.code, exc.message, exc.retry_after_s) from None
        except QueueFull:
            metrics.refused("busy")
            raise Refused("busy", "The service is at capacity. Try again in a minute.") from None
        logger.debug("%s, %d chars", "answered from the response cache" if hit is not None else "queued",
                     len(query.text), extra={"task_id": task.task_id})
        if self.settings.log_content:
            logger.debug("content prompt=%r", query.text, extra={"task_id": task.task_id})
        return task

    def _check_model(self, model: str) -> None:
        """A named model must be served by a live worker now: else a clear error at once, not a task that waits forever."""
        if not model:
            return
        served = self.dispatcher.registry.live_models()
        if model not in served:
            offered = ", ".join(sorted(served)) or "none (no worker is connected)"
            raise QueryRejected("unknown_model", f"No worker serves the model {model[:128]!r}. Models served now: {offered}.")


def _check_priority(user: User, priority: str) -> None:
    """`high` is for admins only: refused (not quietly downgraded), so the asker knows what they got."""
    if priority == "high" and not user.is_admin:
        raise QueryRejected("priority_not_allowed", "Only admins may ask with priority high. "
                                                    "Ask again with priority normal or low.")
