"""The whole chat over real TLS hops: Socket.IO/HTTPS -> master -> MQTT -> workers -> gRPC -> browser."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devstack.local_broker import RunningBroker
from tests.fake_gemini import fake_key, invalid_key_body, run_fake_gemini
from tests.pki_helpers import Pki
from tests.stack_helpers import ChatClient, chat_client, https_session, local_stack, wait_until, worker_settings
from worker.service import run_worker

pytestmark = pytest.mark.integration


async def test_query_gets_the_workers_answer(pki: Pki, broker: RunningBroker) -> None:
    """One question over HTTPS (client verifies our CA) comes back answered by the echo model."""
    async with local_stack(pki, broker) as stack, chat_client(pki, stack.url, cookie=stack.cookie) as client:
        ack = await client.ask({"text": "hello there"})
        assert set(ack) == {"task_id", "conversation_id"}  # a question without one starts a conversation
        response = await client.next_response()
        assert isinstance(response.pop("finished_at"), float)  # server time, for "ai-sync" after a reconnect
        assert response == {
            "event": "ai-response",
            "task_id": ack["task_id"],
            "answer": "[offline echo model: no Gemini key configured] You said: hello there",
            "model": "",
            "conversation_id": ack["conversation_id"],
        }


async def test_ten_clients_fifty_in_flight_each_get_only_their_own(pki: Pki, broker: RunningBroker) -> None:
    """10 users x 5 queries, all in flight at once (workers slow): every answer reaches only its asker."""
    async with local_stack(pki, broker, workers=2, capacity=8, worker_overrides={"echo_latency_s": 0.2}) as stack:
        clients = [await _connect(pki, stack.url, await stack.login(await stack.new_user())) for _ in range(10)]
        try:
            asked: dict[int, dict[str, str]] = {}
            acks = await asyncio.gather(
                *(clients[c].ask(f"client {c} question {q}") for c in range(10) for q in range(5))
            )
            for n, ack in enumerate(acks):
                asked.setdefault(n // 5, {})[ack["task_id"]] = f"client {n // 5} question {n % 5}"
            assert stack.master.dispatcher.queued > 0  # 50 asked, 16 slots: really in flight together
            for c, client in enumerate(clients):
                got = [await client.next_response(timeout=20) for _ in range(5)]
                assert {r["task_id"]: r["answer"].split("You said: ")[1] for r in got} == asked[c]
            # Nothing extra, nothing crossed: every task is settled, so a stray answer would reach its
            # client before the answer to one more (sentinel) question on the same connection.
            sentinels = await asyncio.gather(*(client.ask(f"client {c} sentinel") for c, client in enumerate(clients)))
            for c, (client, ack) in enumerate(zip(clients, sentinels)):
                last = await client.next_response(timeout=20)
                assert (last["task_id"], last["answer"].split("You said: ")[1]) == (ack["task_id"], f"client {c} sentinel")
                assert client.responses.empty()
        finally:
            for client in clients:
                await client.close()


async def _connect(pki: Pki, url: str, cookie: str) -> ChatClient:
    """A connected chat client logged in with `cookie` (closed by the caller)."""
    client = ChatClient(pki, cookie=cookie)
    await client.connect(url)
    return client


@pytest.mark.parametrize(
    ("payload", "code"),
    [("", "bad_request"), ({"text": 5}, "bad_request"), (["x"], "bad_request"), ("x" * 8001, "prompt_too_long")],
)
async def test_bad_query_gets_a_clear_error_and_no_task(pki: Pki, broker: RunningBroker, payload: object, code: str) -> None:
    """Empty, non-text or oversized questions are refused at the edge with a message that says the fix."""
    async with local_stack(pki, broker, workers=1) as stack, chat_client(pki, stack.url, cookie=stack.cookie) as client:
        ack = await client.ask(payload)
        assert ack["error"]["code"] == code and ack["error"]["message"]
        if code == "prompt_too_long":
            assert "8001 characters; the limit is 8000" in ack["error"]["message"]
        assert stack.master.dispatcher.tasks == {}


async def test_dead_worker_task_is_requeued_to_a_live_one(pki: Pki, broker: RunningBroker) -> None:
    """A worker that goes offline mid-task: its task is handed to another worker and answered."""
    async with local_stack(
        pki, broker, workers=1, capacity=1, worker_overrides={"echo_latency_s": 30, "drain_timeout_s": 0.1}
    ) as slow:
        async with chat_client(pki, slow.url, cookie=slow.cookie) as client:
            dispatcher = slow.master.dispatcher
            ack = await client.ask("survive a dead worker")
            await wait_until(lambda: dispatcher.tasks[ack["task_id"]].worker_id is not None, what="assignment")
            first = dispatcher.tasks[ack["task_id"]].worker_id
            # A fresh fast worker joins, then the slow one dies (its last will / offline status).
            ws = worker_settings(pki, broker, slow.master.grpc_port, "fast-" + first[-8:], capacity=2)
            async with run_worker(ws):
                await wait_until(lambda: ws.worker_id in dispatcher.registry.workers, what="fast worker")
                await slow.workers[0].bus.stop()
                response = await client.next_response(timeout=15)
                assert response["event"] == "ai-response" and response["task_id"] == ack["task_id"]
                assert dispatcher.registry.workers[first].state == "offline"


async def test_healthz_reports_mqtt_and_workers(pki: Pki, broker: RunningBroker) -> None:
    """/healthz says ok with the broker connected and counts live workers."""
    async with local_stack(pki, broker, workers=2) as stack:
        async with https_session(pki.tls()) as http, http.get(stack.url + "/healthz") as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["status"] == "ok" and body["mqtt"] is True and body["workers"] == 2


async def test_gemini_answer_and_error_reach_the_browser_without_the_key(
    pki: Pki, broker: RunningBroker, tmp_path: Path
) -> None:
    """Gemini backend (real SDK, fake server): an answer arrives; a bad key is a clear error without the key."""
    key = fake_key()
    key_file = tmp_path / "gemini_api_key"
    key_file.write_text(key)
    async with run_fake_gemini() as fake:
        overrides = {"gemini_api_key_file": key_file, "gemini_base_url": fake.url}
        async with local_stack(pki, broker, workers=1, worker_overrides=overrides) as stack:
            async with chat_client(pki, stack.url, cookie=stack.cookie) as client:
                await client.ask("ping")
                ok = await client.next_response()
                assert ok["event"] == "ai-response" and ok["answer"] == "Gemini says: ping"
                fake.script.append((400, invalid_key_body(echo_key=key)))
                await client.ask("again")
                err = await client.next_response()
                assert err["event"] == "ai-error" and err["code"] == "invalid_api_key"
                assert key not in str(err) and "key was refused" in err["message"]
        assert [r.api_key for r in fake.requests] == [key, key]
