"""Bad input from a Socket.IO client never escapes its handler: a clear error when an answer was asked for,
one log line per interval, and the other clients (and the same one) are served as before."""

from __future__ import annotations

import asyncio
import logging

import pytest

from devstack.local_broker import RunningBroker
from tests.conftest import Pki
from tests.stack_helpers import ChatClient, local_stack

pytestmark = pytest.mark.integration


async def test_lone_surrogate_gets_a_clear_error_and_no_task(pki: Pki, broker: RunningBroker) -> None:
    """"a\\ud800b" is refused in the acknowledgement; nothing is queued; a normal question still works."""
    async with local_stack(pki, broker, workers=1) as stack:
        client = ChatClient(pki, cookie=stack.cookie)
        await client.connect(stack.url)
        try:
            ack = await client.ask("a\ud800b")
            assert ack["error"]["code"] == "bad_request" and "surrogate" in ack["error"]["message"]
            assert stack.master.dispatcher.tasks == {}
            assert "task_id" in await client.ask("a normal question")
            assert (await client.next_response())["event"] == "ai-response"
        finally:
            await client.close()


async def test_unknown_model_is_refused_at_once_naming_the_served_ones(pki: Pki, broker: RunningBroker) -> None:
    """A model no live worker serves is an immediate error that lists the models served; no task waits forever."""
    async with local_stack(pki, broker, workers=1) as stack:
        client = ChatClient(pki, cookie=stack.cookie)
        await client.connect(stack.url)
        try:
            ack = await client.ask({"text": "hi", "model": "no-such-model"})
            assert ack["error"]["code"] == "unknown_model"
            assert "echo" in ack["error"]["message"] and stack.master.dispatcher.queued == 0
            assert "task_id" in await client.ask({"text": "hi", "model": "echo"})
        finally:
            await client.close()


async def test_client_event_named_disconnect_or_connect_is_ignored(pki: Pki, broker: RunningBroker) -> None:
    """Reserved names from a client run no handler: the pending questions stay, the connection stays, answers come."""
    async with local_stack(pki, broker, workers=1, worker_overrides={"echo_latency_s": 0.3}) as stack:
        client = ChatClient(pki, cookie=stack.cookie)
        await client.connect(stack.url)
        try:
            acks = [await client.ask(f"q{i}") for i in range(3)]
            assert client.sio is not None
            await client.sio.emit("disconnect")
            await client.sio.emit("connect", {"HTTP_COOKIE": "forged"})
            await asyncio.sleep(0.1)
            assert client.sio.connected and len(stack.master.chat.connections) == 1
            answers = [await client.next_response(timeout=10) for _ in acks]
            assert sorted(a["task_id"] for a in answers) == sorted(a["task_id"] for a in acks)
        finally:
            await client.close()


@pytest.mark.parametrize("args", [(), ("one", "two"), ({"text": "x"}, 5, None)])
async def test_wrong_argument_count_gets_an_error_acknowledgement(pki: Pki, broker: RunningBroker, args: tuple) -> None:
    """ai-query with 0, 2 or 3 arguments is answered with bad_request, not left to time out."""
    async with local_stack(pki, broker, workers=0) as stack:
        client = ChatClient(pki, cookie=stack.cookie)
        await client.connect(stack.url)
        try:
            assert client.sio is not None
            ack = await client.sio.call("ai-query", args if len(args) != 1 else args[0], timeout=5)
            assert ack["error"]["code"] == "bad_request"
        finally:
            await client.close()


async def test_unknown_event_gets_an_error_acknowledgement(pki: Pki, broker: RunningBroker) -> None:
    """An event the server does not know is answered (unknown_event) when the client asked for an answer."""
    async with local_stack(pki, broker, workers=0) as stack:
        client = ChatClient(pki, cookie=stack.cookie)
        await client.connect(stack.url)
        try:
            assert client.sio is not None
            ack = await client.sio.call("ai-delete-everything", {"x": 1}, timeout=5)
            assert ack["error"]["code"] == "unknown_event"
        finally:
            await client.close()


async def test_repeated_bad_input_is_logged_once_per_interval(
        pki: Pki, broker: RunningBroker, caplog: pytest.LogCaptureFixture) -> None:
    """200 bad questions from one client cost one log line, no traceback; its good question is still answered."""
    async with local_stack(pki, broker, workers=1) as stack:
        client = ChatClient(pki, cookie=stack.cookie)
        await client.connect(stack.url)
        try:
            with caplog.at_level(logging.INFO):
                for _ in range(200):
                    await client.ask({"text": 42})
                assert "task_id" in await client.ask("fine")
            lines = [r for r in caplog.records if r.name == "master.bad_input"]
            assert len(lines) == 1 and not any(r.exc_info for r in caplog.records)
        finally:
            await client.close()
