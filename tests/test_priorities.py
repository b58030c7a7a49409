"""Task priorities over the real stack: high before normal before low, high for admins only (chat and REST)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devstack.local_broker import RunningBroker
from master.fair_queue import HIGH, LOW
from tests.browser_helpers import CHROMIUM, launch_chromium, log_in_page
from tests.pki_helpers import Pki
from tests.stack_helpers import chat_client, https_session, local_stack, wait_until
from tests.api_helpers import API, answered, call, new_token

pytestmark = pytest.mark.integration


async def test_queued_tasks_are_answered_high_normal_low(pki: Pki, broker: RunningBroker) -> None:
    """One busy slot, then low, normal and high asked by an admin: answered high, normal, low."""
    async with local_stack(pki, broker, workers=1, capacity=1, worker_overrides={"echo_latency_s": 1.5},
                           master_overrides={"priority_aging_s": 600}) as stack:
        admin = await stack.login(await stack.new_user("admin"))
        async with chat_client(pki, stack.url, cookie=admin) as client:
            blocker = await client.ask("blocker")
            dispatcher = stack.master.dispatcher
            await wait_until(lambda: dispatcher.tasks[blocker["task_id"]].worker_id is not None, what="the blocker")
            # Asked together, while the blocker holds the one slot (1.5 s; asked one by one they took up to 0.3 s
            # on a loaded machine, and the blocker's old 0.3 s let "low" take the slot).
            acks = await asyncio.gather(*(client.ask({"text": p, "priority": p}) for p in ("low", "normal", "high")))
            asked = {p: ack["task_id"] for p, ack in zip(("low", "normal", "high"), acks)}
            assert dispatcher.queued == 3
            assert dispatcher.tasks[asked["low"]].priority == LOW and dispatcher.tasks[asked["high"]].priority == HIGH
            order = [(await client.next_response(10))["task_id"] for _ in range(4)]
    assert order == [blocker["task_id"], asked["high"], asked["normal"], asked["low"]]


async def test_high_priority_is_refused_to_a_non_admin(pki: Pki, broker: RunningBroker) -> None:
    """A user asking high gets priority_not_allowed (chat) or 403 (REST) and nothing is queued; low is fine."""
    async with local_stack(pki, broker, workers=1) as stack:
        async with chat_client(pki, stack.url, cookie=stack.cookie) as client:
            ack = await client.ask({"text": "me first", "priority": "high"})
            assert ack["error"]["code"] == "priority_not_allowed" and "admins" in ack["error"]["message"]
            bad = await client.ask({"text": "x", "priority": "urgent"})
            assert bad["error"]["code"] == "bad_request" and "high, normal, low" in bad["error"]["message"]
            assert stack.master.dispatcher.tasks == {}
            ok = await client.ask({"text": "no hurry", "priority": "low"})
            assert (await client.next_response())["task_id"] == ok["task_id"]
        async with https_session(pki.tls()) as http:
            token = await new_token(http, stack, stack.cookie)
            status, body, _ = await call(http, "POST", stack.url + f"{API}/tasks", token,
                                         json={"text": "api first", "priority": "high"})
            assert (status, body["error"]["code"]) == (403, "priority_not_allowed")
            status, body, _ = await call(http, "POST", stack.url + f"{API}/tasks", token,
                                         json={"text": "api", "priority": "urgent"})
            assert status == 422 and body["error"]["fields"] == ["priority"]


async def test_admin_may_ask_high_over_the_api(pki: Pki, broker: RunningBroker) -> None:
    """An admin's token posts a high-priority task: accepted (202) and answered."""
    async with local_stack(pki, broker, workers=1) as stack:
        admin = await stack.login(await stack.new_user("admin"))
        async with https_session(pki.tls()) as http:
            token = await new_token(http, stack, admin)
            status, body, _ = await call(http, "POST", stack.url + f"{API}/tasks", token,
                                         json={"text": "urgent", "priority": "high"})
            assert status == 202, body
            assert (await answered(http, stack, token, body["task_id"]))["state"] == "answered"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/test.sh installs it as root)")
async def test_page_priority_picker_offers_high_to_admins_only(pki: Pki, broker: RunningBroker) -> None:
    """In Chromium a user's picker has no usable "high"; an admin's has it, and a question asked "low" is queued low."""
    async with local_stack(pki, broker, workers=1, capacity=1, worker_overrides={"echo_latency_s": 1.0}) as stack, \
            launch_chromium(pki) as browser:
        dispatcher = stack.master.dispatcher
        for role, high_usable in (("user", False), ("admin", True)):
            account = await stack.new_user(role)
            page = await browser.new_context()
            tab = await page.new_page()
            await log_in_page(tab, stack.url, account.name, account.password)
            await tab.wait_for_function("() => document.getElementById('user').textContent !== ''", timeout=10_000)
            usable = await tab.eval_on_selector("#priority option[value='high']", "o => !o.hidden && !o.disabled")
            assert usable is high_usable, role
            if role == "user":
                await tab.select_option("#priority", "low")
                await tab.fill("#question", "asked low from the page")
                await tab.click("#send")
                await wait_until(lambda: any(t.prompt == "asked low from the page" for t in dispatcher.tasks.values()),
                                 what="the question")
                [task] = [t for t in dispatcher.tasks.values() if t.prompt == "asked low from the page"]
                assert task.priority == LOW
            await page.close()
