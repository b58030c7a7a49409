"""Logging in and out, and finding the session behind a cookie: the one place that decides who someone is."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from dataclasses import dataclass

from master.accounts import MAX_PASSWORD_CHARS, NAME_RE, Passwords, User, login_record
from master.login_throttle import LoginThrottle
from master.metrics import LOGINS_FAILED
from master.sessions import (
    ActiveSession, CookieSigner, SessionLifetime, create_session, delete_session, find_session, new_token, token_hash,
)
from master.store import Database
from master.user_limits import human_duration

logger = logging.getLogger(__name__)
WRONG_CREDENTIALS = "Wrong user name or password."


class LoginRefused(Exception):
    """A failed login; `status` is the HTTP status, `message` is shown as it is."""

    def __init__(self, status: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class LoggedIn:
    cookie_value: str
    session: ActiveSession


class Auth:
    def __init__(self, db: Database, passwords: Passwords, signer: CookieSigner, lifetime: SessionLifetime,
                 by_name: LoginThrottle, by_address: LoginThrottle) -> None:
        self.db = db
        self.passwords = passwords
        self.signer = signer
        self.lifetime = lifetime
        self.by_name = by_name
        self.by_address = by_address
        # argon2 costs tens of MiB and tens of ms per call: one at a time, off the event loop.
        self._hashing = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="argon2")

    async def hash_password(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._hashing, self.passwords.hash, password)

    async def login(self, name: str, password: str, address: str) -> LoggedIn:
        """A new session for `name`, or LoginRefused: the same message and the same work for an unknown
        name as for a wrong password; locked names and addresses are refused before any work."""
        name_key, address_key = f"name:{name.casefold()[:64]}", f"addr:{address}"
        wait = max(self.by_name.locked_for(name_key), self.by_address.locked_for(address_key))
        if wait > 0:
            LOGINS_FAILED.inc()
            raise LoginRefused(429, f"Too many failed logins. Try again in {human_duration(wait)}.", wait)
        plausible = bool(NAME_RE.fullmatch(name)) and 0 < len(password) <= MAX_PASSWORD_CHARS
        record = await self.db.run(login_record, name) if plausible else None
        ok = await asyncio.get_running_loop().run_in_executor(
            self._hashing, self.passwords.verify_or_waste, record[1] if record else None, password[:MAX_PASSWORD_CHARS],
        )
        if not ok or record is None:
            self.by_name.failed(name_key)
            self.by_address.failed(address_key)
            LOGINS_FAILED.inc()
            logger.info("login failed")
            raise LoginRefused(401, WRONG_CREDENTIALS)
        user: User = record[0]
        if user.disabled:
            LOGINS_FAILED.inc()
            raise LoginRefused(403, "This account is disabled. Ask the operator.")
        self.by_name.succeeded(name_key)
        self.by_address.succeeded(address_key)
        token = new_token()
        await self.db.run(create_session, user.id, token)
        session = ActiveSession(token_hash(token), user, 0.0)
        logger.info("user %s logged in", user.id)
        return LoggedIn(self.signer.sign(token), session)

    async def session_for(self, cookie_value: str | None) -> ActiveSession | None:
        """The live session a cookie names, or None (no cookie, bad signature, ended or expired)."""
        token = self.signer.token(cookie_value)
        if token is None:
            return None
        return await self.db.run(find_session, token_hash(token), self.lifetime)

    async def logout(self, session: ActiveSession) -> None:
        await self.db.run(delete_session, session.token_hash)
        logger.info("user %s logged out", session.user.id)

    def close(self) -> None:
        self._hashing.shutdown(wait=True)
