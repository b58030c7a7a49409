"""Login, logout and sessions against the real master over HTTPS (and Socket.IO where a session is used)."""

from __future__ import annotations

import asyncio
import statistics
import time
from http.cookies import SimpleCookie

import pytest
import socketio

from devstack.local_broker import RunningBroker
from master.accounts import set_disabled
from master.auth import WRONG_CREDENTIALS
from master.sessions import COOKIE_NAME
from tests.conftest import Pki
from tests.login_helpers import csrf_of, logout, post_login, raw_session, session_header
from tests.stack_helpers import ChatClient, local_stack, wait_until

pytestmark = pytest.mark.integration


def set_cookie_header(resp: object, name: str) -> str:
    """The raw Set-Cookie header that sets `name`."""
    headers = resp.headers.getall("Set-Cookie")  # type: ignore[attr-defined]
    return next(h for h in headers if h.startswith(name + "="))


async def test_right_password_gets_a_host_prefixed_strict_session_cookie(pki: Pki, broker: RunningBroker) -> None:
    """A good login redirects to the chat and sets __Host-aisys_session: Secure, HttpOnly, SameSite=Strict, Path=/, no Domain."""
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        account = await stack.new_user()
        resp = await post_login(http, stack.url, account.name, account.password)
        assert resp.status == 303 and resp.headers["Location"] == "/"
        header = set_cookie_header(resp, COOKIE_NAME)
        attributes = {a.strip().split("=")[0].lower() for a in header.split(";")[1:]}
        assert COOKIE_NAME.startswith("__Host-")
        assert {"secure", "httponly", "path", "samesite"} <= attributes and "domain" not in attributes
        assert "SameSite=Strict" in header and "Path=/" in header
        cookie = SimpleCookie(header)[COOKIE_NAME].value
        async with http.get(stack.url + "/session", headers=session_header(cookie)) as who:
            assert who.status == 200 and (await who.json())["user"] == account.name


async def test_wrong_password_and_unknown_user_get_the_same_answer(pki: Pki, broker: RunningBroker) -> None:
    """401 with the same message for a wrong password and for a name that does not exist; no cookie set."""
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        account = await stack.new_user()
        wrong = await post_login(http, stack.url, account.name, "not the password")
        unknown = await post_login(http, stack.url, "nobody-" + account.name, "not the password")
        for resp in (wrong, unknown):
            assert resp.status == 401 and WRONG_CREDENTIALS in await resp.text()
            assert COOKIE_NAME not in resp.cookies


async def test_unknown_user_costs_the_same_work_and_time_as_a_wrong_password(pki: Pki, broker: RunningBroker) -> None:
    """Both paths run exactly one argon2 verification, and their median times are alike (no enumeration by timing)."""
    async with local_stack(pki, broker, workers=0, master_overrides={"login_max_failures": 1000,
                                                                     "login_max_failures_per_address": 1000}) as stack:
        account = await stack.new_user()
        passwords = stack.master.auth.passwords
        calls: list[str | None] = []
        original = passwords.verify_or_waste

        def counting(stored: str | None, password: str) -> bool:
            calls.append(stored)
            return original(stored, password)

        passwords.verify_or_waste = counting  # type: ignore[method-assign]
        timings: dict[str, list[float]] = {"wrong": [], "unknown": []}
        async with raw_session(pki) as http:
            for i in range(12):
                for kind, name in (("wrong", account.name), ("unknown", f"ghost{i}")):
                    start = time.perf_counter()
                    resp = await post_login(http, stack.url, name, "not the password", csrf="x" * 43, cookie_csrf="same")
                    timings[kind].append(time.perf_counter() - start)
                    assert resp.status == 401
        assert len(calls) == 24 and calls.count(None) == 12  # one verification each; the unknown ones against a dummy
        ratio = statistics.median(timings["unknown"]) / statistics.median(timings["wrong"])
        assert 0.5 < ratio < 2.0, timings


