"""In Chromium: the history panel (master/static/history.js) keeps a conversation across a reload and a master
restart, loads it, starts a new one, deletes one and deletes all of the user's data."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from devstack.local_broker import RunningBroker
from tests.browser_helpers import CHROMIUM, launch_chromium, wait_connected
from tests.pki_helpers import Pki
from tests.stack_helpers import Account, local_stack

pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason="chromium is not installed (scripts/test.sh installs it as root)")]
ANSWERS = "() => [...document.querySelectorAll('#log .msg.ai')].map(e => e.textContent)"
QUESTIONS = "() => [...document.querySelectorAll('#log .msg.user')].map(e => e.textContent)"


async def log_in(page: Any, url: str, account: Account) -> None:
    await page.goto(url + "/")
    await page.wait_for_selector("#login-button", timeout=10_000)
    await page.fill("#name", account.name)
    await page.fill("#password", account.password)
    await page.click("#login-button")
    await wait_connected(page)


async def ask(page: Any, text: str) -> None:
    """Send a question and wait for its (echo) answer in the log."""
    await page.fill("#question", text)
    await page.click("#send")
    await page.wait_for_function(
        "(t) => [...document.querySelectorAll('#log .msg.ai')].some(e => e.textContent.includes('You said: ' + t))",
        arg=text, timeout=10_000)


def entry(page: Any, title: str) -> Any:
    """The panel's entry for the conversation titled `title`."""
    return page.locator("#conversations li", has=page.locator("button.open", has_text=title))


async def accept_next_dialog(page: Any) -> None:
    async def accept(dialog: Any) -> None:
        await dialog.accept()
    page.once("dialog", accept)


async def test_history_survives_reload_and_restart_and_deletes(pki: Pki, broker: RunningBroker, tmp_path: Path) -> None:
    """The panel keeps a conversation across a reload and a master restart, loads it, deletes one and all."""
    database = Path(tempfile.mkdtemp(prefix="aisys-history-")) / "master.db"
    errors: list[str] = []
    async with launch_chromium(pki) as browser:
        async with local_stack(pki, broker, workers=1, master_overrides={"database_file": database}) as stack:
            account = await stack.new_user()
            page = await browser.new_page(viewport={"width": 390, "height": 740})  # phone width
            page.on("pageerror", lambda e: errors.append(str(e)))
            await log_in(page, stack.url, account)
            await page.click("#history summary")  # open the panel
            await page.wait_for_selector("#history-status >> text=No conversations yet.", timeout=10_000)
            await ask(page, "first <b>question</b> about owls")
            await ask(page, "and about cats")
            await entry(page, "first <b>question</b> about owls").wait_for(timeout=10_000)
            assert await page.locator("#conversations li").count() == 1  # the second question continued it

            await page.reload()
            await wait_connected(page)
            await page.wait_for_function(f"() => ({ANSWERS})().length === 2", timeout=10_000)  # shown again
            assert await page.evaluate(QUESTIONS) == ["first <b>question</b> about owls", "and about cats"]
            assert await page.locator("#log b").count() == 0  # user text is text, never markup
            await page.click("#history summary")
            await entry(page, "first <b>question</b> about owls").wait_for(timeout=10_000)

            await page.click("#new-conversation")
            assert await page.evaluate(ANSWERS) == []
            await ask(page, "another topic")
            await entry(page, "another topic").wait_for(timeout=10_000)
            await entry(page, "first <b>question</b> about owls").locator("button.open").click()
            await page.wait_for_function(f"() => ({ANSWERS})().length === 2", timeout=10_000)
            assert await page.evaluate(QUESTIONS) == ["first <b>question</b> about owls", "and about cats"]

            await entry(page, "another topic").locator("button.delete").click()  # dismissed: nothing happens
            await accept_next_dialog(page)
            await entry(page, "another topic").locator("button.delete").click()
            await entry(page, "another topic").wait_for(state="detached", timeout=10_000)
            assert await page.locator("#conversations li").count() == 1
            await page.close()

        # A new master process on the same store (new signing key: log in again).
        async with local_stack(pki, broker, workers=1, master_overrides={"database_file": database}) as stack:
            page = await browser.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            await log_in(page, stack.url, account)
            await page.click("#history summary")
            owls = entry(page, "first <b>question</b> about owls")
            await owls.wait_for(timeout=10_000)
            await owls.locator("button.open").click()
            await page.wait_for_function(f"() => ({ANSWERS})().length === 2", timeout=10_000)
            assert "You said: and about cats" in (await page.evaluate(ANSWERS))[1]
            await ask(page, "after the restart")  # continues the loaded conversation
            assert await page.locator("#conversations li").count() == 1
            await page.screenshot(path=str(tmp_path / "history.png"))

            # Deleted meanwhile (as by another tab): the next question says so and keeps the text; sent again,
            # it starts a new conversation.
            await page.evaluate("() => new Promise((ok) => window.aiChat.socket.emit('ai-conversation-delete',"
                                " {conversation_id: window.aiChat.current()}, ok))")
            await page.fill("#question", "lost question")
            await page.click("#send")
            await page.wait_for_selector(".msg.error >> text=This conversation was deleted meanwhile.", timeout=10_000)
            assert await page.input_value("#question") == "lost question"
            await ask(page, "lost question")
            await entry(page, "lost question").wait_for(timeout=10_000)
            assert await page.locator("#conversations li").count() == 1

            await accept_next_dialog(page)
            await page.click("#delete-all")
            await page.wait_for_selector("#history-status >> text=Deleted 1 conversations and 1 questions.",
                                         timeout=10_000)
            assert await page.locator("#conversations li").count() == 0
            assert await page.evaluate(ANSWERS) == []
            await page.reload()
            await wait_connected(page)
            await page.click("#history summary")
            await page.wait_for_selector("#history-status >> text=No conversations yet.", timeout=10_000)
            assert await page.evaluate(ANSWERS) == []
    assert errors == []
