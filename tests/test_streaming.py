"""Answers as they are written: chunks over the real stack (gRPC -> master -> Socket.IO), refusals, Stop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from common.rpc import worker_pb2, worker_pb2_grpc
from devstack.local_broker import RunningBroker
from master.dispatcher import Task
from master.task_journal import user_task
from common.tls import grpc_channel_credentials
from tests.fake_gemini import FakeGemini, fake_key, run_fake_gemini
from tests.login_helpers import csrf_of, raw_session, session_header
from tests.pki_helpers import Pki
from tests.stack_helpers import ChatClient, Stack, chat_client, local_stack, wait_until
from worker.metrics import TASKS_RUNNING

pytestmark = pytest.mark.integration
API = "/api/v1"


def channel(port: int, pki: Pki) -> grpc.aio.Channel:
    """A mutual-TLS channel to the master's gRPC port with a worker certificate (as a worker has)."""
    creds = grpc_channel_credentials(pki.tls("worker"))
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "localhost")])


async def call(http: aiohttp.ClientSession, method: str, url: str, token: str | None = None,
               json: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One REST call: (status, body)."""
    all_headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    async with http.request(method, url, json=json, headers=all_headers) as resp:
        return resp.status, await resp.json() if resp.content_type == "application/json" else await resp.text()


async def new_token(http: aiohttp.ClientSession, stack: Stack) -> str:
    """An API token of the stack's first user."""
    headers = {**session_header(stack.cookie), "X-CSRF-Token": await csrf_of(http, stack.url, stack.cookie)}
    status, body = await call(http, "POST", stack.url + f"{API}/tokens", json={"label": "stream"}, headers=headers)
    assert status == 201, body
    return str(body["token"])


def collect_chunks(client: ChatClient) -> asyncio.Queue[dict[str, Any]]:
    """Every `ai-response-chunk` the client gets, in order of arrival."""
    chunks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    assert client.sio is not None
    client.sio.on("ai-response-chunk", chunks.put_nowait)
    return chunks


async def ask_a_long_answer(client: ChatClient, fake: FakeGemini) -> tuple[
        asyncio.Queue[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Ask for a Gemini answer of 200 pieces 50 ms apart (still being written when the test acts) and wait for its
    first chunk; returns the chunk queue, the question's acknowledgement and that first chunk."""
    fake.stream_pieces = [f"word{i} " for i in range(200)]
    fake.piece_delay_s = 0.05
    chunks = collect_chunks(client)
    ack = await client.ask("a long answer")
    first = await asyncio.wait_for(chunks.get(), 10)
    return chunks, ack, first


def drain(queue: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the queue holds now."""
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


@contextlib.asynccontextmanager
async def gemini_stack(pki: Pki, broker: RunningBroker, tmp_path: Path, **kwargs: Any) -> AsyncIterator[tuple[Stack, FakeGemini]]:
    """The stack with one Gemini worker (real SDK) talking to the fake server."""
    key_file = tmp_path / "gemini_api_key"
    key_file.write_text(fake_key())
    async with run_fake_gemini() as fake:
        overrides = {"gemini_api_key_file": key_file, "gemini_base_url": fake.url, **kwargs.pop("worker_overrides", {})}
        async with local_stack(pki, broker, workers=1, worker_overrides=overrides, **kwargs) as stack:
            yield stack, fake


async def test_chunks_arrive_in_order_and_make_the_answer(pki: Pki, broker: RunningBroker) -> None:
    """Echo streams word by word: chunks come numbered 1, 2, ... before the answer and concatenate to it."""
    async with local_stack(pki, broker, workers=1, worker_overrides={"echo_latency_s": 0.6}) as stack, \
            chat_client(pki, stack.url, cookie=stack.cookie) as client:
        chunks = collect_chunks(client)
        ack = await client.ask("stream this answer please")
        response = await client.next_response()
        got = drain(chunks)
        assert response["event"] == "ai-response" and response["task_id"] == ack["task_id"]
        assert len(got) > 1, "the answer came in one piece: not streamed"
        assert [c["seq"] for c in got] == list(range(1, len(got) + 1))
        assert {c["task_id"] for c in got} == {ack["task_id"]}
        assert "".join(c["text"] for c in got) == response["answer"]


async def test_answer_that_comes_at_once_sends_no_chunk(pki: Pki, broker: RunningBroker) -> None:
    """Echo at 0 ms: the answer is whole before any chunk could go, so the browser gets only `ai-response`."""
    async with local_stack(pki, broker, workers=1) as stack, chat_client(pki, stack.url, cookie=stack.cookie) as client:
        chunks = collect_chunks(client)
        await client.ask("quick")
        assert (await client.next_response())["event"] == "ai-response"
        await client.ask("sentinel")  # a stray chunk of the first would have come before this answer
        assert (await client.next_response())["event"] == "ai-response"
        assert chunks.empty()


async def test_fast_model_chunks_are_coalesced(pki: Pki, broker: RunningBroker, tmp_path: Path) -> None:
    """400 pieces as fast as the fake can write them reach the browser as a few chunks, whole and in order."""
    async with gemini_stack(pki, broker, tmp_path) as (stack, fake), \
            chat_client(pki, stack.url, cookie=stack.cookie) as client:
        fake.stream_pieces = [f"p{i} " for i in range(400)]
        fake.piece_delay_s = 0.001  # a real pause between pieces (else the SDK may read them all at once)
        chunks = collect_chunks(client)
        await client.ask("flood me")
        response = await client.next_response()
        got = drain(chunks)
        assert response["answer"] == "".join(fake.stream_pieces)
        assert "".join(c["text"] for c in got) == response["answer"]
        assert [c["seq"] for c in got] == list(range(1, len(got) + 1))
        assert 1 <= len(got) <= 40, f"{len(got)} chunks for 400 pieces: not coalesced"
        assert fake.requests[0].path.endswith(":streamGenerateContent")


# -- refusals (as tests/test_results_grpc.py does for results) -----------------------------------------


async def held_task(stack: Stack, client: ChatClient) -> Task:
    """A question assigned to a worker that will not write anything during the test."""
    ack = await client.ask("who may write this?")
    d = stack.master.dispatcher
    await wait_until(lambda: d.tasks[ack["task_id"]].worker_id is not None, what="assignment")
    return d.tasks[ack["task_id"]]


def chunk_for(task: Task, text: str, **changes: Any) -> worker_pb2.TaskResult:
    fields: dict[str, Any] = {"task_id": task.task_id, "worker_id": task.worker_id or "", "token": task.token,
                              "chunk": text, "seq": 1}
    fields.update(changes)
    return worker_pb2.TaskResult(**fields)


async def send_on_stream(port: int, pki: Pki, message: worker_pb2.TaskResult) -> worker_pb2.Ack | None:
    """Write one chunk on a StreamResults call; the refusal Ack, or None when none came (accepted)."""
    async with channel(port, pki) as ch:
        call_ = worker_pb2_grpc.ResultServiceStub(ch).StreamResults(timeout=5)
        await call_.write(message)
        await call_.done_writing()
        ack = await call_.read()
        return None if ack is grpc.aio.EOF else ack


@pytest.mark.parametrize("forgery", ["wrong_token", "other_worker"])
async def test_forged_chunk_is_refused_and_never_reaches_the_browser(pki: Pki, broker: RunningBroker, forgery: str) -> None:
    """A chunk with a wrong token or from another worker: PERMISSION_DENIED on both calls; the browser gets none."""
    overrides = {"echo_latency_s": 60, "echo_first_token_s": 60, "drain_timeout_s": 0.1}
    async with local_stack(pki, broker, workers=2, capacity=1, worker_overrides=overrides) as stack, \
            chat_client(pki, stack.url, cookie=stack.cookie) as client:
        chunks = collect_chunks(client)
        task = await held_task(stack, client)
        if forgery == "wrong_token":
            forged = chunk_for(task, "FORGED", token=task.token[:-1] + ("A" if task.token[-1] != "A" else "B"))
        else:
            other = next(w.settings.worker_id for w in stack.workers if w.settings.worker_id != task.worker_id)
            forged = chunk_for(task, "FORGED", worker_id=other)
        port = stack.master.grpc_port
        async with channel(port, pki) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await worker_pb2_grpc.ResultServiceStub(ch).SubmitResult(forged, timeout=5)
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
        ack = await send_on_stream(port, pki, forged)
        assert ack is not None and (ack.chunk, ack.accepted, ack.refusal, ack.seq) == (True, False, "PERMISSION_DENIED", 1)
        assert await send_on_stream(port, pki, chunk_for(task, "SENTINEL")) is None  # control: accepted, no ack
        first = await asyncio.wait_for(chunks.get(), 10)
        assert (first["task_id"], first["seq"], first["text"]) == (task.task_id, 1, "SENTINEL")
        assert chunks.empty() and client.responses.empty()


# -- Stop ------------------------------------------------------------------------------------------------


async def stop(client: ChatClient, task_id: str) -> dict[str, Any]:
    assert client.sio is not None
    return await client.sio.call("ai-stop", {"task_id": task_id}, timeout=10)


async def test_stop_while_streaming_closes_the_model_stream_and_keeps_the_partial(
    pki: Pki, broker: RunningBroker, tmp_path: Path
) -> None:
    """Stop mid-answer: the model's stream closes (long before its 10 s end), the slot frees, the partial is kept."""
    async with gemini_stack(pki, broker, tmp_path, capacity=2) as (stack, fake), \
            chat_client(pki, stack.url, cookie=stack.cookie) as client:
        worker = stack.workers[0]
        chunks, ack, first = await ask_a_long_answer(client, fake)
        user_id = stack.master.dispatcher.tasks[ack["task_id"]].user_id
        assert worker.status().free_slots == 1 and TASKS_RUNNING._value.get() == 1
        stopped_at = time.monotonic()
        assert await stop(client, ack["task_id"]) == {"task_id": ack["task_id"], "state": "stopped"}
        # Stop -> MQTT cancel -> the worker cancels the call -> the SDK closes the stream: one event loop shares all of
        # it, so a loaded machine gets 5 s; the answer still had 9 s to run.
        await wait_until(lambda: fake.streams and fake.streams[0].ended is not None, timeout=5.0,
                         what="the model's stream to close")
        record = fake.streams[0]
        assert record.closed_by_client and record.ended is not None and record.ended - stopped_at < 5.0
        assert record.pieces_sent < len(fake.stream_pieces)
        await wait_until(lambda: worker.status().free_slots == 2, timeout=5, what="the worker's slot")
        assert TASKS_RUNNING._value.get() == 0
        registry = stack.master.dispatcher.registry
        await wait_until(lambda: registry.workers[worker.settings.worker_id].free_slots == 2, what="the master's view")
        outcome = await client.next_response()
        shown = first["text"] + "".join(c["text"] for c in drain(chunks))
        assert (outcome["event"], outcome["code"]) == ("ai-error", "stopped")
        assert outcome["partial"].startswith(shown) and outcome["partial"].startswith("word0 ")
        row: dict[str, Any] | None = None
        for _ in range(100):
            row = await stack.master.db.run(user_task, user_id, ack["task_id"])
            if row and row["state"] != "assigned":
                break
            await asyncio.sleep(0.05)
        assert row is not None and (row["state"], row["error"]["code"], row["answer"]) == (
            "failed", "stopped", outcome["partial"])
        # Nothing more for it: the next question's answer is the next thing the browser gets.
        fake.stream_pieces, fake.piece_delay_s = None, 0.0
        await client.ask("next")
        assert (await client.next_response())["answer"] == "Gemini says: next"
        assert all(c["task_id"] != ack["task_id"] for c in drain(chunks))


async def test_stop_while_queued_removes_the_task(pki: Pki, broker: RunningBroker) -> None:
    """Stop a question still waiting for a slot: it leaves the queue, the user gets `cancelled`, the other runs on."""
    overrides = {"echo_latency_s": 60, "echo_first_token_s": 60, "drain_timeout_s": 0.1}
    async with local_stack(pki, broker, workers=1, capacity=1, worker_overrides=overrides) as stack, \
            chat_client(pki, stack.url, cookie=stack.cookie) as client:
        running = await held_task(stack, client)
        queued = await client.ask("waiting")
        assert stack.master.dispatcher.queued == 1
        assert await stop(client, queued["task_id"]) == {"task_id": queued["task_id"], "state": "cancelled"}
        outcome = await client.next_response()
        assert (outcome["task_id"], outcome["code"]) == (queued["task_id"], "cancelled") and "partial" not in outcome
        assert stack.master.dispatcher.queued == 0 and running.task_id in stack.master.dispatcher.tasks


async def test_stop_of_another_users_task_is_not_found(pki: Pki, broker: RunningBroker) -> None:
    """User B stopping user A's running task gets the same not_found as for a missing task; A's task goes on."""
    overrides = {"echo_latency_s": 60, "echo_first_token_s": 60, "drain_timeout_s": 0.1}
    async with local_stack(pki, broker, workers=1, capacity=1, worker_overrides=overrides) as stack, \
            chat_client(pki, stack.url, cookie=stack.cookie) as a:
        task = await held_task(stack, a)
        async with chat_client(pki, stack.url, cookie=await stack.login(await stack.new_user())) as b:
            theirs, missing = await stop(b, task.task_id), await stop(b, "0" * 32)
        assert theirs == missing and theirs["error"]["code"] == "not_found"
        assert task.task_id in stack.master.dispatcher.tasks and not task.abandoned


async def test_delete_running_task_stops_it_with_the_partial(pki: Pki, broker: RunningBroker, tmp_path: Path) -> None:
    """DELETE /api/v1/tasks/{id} while streaming: 204, the stream closes, the task is stopped with the partial."""
    async with gemini_stack(pki, broker, tmp_path) as (stack, fake), raw_session(pki) as http:
        fake.stream_pieces = [f"w{i} " for i in range(200)]
        fake.piece_delay_s = 0.05
        token = await new_token(http, stack)
        _, body = await call(http, "POST", stack.url + f"{API}/tasks", token, json={"text": "long"})
        task = stack.master.dispatcher.tasks[body["task_id"]]
        await wait_until(lambda: len(task.partial) > 0, what="the first chunk")
        assert (await call(http, "DELETE", stack.url + f"{API}/tasks/{task.task_id}", token))[0] == 204
        await wait_until(lambda: fake.streams[0].ended is not None, timeout=5.0, what="the model's stream to close")
        await wait_until(lambda: task.task_id not in stack.master.dispatcher.tasks, what="the stopped result")
        status, result = await call(http, "GET", stack.url + f"{API}/tasks/{task.task_id}", token)
        assert status == 200
        assert result["state"] == "failed" and result["error"]["code"] == "stopped"
        assert result["answer"].startswith("w0 ") and len(result["answer"]) < len("".join(fake.stream_pieces))


# -- reconnect ---------------------------------------------------------------------------------------------


async def test_reconnect_mid_answer_gets_the_text_so_far(pki: Pki, broker: RunningBroker) -> None:
    """A new connection mid-answer: `ai-partial` gives the text so far (seq n); chunks n+1... complete it."""
    # The answer takes 5 s: still open after a second connection's TLS and Socket.IO handshakes on a loaded machine.
    async with local_stack(pki, broker, workers=1, worker_overrides={"echo_latency_s": 5.0}) as stack, \
            chat_client(pki, stack.url, cookie=stack.cookie) as first:
        first_chunks = collect_chunks(first)
        ack = await first.ask("reload in the middle")
        await asyncio.wait_for(first_chunks.get(), 10)
        async with chat_client(pki, stack.url, cookie=stack.cookie) as second:
            later = collect_chunks(second)
            assert second.sio is not None
            partial = await second.sio.call("ai-partial", {}, timeout=10)
            [open_task] = partial["tasks"]
            assert (open_task["task_id"], open_task["prompt"]) == (ack["task_id"], "reload in the middle")
            assert open_task["seq"] >= 1 and open_task["text"].startswith("[offline")
            response = await second.next_response()
            rest = [c for c in drain(later) if c["seq"] > open_task["seq"]]
            assert [c["seq"] for c in rest] == list(range(open_task["seq"] + 1, open_task["seq"] + 1 + len(rest)))
            assert open_task["text"] + "".join(c["text"] for c in rest) == response["answer"]
