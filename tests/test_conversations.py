"""Conversations (master/conversations.py, master/conversation_events.py): asked, listed, loaded, deleted, expired;
another user's conversation is refused everywhere exactly like a missing one; bad arguments get clear errors."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import pytest

from devstack.local_broker import RunningBroker
from master.conversations import TITLE_CHARS
from tests.login_helpers import csrf_of, raw_session, session_header
from tests.pki_helpers import Pki
from tests.stack_helpers import ChatClient, Stack, chat_client, local_stack, wait_until

pytestmark = pytest.mark.integration
API = "/api/v1"
UNKNOWN_ID = "0123456789abcdef0123456789abcdef"


async def emit(client: ChatClient, event: str, *args: Any) -> dict[str, Any]:
    """Emit `event` with exactly these arguments and return its acknowledgement."""
    assert client.sio is not None
    data = None if not args else args[0] if len(args) == 1 else tuple(args)
    return await client.sio.call(event, data, timeout=10)  # type: ignore[no-any-return]


async def answer_to(client: ChatClient, task_id: str) -> dict[str, Any]:
    """The next outcome, which must be the one of `task_id` (anything else first is a stray message)."""
    response = await client.next_response(timeout=15)
    assert response["task_id"] == task_id, response
    return response


async def rest(http: aiohttp.ClientSession, stack: Stack, cookie: str, method: str, path: str) -> tuple[int, Any]:
    headers = session_header(cookie)
    if method != "GET":
        headers["X-CSRF-Token"] = await csrf_of(http, stack.url, cookie)
    async with http.request(method, stack.url + API + path, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


async def test_question_starts_a_conversation_and_continues_it(pki: Pki, broker: RunningBroker) -> None:
    """A question without conversation_id starts one (id in the ack); with it, continues it; list and load show both."""
    async with local_stack(pki, broker, workers=1) as stack, chat_client(pki, stack.url, cookie=stack.cookie) as client:
        long_question = "why " * 40
        first = await client.ask({"text": long_question})
        conversation_id = first["conversation_id"]
        await answer_to(client, first["task_id"])
        second = await client.ask({"text": "and then?", "conversation_id": conversation_id})
        assert second["conversation_id"] == conversation_id
        await answer_to(client, second["task_id"])
        other = await client.ask("a string question starts a new one")
        assert other["conversation_id"] != conversation_id
        await answer_to(client, other["task_id"])

        listed = await emit(client, "ai-conversations", {})
        assert [c["conversation_id"] for c in listed["conversations"]] == [other["conversation_id"], conversation_id]
        assert listed["next_before"] is None
        title = listed["conversations"][1]["title"]
        assert len(title) == TITLE_CHARS and title.startswith("why why") and title.endswith("…")
        page = await emit(client, "ai-conversations", {"limit": 1})
        assert len(page["conversations"]) == 1 and page["next_before"] is not None
        rest_page = await emit(client, "ai-conversations", {"limit": 1, "before": page["next_before"]})
        assert [c["conversation_id"] for c in rest_page["conversations"]] == [conversation_id]

        loaded = await emit(client, "ai-conversation", {"conversation_id": conversation_id})
        messages = loaded["messages"]
        assert [m["task_id"] for m in messages] == [first["task_id"], second["task_id"]]
        assert [m["prompt"] for m in messages] == [long_question, "and then?"]
        assert all(m["state"] == "answered" for m in messages)
        assert messages[1]["answer"].endswith("You said: and then?")


async def test_another_users_conversation_is_refused_everywhere(pki: Pki, broker: RunningBroker) -> None:
    """Bob naming Alice's conversation gets what an unknown id gets, in every event and route; nothing is sent."""
    async with local_stack(pki, broker, workers=1) as stack, raw_session(pki) as http:
        bob_cookie = await stack.login(await stack.new_user())
        async with chat_client(pki, stack.url, cookie=stack.cookie) as alice, \
                chat_client(pki, stack.url, cookie=bob_cookie) as bob:
            mine = await alice.ask("alice's secret question")
            alices = mine["conversation_id"]
            await answer_to(alice, mine["task_id"])
            open_before = len(stack.master.dispatcher.tasks)

            for event, args in (("ai-query", {"text": "let me in", "conversation_id": "{id}"}),
                                ("ai-conversation", {"conversation_id": "{id}"}),
                                ("ai-conversation-delete", {"conversation_id": "{id}"})):
                theirs = await emit(bob, event, {k: alices if v == "{id}" else v for k, v in args.items()})
                unknown = await emit(bob, event, {k: UNKNOWN_ID if v == "{id}" else v for k, v in args.items()})
                assert theirs == unknown, event
                assert theirs["error"]["code"] == "not_found", theirs
            assert len(stack.master.dispatcher.tasks) == open_before  # nothing queued
            assert (await emit(bob, "ai-conversations", {}))["conversations"] == []

            theirs = await rest(http, stack, bob_cookie, "DELETE", f"/conversations/{alices}")
            unknown = await rest(http, stack, bob_cookie, "DELETE", f"/conversations/{UNKNOWN_ID}")
            assert theirs == unknown and theirs[0] == 404 and theirs[1]["error"]["code"] == "not_found", theirs
            status, body = await rest(http, stack, bob_cookie, "GET", "/conversations")
            assert status == 200 and body["conversations"] == []

            # No message went anywhere: each one's next message is the answer to a fresh sentinel question.
            for client in (alice, bob):
                sentinel = await client.ask("sentinel")
                await answer_to(client, sentinel["task_id"])
            # Alice's conversation is whole and holds her question only.
            loaded = await emit(alice, "ai-conversation", {"conversation_id": alices})
            assert [m["prompt"] for m in loaded["messages"]] == ["alice's secret question"]
            status, body = await rest(http, stack, stack.cookie, "GET", "/conversations")
            assert status == 200 and alices in [c["conversation_id"] for c in body["conversations"]]


