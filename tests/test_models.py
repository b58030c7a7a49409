"""Several models: questions go to a worker serving the chosen one, the page's picker and GET /api/v1/models list
what live workers serve (pushed again when that changes), and an unknown model is a clear error at once."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from devstack.local_broker import RunningBroker
from master.accounts import find_user
from master.api_tokens import create_token
from tests.browser_helpers import CHROMIUM, launch_chromium, log_in_page
from tests.login_helpers import raw_session, session_header
from tests.pki_helpers import Pki
from tests.stack_helpers import ChatClient, Stack, local_stack, wait_until, worker_settings
from worker.service import make_backend, run_worker

pytestmark = pytest.mark.integration
API = "/api/v1"


@contextlib.asynccontextmanager
async def extra_worker(stack: Stack, broker: RunningBroker, worker_id: str, models: str) -> Any:
    """One more echo worker advertising `models`, registered and idle when this yields; stopped at the end."""
    settings = worker_settings(stack.pki, broker, stack.master.grpc_port, worker_id, echo_models=models)
    async with run_worker(settings) as worker:
        registry = stack.master.dispatcher.registry
        await wait_until(lambda: worker_id in registry.workers and registry.workers[worker_id].state == "idle",
                         what=f"worker {worker_id} to register")
        yield worker


async def models_pushed(client: ChatClient) -> asyncio.Queue[dict[str, Any]]:
    """The `models` events this client receives from now on."""
    pushed: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    assert client.sio is not None
    client.sio.on("models", pushed.put_nowait)
    return pushed


async def get_json(stack: Stack, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with raw_session(stack.pki) as http, http.get(stack.url + path, headers=headers) as resp:
        return resp.status, await resp.json()


def test_echo_models_setting_names_what_the_echo_backend_advertises(pki: Pki, broker: RunningBroker,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """ECHO_MODELS=echo-a,echo-b (comma-separated) makes the echo backend advertise both; unset, just `echo`."""
    monkeypatch.setenv("ECHO_MODELS", " echo-a, echo-b ")
    assert make_backend(worker_settings(pki, broker, 1, "models-x", model_backend="echo")).models == ("echo-a", "echo-b")
    monkeypatch.delenv("ECHO_MODELS")
    assert make_backend(worker_settings(pki, broker, 1, "models-x", model_backend="echo")).models == ("echo",)


async def test_questions_go_to_a_worker_serving_their_model(pki: Pki, broker: RunningBroker) -> None:
    """Two workers with different models: each question is answered by the one serving its model, never the other."""
    async with local_stack(pki, broker, workers=1, worker_overrides={"echo_models": "echo-a"}) as stack, \
            extra_worker(stack, broker, "models-b", "echo-b"):
        worker_a = stack.workers[0].settings.worker_id
        registry = stack.master.dispatcher.registry
        client = ChatClient(pki, cookie=stack.cookie)
        await client.connect(stack.url)
        try:
            # Asked one at a time, so both workers are idle each time: without routing, the first one would win.
            for i, model in enumerate(["echo-b", "echo-a", "echo-b", "echo-b", "echo-a"]):
                ack = await client.ask({"text": f"q{i}", "model": model})
                answer = await client.next_response()
                assert answer["event"] == "ai-response" and answer["task_id"] == ack["task_id"]
                assert answer["model"] == model and answer["answer"].endswith(f"You said: q{i}")
            assert registry.workers[worker_a].done == 2
            assert registry.workers["models-b"].done == 3
        finally:
            await client.close()


async def test_unknown_model_is_refused_at_once_in_the_chat_and_the_api(pki: Pki, broker: RunningBroker) -> None:
    """A model no live worker serves: the ack and POST /tasks (422) both say `unknown_model` and list the served ones."""
    async with local_stack(pki, broker, workers=1, worker_overrides={"echo_models": "echo-a,echo-b"}) as stack:
        client = ChatClient(pki, cookie=stack.cookie)
        await client.connect(stack.url)
        try:
            ack = await client.ask({"text": "hi", "model": "echo-c"})
            assert ack["error"]["code"] == "unknown_model"
            assert "'echo-c'" in ack["error"]["message"] and "echo-a, echo-b" in ack["error"]["message"]
            assert stack.master.dispatcher.tasks == {}
            assert "task_id" in await client.ask({"text": "hi", "model": "echo-b"})  # control: a served one is taken
        finally:
            await client.close()
        token = await api_token(stack)
        async with raw_session(pki) as http, http.post(
                stack.url + f"{API}/tasks", json={"text": "hi", "model": "echo-c"},
                headers={"Authorization": f"Bearer {token}"}) as resp:
            body = await resp.json()
            assert resp.status == 422 and body["error"]["code"] == "unknown_model"


async def api_token(stack: Stack) -> str:
    """A personal API token of a new user."""
    account = await stack.new_user()
    user = await stack.master.db.run(find_user, account.name)
    assert user is not None
    _, token = await stack.master.db.run(create_token, user.id, "models test")
    return token


async def test_models_are_listed_and_pushed_when_the_set_changes(pki: Pki, broker: RunningBroker) -> None:
    """`ai-models` and GET /api/v1/models list the live workers' models; a worker coming or going pushes `models`."""
    async with local_stack(pki, broker, workers=1, worker_overrides={"echo_models": "echo-a"}) as stack:
        client = ChatClient(pki, cookie=stack.cookie)
        await client.connect(stack.url)
        try:
            pushed = await models_pushed(client)
            assert client.sio is not None
            assert await client.sio.call("ai-models", timeout=5) == {"models": ["echo-a"], "default": ""}
            async with extra_worker(stack, broker, "models-b", "echo-b,echo-a"):
                assert await asyncio.wait_for(pushed.get(), 10) == {"models": ["echo-a", "echo-b"], "default": ""}
                status, body = await get_json(stack, f"{API}/models", session_header(stack.cookie))
                assert status == 200 and body == {"models": ["echo-a", "echo-b"], "default": ""}
                status, body = await get_json(stack, f"{API}/models", {"Authorization": f"Bearer {await api_token(stack)}"})
                assert status == 200 and body["models"] == ["echo-a", "echo-b"]
            # The worker said offline as it stopped: echo-b is gone, and so is a question for it.
            assert await asyncio.wait_for(pushed.get(), 10) == {"models": ["echo-a"], "default": ""}
            assert (await client.ask({"text": "hi", "model": "echo-b"}))["error"]["code"] == "unknown_model"
        finally:
            await client.close()
        status, body = await get_json(stack, f"{API}/models", {})
        assert status == 401 and body["error"]["code"] == "not_logged_in"
        status, body = await get_json(stack, f"{API}/models", {"Authorization": "Bearer aisys_not-a-token"})
        assert status == 401 and body["error"]["code"] == "bad_token"


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/test.sh installs it as root)")
async def test_browser_picker_lists_the_models_and_routes_the_choice(pki: Pki, broker: RunningBroker) -> None:
    """In Chromium the picker lists both models, echo-b goes to its worker, a model nobody serves errs at once."""
    async with local_stack(pki, broker, workers=1, worker_overrides={"echo_models": "echo-a"}) as stack, \
            extra_worker(stack, broker, "models-b", "echo-b"), launch_chromium(pki) as browser:
        registry = stack.master.dispatcher.registry
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        account = await stack.new_user()
        await log_in_page(page, stack.url, account.name, account.password)
        await page.wait_for_selector("#model option[value='echo-b']", state="attached", timeout=10_000)
        options = await page.eval_on_selector_all("#model option", "os => os.map(o => [o.value, o.textContent])")
        assert options == [["", "Default model"], ["echo-a", "echo-a"], ["echo-b", "echo-b"]]

        await page.select_option("#model", "echo-b")
        await page.fill("#question", "routed by the picker")
        await page.click("#send")
        await page.wait_for_selector(".msg.ai >> text=model: echo-b", timeout=10_000)
        assert registry.workers["models-b"].done == 1 and registry.workers[stack.workers[0].settings.worker_id].done == 0

        # A choice no live worker serves (an option added by hand stands for a worker gone a moment ago).
        await page.evaluate("() => { const s = document.getElementById('model'); s.add(new Option('echo-c', 'echo-c')); s.value = 'echo-c'; }")
        await page.fill("#question", "for a model nobody serves")
        await page.click("#send")
        await page.wait_for_selector(".msg.error >> text=No worker serves the model 'echo-c'", timeout=5_000)
        assert errors == []
