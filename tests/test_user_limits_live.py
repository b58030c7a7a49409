"""Per-user limits and fair queueing, through the real master over Socket.IO."""

from __future__ import annotations

import asyncio

import pytest

from devstack.local_broker import RunningBroker
from tests.conftest import Pki
from tests.stack_helpers import ChatClient, Stack, local_stack

pytestmark = pytest.mark.integration


async def connected(stack: Stack, pki: Pki) -> ChatClient:
    client = ChatClient(pki, cookie=await stack.login(await stack.new_user()))
    await client.connect(stack.url)
    return client


async def test_question_over_the_rate_gets_the_limit_error_with_a_retry_time(pki: Pki, broker: RunningBroker) -> None:
    """Burst 3: the 4th question at once is refused with rate_limited and when to retry; another user is not affected."""
    async with local_stack(pki, broker, workers=1, master_overrides={"rate_per_minute": 6, "rate_burst": 3}) as stack:
        a, b = await connected(stack, pki), await connected(stack, pki)
        try:
            acks = [await a.ask(f"q{i}") for i in range(4)]
            assert all("task_id" in ack for ack in acks[:3])
            error = acks[3]["error"]
            assert error["code"] == "rate_limited" and 5 <= error["retry_after_s"] <= 11
            assert "Try again in" in error["message"]
            assert "task_id" in await b.ask("b is not limited by a")
        finally:
            await a.close()
            await b.close()


async def test_open_tasks_cap_refuses_until_an_answer_comes(pki: Pki, broker: RunningBroker) -> None:
    """With 2 open tasks allowed and a slow model, the 3rd question is refused; after an answer, accepted."""
    overrides = {"max_open_tasks_per_user": 2}
    async with local_stack(pki, broker, workers=1, master_overrides=overrides,
                           worker_overrides={"echo_latency_s": 3.0}) as stack:  # "one" stays open while 3 are asked
        a = await connected(stack, pki)
        try:
            assert "task_id" in await a.ask("one") and "task_id" in await a.ask("two")
            refused = await a.ask("three")
            assert refused["error"]["code"] == "too_many_open"
            await a.next_response(timeout=15)
            assert "task_id" in await a.ask("three, again")
        finally:
            await a.close()


async def test_daily_quota_is_enforced_and_kept_in_the_store(pki: Pki, broker: RunningBroker) -> None:
    """Quota 2: the 3rd question today is refused with the time to midnight UTC; the count is written to the store."""
    async with local_stack(pki, broker, workers=1, master_overrides={"daily_quota": 2}) as stack:
        a = await connected(stack, pki)
        try:
            assert "task_id" in await a.ask("one") and "task_id" in await a.ask("two")
            refused = (await a.ask("three"))["error"]
            assert refused["code"] == "daily_quota" and "midnight UTC" in refused["message"]
        finally:
            await a.close()
        for _ in range(50):  # the session watch saves counts every 2 s
            rows = await stack.master.db.run(lambda c: c.execute("SELECT questions FROM daily_usage").fetchall())
            if rows:
                break
            await asyncio.sleep(0.1)
        assert [r[0] for r in rows] == [2]


async def test_one_users_long_queue_does_not_delay_another_users_question(pki: Pki, broker: RunningBroker) -> None:
    """A queues 200 questions, then B asks one: with one slot and a slow model, B's answer comes before A's 20th."""
    async with local_stack(pki, broker, workers=1, capacity=1, worker_overrides={"echo_latency_s": 0.02}) as stack:
        a, b = await connected(stack, pki), await connected(stack, pki)
        try:
            acks = await asyncio.gather(*(a.ask(f"a{i}") for i in range(200)))
            assert all("task_id" in ack for ack in acks)
            assert "task_id" in await b.ask("b's only question")
            await b.next_response(timeout=30)
            answered_a = a.responses.qsize()
            assert answered_a < 20, f"B waited for {answered_a} of A's answers"
        finally:
            await a.close()
            await b.close()
