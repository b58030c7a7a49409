"""A real browser (Debian's Chromium through Playwright) uses the chat over HTTPS."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from devstack.local_broker import RunningBroker
from tests.pki_helpers import Pki
from tests.browser_helpers import CHROMIUM, launch_chromium, log_in_page, wait_connected
from tests.stack_helpers import local_stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/test.sh installs it as root)")
async def test_browser_sends_a_message_and_sees_the_answer(pki: Pki, broker: RunningBroker, tmp_path: Path) -> None:
    """In Chromium: log in (a wrong password first), chat, a question over the limit is refused and kept, log out."""
    async with local_stack(pki, broker, workers=1) as stack, launch_chromium(pki) as browser:
        page = await browser.new_page(viewport={"width": 390, "height": 740})  # phone width
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        account = await stack.new_user()
        await page.goto(stack.url + "/")
        await page.wait_for_selector("#login-button", timeout=10_000)  # not logged in: the login form
        await page.fill("#name", account.name)
        await page.fill("#password", "wrong password!")
        await page.click("#login-button")
        await page.wait_for_selector("#login-error >> text=Wrong user name or password.", timeout=10_000)
        await page.fill("#password", account.password)
        await page.click("#login-button")
        await wait_connected(page)
        await page.wait_for_selector(f"#user >> text={account.name}", timeout=5_000)
        await page.fill("#question", "hello from chromium")
        await page.click("#send")
        answer = page.locator(".msg.ai").last
        await answer.wait_for(timeout=10_000)
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.msg.ai')].some(e => e.textContent.includes('You said: hello from chromium'))",
            timeout=10_000,
        )
        # A question over the limit is refused in the page and stays in the box to be shortened.
        too_long = "x" * 8001
        await page.fill("#question", too_long)
        await page.click("#send")
        await page.wait_for_selector(".msg.error >> text=the limit is 8000", timeout=5_000)
        assert await page.input_value("#question") == too_long
        await page.screenshot(path=str(tmp_path / "chat.png"))
        await page.click("#logout")
        await page.wait_for_selector("#login-button", timeout=10_000)
        assert page.url.endswith("/login")
        # The login page's failed attempt is a 401 response, which Chromium reports as a console error.
        assert [e for e in errors if "401" not in e] == []


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/test.sh installs it as root)")
async def test_answer_that_beats_a_slow_acknowledgement_is_shown_as_this_tabs(pki: Pki, broker: RunningBroker) -> None:
    """Store held: the answer beats its acknowledgement by over 3 s and still lands in its own bubble, once."""
    async with local_stack(pki, broker, workers=1) as stack, launch_chromium(pki) as browser:
        page = await browser.new_page()
        account = await stack.new_user()
        await log_in_page(page, stack.url, account.name, account.password)
        worker = stack.master.dispatcher.registry.workers[stack.workers[0].settings.worker_id]
        release = threading.Event()
        store_held = asyncio.ensure_future(stack.master.db.run(lambda conn: release.wait(10)))
        try:
            await page.fill("#question", "hello slow store")
            await page.click("#send")
            await wait_until(lambda: worker.done == 1, what="the answer (its acknowledgement waits for the store)")
            await asyncio.sleep(4.0)  # past the page's 3 s after which an unclaimed answer was "asked in another tab"
            assert await page.locator(".msg.pending").count() == 1  # still waiting for its acknowledgement
        finally:
            release.set()
            await store_held
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.msg.ai')].some(e => e.textContent.includes('You said: hello slow store'))",
            timeout=10_000)
        texts: list[str] = await page.eval_on_selector_all(".msg", "els => els.map(e => e.textContent)")
        assert not any("another tab" in t for t in texts), texts
        assert await page.locator(".msg.pending").count() == 0
        assert len([t for t in texts if "You said: hello slow store" in t]) == 1
