"""In Chromium: an answer appears as it is written, survives a reload mid-answer, and Stop keeps the partial."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.local_broker import RunningBroker
from tests.browser_helpers import CHROMIUM, launch_chromium, log_in_page, wait_connected
from tests.pki_helpers import Pki
from tests.stack_helpers import local_stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.browser]
ANSWERS = "[...document.querySelectorAll('.msg.ai')]"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/test.sh installs it as root)")
async def test_reload_mid_answer_shows_the_text_so_far_and_completes(pki: Pki, broker: RunningBroker) -> None:
    """Reload while the answer streams: the question and text so far come back, the answer completes once."""
    async with local_stack(pki, broker, workers=1, worker_overrides={"echo_latency_s": 4.0}) as stack, \
            launch_chromium(pki) as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        account = await stack.new_user()
        await log_in_page(page, stack.url, account.name, account.password)
        await page.fill("#question", "hello reload")
        await page.click("#send")
        await page.wait_for_selector(".msg.ai.streaming >> text=[offline", timeout=10_000)
        await page.wait_for_selector(".msg.ai.streaming .stop", timeout=5_000)
        before = await page.locator(".msg.ai.streaming").first.text_content()
        assert before is not None and "You said: hello reload" not in before  # mid-answer
        await page.reload()
        # Reload, page load and a new TLS connection once took over 10 s in CI, next to the Swarm test.
        await wait_connected(page, timeout_ms=20_000)
        await page.wait_for_selector(".msg.user >> text=hello reload", timeout=10_000)
        await page.wait_for_function(f"() => {ANSWERS}.some(e => e.textContent.startsWith('[offline'))", timeout=10_000)
        await page.wait_for_function(
            f"() => {ANSWERS}.some(e => e.textContent.includes('You said: hello reload'))", timeout=15_000)
        texts = await page.eval_on_selector_all(".msg.ai", "els => els.map(e => e.textContent)")
        assert len([t for t in texts if "hello reload" in t]) == 1 and not any("another tab" in t for t in texts)
        assert errors == []


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/test.sh installs it as root)")
async def test_stop_button_keeps_the_partial_marked_stopped(pki: Pki, broker: RunningBroker) -> None:
    """Stop on a streaming answer: the text so far stays, marked stopped, and the worker's slot frees."""
    async with local_stack(pki, broker, workers=1, capacity=1, worker_overrides={"echo_latency_s": 6.0}) as stack, \
            launch_chromium(pki) as browser:
        page = await browser.new_page()
        account = await stack.new_user()
        await log_in_page(page, stack.url, account.name, account.password)
        await page.fill("#question", "stop me")
        await page.click("#send")
        await page.click(".msg.ai.streaming .stop", timeout=10_000)
        stopped = page.locator(".msg.ai.stopped")
        await stopped.wait_for(timeout=5_000)
        text = await stopped.text_content()
        assert text is not None and text.startswith("[offline") and text.endswith("stopped")
        assert "You said: stop me" not in text
        assert await page.locator(".msg.ai.stopped .stop").count() == 0
        await wait_until(lambda: stack.workers[0].status().free_slots == 1, what="the worker's slot")