async def test_delete_conversation_cancels_its_open_tasks_and_removes_them(pki: Pki, broker: RunningBroker) -> None:
    """Deleting a conversation stops its running task and cancels its queued one, deletes them (API 404), keeps the others."""
    async with local_stack(pki, broker, workers=1, capacity=1, worker_overrides={"echo_latency_s": 1.0}) as stack, \
            chat_client(pki, stack.url, cookie=stack.cookie) as client, raw_session(pki) as http:
        kept = await client.ask("keep this one")
        await answer_to(client, kept["task_id"])
        running = await client.ask("soon deleted")
        doomed = running["conversation_id"]
        queued = await client.ask({"text": "also deleted", "conversation_id": doomed})
        await wait_until(lambda: stack.master.dispatcher.tasks[running["task_id"]].worker_id is not None,
                         what="the first question to be running")

        assert await emit(client, "ai-conversation-delete", {"conversation_id": doomed}) == {"deleted": doomed}
        errors = [await client.next_response() for _ in range(2)]
        assert {(e["event"], e["task_id"], e["code"]) for e in errors} == {
            ("ai-error", running["task_id"], "stopped"), ("ai-error", queued["task_id"], "cancelled")}
        assert (await emit(client, "ai-conversation", {"conversation_id": doomed}))["error"]["code"] == "not_found"
        for task in (running, queued):
            status, body = await rest(http, stack, stack.cookie, "GET", f"/tasks/{task['task_id']}")
            assert status == 404, body
        listed = await emit(client, "ai-conversations", {})
        assert [c["conversation_id"] for c in listed["conversations"]] == [kept["conversation_id"]]
        # The running one's result (after ~1 s) only frees the slot: the next message is the sentinel's answer.
        sentinel = await client.ask({"text": "sentinel", "conversation_id": kept["conversation_id"]})
        await answer_to(client, sentinel["task_id"])
        # Deleted through the REST API too.
        status, _ = await rest(http, stack, stack.cookie, "DELETE", f"/conversations/{kept['conversation_id']}")
        assert status == 204
        assert (await emit(client, "ai-conversations", {}))["conversations"] == []


async def test_delete_all_my_data_leaves_nothing_but_the_login(pki: Pki, broker: RunningBroker) -> None:
    """ai-delete-my-data empties the list, makes every task (API ones too) 404, keeps the login and others' data."""
    async with local_stack(pki, broker, workers=1) as stack, raw_session(pki) as http:
        bob_cookie = await stack.login(await stack.new_user())
        async with chat_client(pki, stack.url, cookie=stack.cookie) as client, \
                chat_client(pki, stack.url, cookie=bob_cookie) as bob:
            asked = []
            for text in ("one", "two"):
                ack = await client.ask(text)
                await answer_to(client, ack["task_id"])
                asked.append(ack["task_id"])
            headers = {**session_header(stack.cookie), "X-CSRF-Token": await csrf_of(http, stack.url, stack.cookie)}
            async with http.post(stack.url + f"{API}/tasks", json={"text": "by api"}, headers=headers) as resp:
                assert resp.status == 202
                asked.append((await resp.json())["task_id"])
            await answer_to(client, asked[-1])
            bobs = await bob.ask("bob's")
            await answer_to(bob, bobs["task_id"])

            assert (await emit(client, "ai-delete-my-data", {"confirm": True})) == {
                "deleted": {"conversations": 2, "tasks": 3}}
            assert (await emit(client, "ai-conversations", {})) == {"conversations": [], "next_before": None}
            for task_id in asked:
                status, _ = await rest(http, stack, stack.cookie, "GET", f"/tasks/{task_id}")
                assert status == 404
            again = await client.ask("still logged in")
            await answer_to(client, again["task_id"])
            assert len((await emit(bob, "ai-conversations", {}))["conversations"]) == 1


