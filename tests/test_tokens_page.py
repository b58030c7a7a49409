"""The API tokens page (/tokens) in Chromium: make a token, use it on the REST API, revoke it, and it stops working."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.local_broker import RunningBroker
from tests.browser_helpers import CHROMIUM, launch_chromium, log_in_page
from tests.login_helpers import raw_session, session_header
from tests.pki_helpers import Pki
from tests.stack_helpers import local_stack

pytestmark = [pytest.mark.integration, pytest.mark.browser]
TASKS = "/api/v1/tasks"


async def test_tokens_page_needs_a_login(pki: Pki, broker: RunningBroker) -> None:
    """Without a session /tokens goes to the login page; with one it is the page, with the usual security headers."""
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        async with http.get(stack.url + "/tokens", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/login"
        async with http.get(stack.url + "/tokens", headers=session_header(stack.cookie), allow_redirects=False) as resp:
            body = await resp.text()
            assert resp.status == 200 and 'src="/static/tokens.js"' in body
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
            assert "<script>" not in body  # no inline script: the CSP would refuse it


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/test.sh installs it as root)")
async def test_token_made_on_the_page_works_until_revoked_on_the_page(pki: Pki, broker: RunningBroker) -> None:
    """Chat header link -> /tokens; a token made there lists tasks with Bearer; revoked there, the same call is 401."""
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        user = await stack.new_user()
        async with launch_chromium(pki) as browser:
            context = await browser.new_context(permissions=["clipboard-read", "clipboard-write"])
            page = await context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            await log_in_page(page, stack.url, user.name, user.password)
            await page.click("#tokens-link")
            await page.wait_for_url(stack.url + "/tokens")
            await page.wait_for_selector("#tokens tbody tr", timeout=10_000)
            assert await page.locator("#tokens tbody").inner_text() == "No tokens yet."

            await page.fill("#token-label", "my script")
            await page.click("#create")
            await page.wait_for_selector("#created:not([hidden])", timeout=10_000)
            token = await page.input_value("#new-token-value")
            assert token.startswith("aisys_")
            await page.click("#copy")
            await page.wait_for_function("() => document.getElementById('copy-state').textContent.startsWith('Copied')")
            assert await page.evaluate("() => navigator.clipboard.readText()") == token
            assert await page.locator("#tokens tbody tr").count() == 1
            assert "my script" in await page.locator("#tokens tbody").inner_text()

            bearer = {"Authorization": f"Bearer {token}"}
            async with http.get(stack.url + TASKS, headers=bearer) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["tasks"] == []

            await page.reload()  # shown once: the list never holds the token itself
            await page.wait_for_selector("#tokens tbody tr[data-id]", timeout=10_000)
            assert token not in await page.content()
            assert await page.locator("#created").is_hidden()

            await page.click("#tokens tbody tr[data-id] button.revoke")
            await page.wait_for_function(
                "() => document.querySelector('#tokens tbody').textContent === 'No tokens yet.'", timeout=10_000)
            async with http.get(stack.url + TASKS, headers=bearer) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"]["code"] == "bad_token"
            assert problems == []
