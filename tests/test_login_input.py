"""Bad input to the login routes: a clear 4xx, and nothing changes (no session, no lock-out of others)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.local_broker import RunningBroker
from master.accounts import list_users
from master.sessions import CSRF_COOKIE_NAME
from tests.conftest import Pki
from tests.login_helpers import login_form_token, post_login, raw_session
from tests.stack_helpers import local_stack, login_cookie

pytestmark = pytest.mark.integration


async def session_count(stack) -> int:  # type: ignore[no-untyped-def]
    return await stack.master.db.run(lambda c: c.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])


async def test_bad_login_requests_get_a_clear_4xx_and_change_nothing(pki: Pki, broker: RunningBroker) -> None:
    """Missing fields 400, JSON body 403, huge body 413, unknown user 401, no session 401: no session is created."""
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        before = await session_count(stack)
        missing = await post_login(http, stack.url, "", "")
        assert missing.status == 400 and "Enter a user name and a password" in await missing.text()
        csrf = await login_form_token(http, stack.url)
        headers = {"Cookie": f"{CSRF_COOKIE_NAME}={csrf}", "Origin": stack.url, "Content-Type": "application/json"}
        async with http.post(stack.url + "/login", data=json.dumps({"name": 1, "password": ["x"], "csrf": csrf}),
                             headers=headers, allow_redirects=False) as resp:
            assert resp.status == 403
        huge = {"name": "x", "password": "p" * 100_000, "csrf": csrf}
        async with http.post(stack.url + "/login", data=huge, headers={"Cookie": headers["Cookie"], "Origin": stack.url},
                             allow_redirects=False) as resp:
            assert resp.status == 413
        unknown = await post_login(http, stack.url, "x" * 300, "a password that is long enough")
        assert unknown.status == 401
        async with http.get(stack.url + "/session") as resp:
            assert resp.status == 401 and (await resp.json())["error"]["code"] == "not_logged_in"
        async with http.post(stack.url + "/logout", headers={"Origin": stack.url}) as resp:
            assert resp.status == 401
        assert await session_count(stack) == before


async def test_login_page_has_no_inline_script_and_the_chat_csp(pki: Pki, broker: RunningBroker) -> None:
    """The login page is plain HTML with no script at all, served under the same CSP as the chat."""
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        async with http.get(stack.url + "/login") as resp:
            body = await resp.text()
            assert resp.status == 200 and "<script" not in body
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
            assert resp.headers["Cache-Control"] == "no-store"


async def test_initial_admin_is_seeded_once_from_its_secret_file(pki: Pki, broker: RunningBroker, tmp_path: Path) -> None:
    """An empty store gets the admin from INITIAL_ADMIN_PASSWORD_FILE; a later start with another file changes nothing."""
    db, secret = tmp_path / "master.db", tmp_path / "initial_admin_password"
    secret.write_text("first admin password\n")
    overrides = {"database_file": db, "initial_admin_password_file": secret}
    async with local_stack(pki, broker, workers=0, master_overrides=overrides) as stack:
        users = await stack.master.db.run(list_users)
        assert [(u.name, u.role) for u in users if u.role == "admin"] == [("admin", "admin")]
        await login_cookie(pki, stack.url, "admin", "first admin password")
    secret.write_text("second password, ignored\n")
    async with local_stack(pki, broker, workers=0, master_overrides=overrides) as stack:
        await login_cookie(pki, stack.url, "admin", "first admin password")
