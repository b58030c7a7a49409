"""A worker with MODEL_BACKEND=openai, end to end: the chat answered by the fake OpenAI-compatible server,
and, with every process at DEBUG, the key in no log line even when the server echoes it back."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from devstack.local_broker import RunningBroker, free_port
from devstack.local_run import run_local_stack
from tests.fake_openai import Reply, error_body, fake_openai_in_thread, fake_openai_key, run_fake_openai
from tests.pki_helpers import Pki, make_pki
from tests.stack_helpers import ChatClient, chat_client, local_stack, login_cookie

pytestmark = pytest.mark.integration


async def test_worker_with_the_openai_backend_answers_the_chat(pki: Pki, broker: RunningBroker, tmp_path: Path) -> None:
    """MODEL_BACKEND=openai: the configured models are served, answered via the fake server; a 401 is invalid_api_key."""
    key = fake_openai_key()
    key_file = tmp_path / "openai_api_key"
    key_file.write_text(key + "\n")
    async with run_fake_openai() as fake:
        overrides = {"model_backend": "openai", "openai_base_url": fake.url, "openai_api_key_file": key_file,
                     "openai_model": "llama3.2", "openai_extra_models": "qwen2.5"}
        async with local_stack(pki, broker, workers=1, worker_overrides=overrides) as stack, \
                chat_client(pki, stack.url, cookie=stack.cookie) as client:
            [worker] = stack.workers
            assert worker.backend.models == ("llama3.2", "qwen2.5")
            ack = await client.ask({"text": "hello over http", "model": "qwen2.5"})
            response = await client.next_response(15)
            assert (response["event"], response["task_id"]) == ("ai-response", ack["task_id"])
            assert response["answer"] == "OpenAI says: hello over http" and response["model"] == "qwen2.5"
            fake.script.append(Reply(401, error_body(f"Incorrect API key provided: {key}", code="invalid_api_key")))
            await client.ask("this one is refused")
            refused = await client.next_response(15)
            assert (refused["event"], refused["code"]) == ("ai-error", "invalid_api_key")
            assert key not in str(refused)
    assert [r.model for r in fake.requests] == ["qwen2.5", "llama3.2"]
    assert all(r.authorization == f"Bearer {key}" for r in fake.requests)


async def test_openai_key_in_no_process_output_at_debug(tmp_path: Path) -> None:
    """Processes at DEBUG, the key in a prompt and echoed in 401/500 bodies: it is in no log and no browser error."""
    pki = make_pki(tmp_path)
    key = fake_openai_key()
    key_file = tmp_path / "openai_api_key"
    key_file.write_text(key + "\n")
    admin_password = "admin-" + os.urandom(12).hex()
    admin_file = tmp_path / "initial_admin_password"
    admin_file.write_text(admin_password + "\n")
    run_dir = tmp_path / "run"
    got: list[dict[str, str]] = []
    with fake_openai_in_thread() as fake:
        stack_cm = run_local_stack(
            workers=1, web_port=free_port(), pki_dir=pki.out, run_dir=run_dir, log_level="DEBUG",
            extra_env={"LOG_CONTENT": "true", "INITIAL_ADMIN_PASSWORD_FILE": str(admin_file),
                       "MODEL_BACKEND": "openai", "OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY_FILE": str(key_file),
                       "OPENAI_MODEL": "gpt-test"},
        )
        stack = await asyncio.to_thread(stack_cm.__enter__)
        try:
            client = ChatClient(pki, cookie=await login_cookie(pki, stack.url, "admin", admin_password))
            await client.connect(stack.url)
            try:
                await client.ask(f"please repeat {key}")
                got.append(await client.next_response(20))
                fake.script.append(Reply(401, error_body(f"Incorrect API key provided: {key}")))
                await client.ask("refused")
                got.append(await client.next_response(20))
                fake.script.extend([Reply(500, error_body(f"backend failed for key={key}", "server_error"))] * 4)
                await client.ask("fails too")
                got.append(await client.next_response(30))
            finally:
                await client.close()
        finally:
            await asyncio.to_thread(stack_cm.__exit__, None, None, None)
    assert [g["event"] for g in got] == ["ai-response", "ai-error", "ai-error"]
    assert [g.get("code") for g in got[1:]] == ["invalid_api_key", "model_unavailable"]
    assert len(fake.requests) >= 6 and all(r.authorization == f"Bearer {key}" for r in fake.requests)
    worker_log = (run_dir / "logs" / "worker-1.log").read_text()
    assert "level=DEBUG" in worker_log and "model call failed: HTTP 401" in worker_log  # DEBUG really on
    assert "***REDACTED***" in worker_log  # the prompt holding the key was logged, redacted
    for path in sorted((run_dir / "logs").glob("*.log")):
        assert key not in path.read_text(errors="replace"), f"the OpenAI key found in {path.name}"
    for event in got[1:]:
        assert key not in str(event)
