"""Every few seconds: end live connections whose login session ended, record session use, save daily counts."""

from __future__ import annotations

import asyncio
import logging
import time

from master.chat_events import ChatEvents
from master.sessions import SessionLifetime, delete_expired, live_sessions
from master.store import Database
from master.user_limits import UserLimiter, write_daily_counts

logger = logging.getLogger(__name__)
EXPIRED_SWEEP_S = 300.0


class SessionWatch:
    """A session deleted by logout, `scripts/users.sh passwd|disable` or expiry drops its Socket.IO connections
    within `interval_s`, whichever process deleted it."""

    def __init__(self, chat: ChatEvents, db: Database, lifetime: SessionLifetime, limiter: UserLimiter,
                 interval_s: float = 2.0) -> None:
        self.chat = chat
        self.db = db
        self.lifetime = lifetime
        self.limiter = limiter
        self.interval_s = interval_s
        self._last_expiry_sweep = 0.0

    async def check_once(self) -> None:
        hashes = {c.session.token_hash for c in self.chat.connections.values()}
        touched, self.chat.touched = self.chat.touched, {}
        live = await self.db.run(live_sessions, hashes, self.lifetime, touched)
        ended = hashes - live
        if ended:
            await self.chat.drop_sessions(ended)
        counts = self.limiter.take_dirty()
        if counts:
            await self.db.run(write_daily_counts, counts)
        if time.monotonic() - self._last_expiry_sweep > EXPIRED_SWEEP_S:
            self._last_expiry_sweep = time.monotonic()
            removed = await self.db.run(delete_expired, self.lifetime)
            if removed:
                logger.info("%d expired sessions removed", removed)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check_once()
            except Exception:  # never let one failed round end the watch
                logger.exception("session check failed; retrying in %.0f s", self.interval_s)