@pytest.mark.parametrize("event,args,names", [
    ("ai-conversations", ("x",), "ai-conversations"),
    ("ai-conversations", ({"limit": 0},), "limit"),
    ("ai-conversations", ({"limit": 101},), "limit"),
    ("ai-conversations", ({"limit": "5"},), "limit"),
    ("ai-conversations", ({"limit": True},), "limit"),
    ("ai-conversations", ({"before": "yesterday"},), "before"),
    ("ai-conversation", (), "conversation_id"),
    ("ai-conversation", ({},), "conversation_id"),
    ("ai-conversation", ({"conversation_id": 5},), "conversation_id"),
    ("ai-conversation", ({"conversation_id": "../" + UNKNOWN_ID},), "conversation_id"),
    ("ai-conversation", ({"conversation_id": UNKNOWN_ID}, 2), "conversation_id"),
    ("ai-conversation-delete", ({"conversation_id": UNKNOWN_ID.upper()},), "conversation_id"),
    ("ai-conversation-delete", ([UNKNOWN_ID],), "conversation_id"),
    ("ai-delete-my-data", (), "confirm"),
    ("ai-delete-my-data", ({"confirm": "yes"},), "confirm"),
    ("ai-query", ({"text": "hi", "conversation_id": 12},), "conversation_id"),
    ("ai-query", ({"text": "hi", "conversation_id": "x" * 32},), "conversation_id"),
])
async def test_bad_arguments_get_a_clear_error(pki: Pki, broker: RunningBroker, event: str, args: tuple[Any, ...],
                                               names: str) -> None:
    """Each malformed argument gets bad_request naming what is wrong; nothing is queued or deleted."""
    async with local_stack(pki, broker, workers=0) as stack, chat_client(pki, stack.url, cookie=stack.cookie) as client:
        kept = await client.ask("kept")  # no worker: stays queued
        ack = await emit(client, event, *args)
        assert ack["error"]["code"] == "bad_request", ack
        assert names in ack["error"]["message"], ack
        assert list(stack.master.dispatcher.tasks) == [kept["task_id"]]
        listed = await emit(client, "ai-conversations")
        assert [c["conversation_id"] for c in listed["conversations"]] == [kept["conversation_id"]]


async def test_retention_deletes_conversations_not_used_for_the_set_days(
        pki: Pki, broker: RunningBroker, caplog: pytest.LogCaptureFixture) -> None:
    """With 2 retention days, a conversation (and an API task) 3 days old is deleted and logged; a recent one stays."""
    overrides = {"conversation_retention_days": 2, "conversation_retention_interval_s": 0.2}
    async with local_stack(pki, broker, workers=1, master_overrides=overrides) as stack, \
            chat_client(pki, stack.url, cookie=stack.cookie) as client, raw_session(pki) as http:
        old = await client.ask("old question")
        await answer_to(client, old["task_id"])
        recent = await client.ask("recent question")
        await answer_to(client, recent["task_id"])
        headers = {**session_header(stack.cookie), "X-CSRF-Token": await csrf_of(http, stack.url, stack.cookie)}
        async with http.post(stack.url + f"{API}/tasks", json={"text": "old api question"}, headers=headers) as resp:
            api_task = (await resp.json())["task_id"]
        await answer_to(client, api_task)
        await emit(client, "ai-conversations", {})  # flushes the journal: every row is in the store
        three_days_ago = time.time() - 3 * 86_400

        def age(conn: Any) -> None:
            with conn:
                conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?",
                             (three_days_ago, old["conversation_id"]))
                conn.execute("UPDATE tasks SET finished_at = ? WHERE id = ?", (three_days_ago, api_task))

        with caplog.at_level(logging.INFO, logger="master.retention"):
            await stack.master.db.run(age)
            for _ in range(100):
                gone = await emit(client, "ai-conversation", {"conversation_id": old["conversation_id"]})
                if "error" in gone:
                    break
                await asyncio.sleep(0.1)
            assert gone["error"]["code"] == "not_found"
            await wait_until(lambda: "retention: deleted" in caplog.text, what="the retention log line")
        assert "retention: deleted 1 conversations and 2 tasks not used for 2 days" in caplog.text
        listed = await emit(client, "ai-conversations", {})
        assert [c["conversation_id"] for c in listed["conversations"]] == [recent["conversation_id"]]
        status, _ = await rest(http, stack, stack.cookie, "GET", f"/tasks/{api_task}")
        assert status == 404
        status, _ = await rest(http, stack, stack.cookie, "GET", f"/tasks/{recent['task_id']}")
        assert status == 200