async def test_disabled_user_cannot_log_in_and_is_dropped(pki: Pki, broker: RunningBroker) -> None:
    """Disabling a user ends their live Socket.IO connection within seconds, and their login is refused (403)."""
    async with local_stack(pki, broker, workers=0) as stack:
        account = await stack.new_user()
        client = ChatClient(pki, cookie=await stack.login(account))
        await client.connect(stack.url)
        try:
            await stack.master.db.run(set_disabled, account.name, True)
            await wait_until(lambda: client.sio is not None and not client.sio.connected, timeout=6, what="drop")
        finally:
            await client.close()
        async with raw_session(pki) as http:
            resp = await post_login(http, stack.url, account.name, account.password)
            assert resp.status == 403 and "disabled" in await resp.text()


async def test_name_is_locked_after_failures_and_free_after_the_lock(pki: Pki, broker: RunningBroker) -> None:
    """3 wrong passwords lock the name: even the right one gets 429 with Retry-After; after the lock it works."""
    overrides = {"login_max_failures": 3, "login_lockout_s": 1.5}
    async with local_stack(pki, broker, workers=0, master_overrides=overrides) as stack, raw_session(pki) as http:
        account = await stack.new_user()
        for _ in range(3):
            assert (await post_login(http, stack.url, account.name, "wrong password")).status == 401
        locked = await post_login(http, stack.url, account.name, account.password)
        assert locked.status == 429 and int(locked.headers["Retry-After"]) >= 1
        assert "Too many failed logins" in await locked.text()
        await asyncio.sleep(1.6)
        assert (await post_login(http, stack.url, account.name, account.password)).status == 303


async def test_address_is_locked_after_failures_across_names(pki: Pki, broker: RunningBroker) -> None:
    """Guessing many names from one address locks the address, whatever name it tries next."""
    overrides = {"login_max_failures_per_address": 4, "login_lockout_s": 60}
    async with local_stack(pki, broker, workers=0, master_overrides=overrides) as stack, raw_session(pki) as http:
        account = await stack.new_user()
        for i in range(4):
            assert (await post_login(http, stack.url, f"guess{i}", "wrong password")).status == 401
        assert (await post_login(http, stack.url, account.name, account.password)).status == 429


@pytest.mark.parametrize("case", ["no field", "wrong field", "no cookie", "foreign origin"])
async def test_login_without_a_valid_csrf_token_or_from_another_site_is_403(
        pki: Pki, broker: RunningBroker, case: str) -> None:
    """The CSRF field must match the CSRF cookie, and the Origin must be ours: else 403 and no session."""
    kwargs = {"no field": {"csrf": None, "cookie_csrf": "a" * 43}, "wrong field": {"csrf": "b" * 43, "cookie_csrf": "a" * 43},
              "no cookie": {"cookie_csrf": None}, "foreign origin": {"origin": "https://evil.example"}}[case]
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        account = await stack.new_user()
        resp = await post_login(http, stack.url, account.name, account.password, **kwargs)  # type: ignore[arg-type]
        assert resp.status == 403 and "CSRF" in await resp.text()
        assert COOKIE_NAME not in resp.cookies
        assert await stack.master.db.run(lambda c: c.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]) == 1


