"""The live admin page in Chromium: both workers and a chart that moves when questions are asked; 403 for others."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devstack.local_broker import RunningBroker
from tests.login_helpers import raw_session, session_header
from tests.pki_helpers import Pki
from tests.stack_helpers import ChatClient, local_stack
from tests.browser_helpers import CHROMIUM, launch_chromium, log_in_page

pytestmark = [pytest.mark.integration, pytest.mark.browser]


async def test_admin_page_needs_the_admin_role(pki: Pki, broker: RunningBroker) -> None:
    """A logged-in user who is not an admin gets 403 on /admin; no session goes to the login page."""
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        async with http.get(stack.url + "/admin", headers=session_header(stack.cookie), allow_redirects=False) as resp:
            assert resp.status == 403
        async with http.get(stack.url + "/admin", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/login"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/test.sh installs it as root)")
async def test_admin_page_shows_workers_and_a_moving_chart(pki: Pki, broker: RunningBroker) -> None:
    """An admin sees both of the stack's workers in the table and the answers/s series rise while a user asks."""
    async with local_stack(pki, broker, workers=2) as stack:
        admin = await stack.new_user(role="admin")
        async with launch_chromium(pki) as browser:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await log_in_page(page, stack.url, admin.name, admin.password)
            await page.goto(stack.url + "/admin")
            # This stack's two workers (the shared test broker may also hold other tests' retained worker statuses).
            ours = [w.settings.worker_id for w in stack.workers]
            await page.wait_for_function(
                "ids => { const shown = [...document.querySelectorAll('#workers tbody tr td:first-child')]"
                ".map(td => td.textContent); return ids.every(id => shown.includes(id)); }", arg=ours, timeout=10_000)
            client = ChatClient(pki, cookie=stack.cookie)
            await client.connect(stack.url)
            try:
                for i in range(20):
                    assert "task_id" in await client.ask(f"load {i}")
                    await asyncio.sleep(0.05)
                await page.wait_for_function(
                    "() => /[1-9][0-9.]* answers\\/s/.test(document.getElementById('summary').textContent)",
                    timeout=10_000)
            finally:
                await client.close()
            assert await page.locator("#rate-chart canvas").count() == 1
            assert errors == []