async def test_logout_ends_the_session_for_http_and_socketio(pki: Pki, broker: RunningBroker) -> None:
    """After logout: /session is 401, / goes to the login page, the live connection drops, the cookie cannot reconnect."""
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        cookie = await stack.login(await stack.new_user())
        client = ChatClient(pki, cookie=cookie)
        await client.connect(stack.url)
        try:
            assert await logout(http, stack.url, cookie, await csrf_of(http, stack.url, cookie)) == 204
            await wait_until(lambda: client.sio is not None and not client.sio.connected, timeout=3, what="drop")
        finally:
            await client.close()
        async with http.get(stack.url + "/session", headers=session_header(cookie)) as resp:
            assert resp.status == 401
        async with http.get(stack.url + "/", headers=session_header(cookie), allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/login"
        again = ChatClient(pki, cookie=cookie)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await again.connect(stack.url)
        await again.close()


async def test_logout_without_csrf_is_refused_and_keeps_the_session(pki: Pki, broker: RunningBroker) -> None:
    """POST /logout with a missing or wrong X-CSRF-Token is 403 and the session still works."""
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        cookie = stack.cookie
        assert await logout(http, stack.url, cookie, None) == 403
        assert await logout(http, stack.url, cookie, "0" * 64) == 403
        async with http.get(stack.url + "/session", headers=session_header(cookie)) as resp:
            assert resp.status == 200


@pytest.mark.parametrize("transport", ["websocket", "polling"])
@pytest.mark.parametrize("cookie", ["none", "forged", "ended"])
async def test_socketio_without_a_live_session_is_refused(
        pki: Pki, broker: RunningBroker, transport: str, cookie: str) -> None:
    """No cookie, a cookie with a forged signature, or the cookie of an ended session: the connection is refused."""
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        value = {"none": None, "forged": "attacker-token.c2lnbmF0dXJl", "ended": None}[cookie]
        if cookie == "ended":
            value = await stack.login(await stack.new_user())
            assert await logout(http, stack.url, value, await csrf_of(http, stack.url, value)) == 204
        client = ChatClient(pki, cookie=value)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(stack.url, transports=(transport,))
        await client.close()
        # The handshake itself, as sent: 401 for polling; the WebSocket is closed before it is accepted (403).
        polling = stack.url + "/socket.io/?EIO=4&transport=polling"
        async with http.get(polling, headers=session_header(value) if value else {}) as resp:
            assert resp.status == 401
        # Control: a live session opens the same handshake.
        async with http.get(polling, headers=session_header(stack.cookie)) as resp:
            assert resp.status == 200


async def test_expired_session_is_refused(pki: Pki, broker: RunningBroker) -> None:
    """A session idle for longer than SESSION_IDLE_S no longer opens a connection or the page."""
    async with local_stack(pki, broker, workers=0, master_overrides={"session_idle_s": 1.0}) as stack:
        cookie = await stack.login(await stack.new_user())
        async with raw_session(pki) as http:
            polling = stack.url + "/socket.io/?EIO=4&transport=polling"
            async with http.get(polling, headers=session_header(cookie)) as resp:
                assert resp.status == 200
            await asyncio.sleep(1.3)
            async with http.get(polling, headers=session_header(cookie)) as resp:
                assert resp.status == 401
            async with http.get(stack.url + "/session", headers=session_header(cookie)) as resp:
                assert resp.status == 401


async def test_two_users_with_two_tabs_each_get_exactly_their_own_answers(pki: Pki, broker: RunningBroker) -> None:
    """50 questions in flight from 4 tabs of 2 users: both tabs of a user get all of that user's answers, none of the other's."""
    async with local_stack(pki, broker, workers=2, capacity=8, worker_overrides={"echo_latency_s": 0.1}) as stack:
        tabs: dict[str, list[ChatClient]] = {}
        for user in ("a", "b"):
            cookie = await stack.login(await stack.new_user(name=f"{user}-{stack.master.web_port}"))
            tabs[user] = [ChatClient(pki, cookie=cookie) for _ in range(2)]
            for tab in tabs[user]:
                await tab.connect(stack.url)
        try:
            questions = [(user, tab, f"{user} tab {tab} question {q}") for q in range(13) for user in "ab" for tab in (0, 1)][:50]
            acks = await asyncio.gather(*(tabs[u][t].ask(text) for u, t, text in questions))
            asked: dict[str, dict[str, str]] = {"a": {}, "b": {}}
            for (user, _, text), ack in zip(questions, acks):
                asked[user][ack["task_id"]] = text
            for user in "ab":
                for tab in tabs[user]:
                    got = [await tab.next_response(timeout=20) for _ in range(len(asked[user]))]
                    assert {r["task_id"]: r["answer"].split("You said: ")[1] for r in got} == asked[user]
            await asyncio.sleep(0.3)
            assert all(tab.responses.empty() for user in "ab" for tab in tabs[user])  # nothing crossed over
        finally:
            for user in "ab":
                for tab in tabs[user]:
                    await tab.close()
