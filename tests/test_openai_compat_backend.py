"""The OpenAI-compatible backend (plain httpx2) against the local fake chat completions server."""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from common.secret_files import ConfigError, RotatingSecret
from tests.fake_openai import FakeOpenAI, Reply, error_body, fake_openai_key, run_fake_openai
from tests.stack_helpers import wait_until
from worker.backends.base import ModelError
from worker.backends.openai_compat import OpenAICompatBackend, retry_after_s

pytestmark = pytest.mark.integration


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with run_fake_openai() as server:
        yield server


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "openai_api_key"
    path.write_text(fake_openai_key() + "\n")
    os.chmod(path, 0o600)
    return path


def backend(key_file: Path | None, fake: FakeOpenAI, **kw: object) -> OpenAICompatBackend:
    key = RotatingSecret("OPENAI_API_KEY_FILE", key_file) if key_file else None
    return OpenAICompatBackend(key, "gpt-test", base_url=fake.url, backoff_base_s=0.01, **kw)  # type: ignore[arg-type]


async def collect(b: OpenAICompatBackend, prompt: str, model: str = "") -> list[str]:
    return [piece async for piece in b.stream(prompt, model)]


async def test_generate_returns_the_answer_and_sends_the_bearer_key(key_file: Path, fake: FakeOpenAI) -> None:
    """A 200 answer comes back as text; the request went to /v1/chat/completions with the key as a Bearer token."""
    b = backend(key_file, fake)
    try:
        assert await b.generate("what is TLS?", "") == "OpenAI says: what is TLS?"
    finally:
        await b.aclose()
    [req] = fake.requests
    assert req.path == "/v1/chat/completions" and req.model == "gpt-test" and not req.stream
    assert req.authorization == f"Bearer {key_file.read_text().strip()}"


async def test_generate_without_a_key_file_sends_no_authorization(fake: FakeOpenAI) -> None:
    """A local server (Ollama, llama.cpp) needs no key: with none configured, no Authorization header is sent."""
    b = backend(None, fake)
    try:
        assert await b.generate("local?", "") == "OpenAI says: local?"
    finally:
        await b.aclose()
    assert fake.requests[0].authorization is None


async def test_stream_yields_the_pieces_in_order(key_file: Path, fake: FakeOpenAI) -> None:
    """`stream: true`: each SSE data line's delta arrives as a piece, in order, and [DONE] ends the stream."""
    fake.script.append(Reply(pieces=["Hel", "lo ", "wor", "ld"]))
    b = backend(key_file, fake)
    try:
        assert await collect(b, "hi") == ["Hel", "lo ", "wor", "ld"]
        assert "".join(await collect(b, "say it whole")) == "OpenAI says: say it whole"
    finally:
        await b.aclose()
    assert [r.stream for r in fake.requests] == [True, True]


async def test_closing_the_stream_closes_the_http_response(key_file: Path, fake: FakeOpenAI) -> None:
    """Closing the generator after the first piece (as Stop does) closes the connection: the server sees it."""
    fake.script.append(Reply(pieces=[f"piece {i} " for i in range(100)], delay_s=0.05))
    b = backend(key_file, fake)
    try:
        pieces = b.stream("long answer", "")
        assert await anext(pieces) == "piece 0 "
        await pieces.aclose()  # type: ignore[attr-defined]
        await wait_until(lambda: fake.closed_early == 1, timeout=5, what="the server to see the stream closed")
    finally:
        await b.aclose()


async def test_rate_limit_is_retried_after_the_retry_after_seconds(key_file: Path, fake: FakeOpenAI) -> None:
    """429 with Retry-After: 1, then 200: retried no sooner than the server asked, then answered."""
    fake.script.append(Reply(429, error_body("slow down", "rate_limit_exceeded"), {"Retry-After": "1"}))
    b = backend(key_file, fake)
    try:
        assert await b.generate("retry me", "") == "OpenAI says: retry me"
    finally:
        await b.aclose()
    assert len(fake.requests) == 2
    assert fake.requests[1].at - fake.requests[0].at >= 1.0  # the backoff alone would be ~0.01 s


async def test_rate_limit_in_a_stream_is_retried_after_an_http_date(key_file: Path, fake: FakeOpenAI) -> None:
    """429 with Retry-After as an HTTP date, on a streaming call: retried at that date, then streamed."""
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1 to 2 s from now
    fake.script.append(Reply(429, error_body("slow down"), {"Retry-After": when}))
    b = backend(key_file, fake)
    try:
        assert "".join(await collect(b, "later")) == "OpenAI says: later"
    finally:
        await b.aclose()
    assert len(fake.requests) == 2 and fake.requests[1].at - fake.requests[0].at >= 0.9


async def test_retry_after_beyond_the_limit_is_not_waited_for(key_file: Path, fake: FakeOpenAI) -> None:
    """A Retry-After longer than the backoff limit: one request, then rate_limited at once."""
    fake.script.append(Reply(429, error_body("quota"), {"Retry-After": "3600"}))
    b = backend(key_file, fake)
    with pytest.raises(ModelError) as excinfo:
        await b.generate("x", "")
    await b.aclose()
    assert len(fake.requests) == 1 and excinfo.value.code == "rate_limited"


async def test_refused_key_is_invalid_api_key_without_retry(key_file: Path, fake: FakeOpenAI) -> None:
    """401 (with the key echoed in the body): one request only; invalid_api_key, and no key in the error."""
    key = key_file.read_text().strip()
    fake.script.append(Reply(401, error_body(f"Incorrect API key provided: {key}", code="invalid_api_key")))
    b = backend(key_file, fake)
    with pytest.raises(ModelError) as excinfo:
        await b.generate("hello", "")
    await b.aclose()
    assert len(fake.requests) == 1
    assert excinfo.value.code == "invalid_api_key" and "refused the API key" in excinfo.value.user_message
    assert key not in str(excinfo.value)


async def test_forbidden_stream_is_invalid_api_key_without_retry(key_file: Path, fake: FakeOpenAI) -> None:
    """403 on a streaming call: one request, invalid_api_key, nothing yielded."""
    fake.script.append(Reply(403, error_body("forbidden")))
    b = backend(key_file, fake)
    with pytest.raises(ModelError) as excinfo:
        await collect(b, "hello")
    await b.aclose()
    assert len(fake.requests) == 1 and excinfo.value.code == "invalid_api_key"


async def test_server_errors_are_retried_then_reported(key_file: Path, fake: FakeOpenAI) -> None:
    """503 on every attempt: `max_attempts` requests, then model_unavailable."""
    fake.script.extend([Reply(503, error_body("overloaded", "server_error"))] * 3)
    b = backend(key_file, fake, max_attempts=3)
    with pytest.raises(ModelError) as excinfo:
        await b.generate("x", "")
    await b.aclose()
    assert len(fake.requests) == 3 and excinfo.value.code == "model_unavailable"


async def test_unknown_model_on_the_server_is_model_unavailable(key_file: Path, fake: FakeOpenAI) -> None:
    """404 from the server (model not found): model_unavailable, not retried."""
    fake.script.append(Reply(404, error_body("The model does not exist", code="model_not_found")))
    b = backend(key_file, fake)
    with pytest.raises(ModelError) as excinfo:
        await b.generate("x", "")
    await b.aclose()
    assert len(fake.requests) == 1 and excinfo.value.code == "model_unavailable"


async def test_model_not_offered_is_refused_without_a_request(key_file: Path, fake: FakeOpenAI) -> None:
    """A model this worker does not offer: model_unavailable, and no request is sent."""
    b = backend(key_file, fake, models=("gpt-other",))
    with pytest.raises(ModelError) as excinfo:
        await b.generate("x", "gpt-imaginary")
    assert await b.generate("x", "gpt-other") == "OpenAI says: x"
    await b.aclose()
    assert excinfo.value.code == "model_unavailable" and [r.model for r in fake.requests] == ["gpt-other"]


async def test_replaced_key_file_is_used_by_the_next_request(key_file: Path, fake: FakeOpenAI) -> None:
    """Rotation without restart: after the key file changes, the next request carries the new key."""
    b = backend(key_file, fake)
    try:
        await b.generate("one", "")
        new_key = fake_openai_key()
        tmp = key_file.with_suffix(".new")
        tmp.write_text(new_key + "\n")
        os.replace(tmp, key_file)  # how a secret update lands: a new file at the same path
        await collect(b, "two")
    finally:
        await b.aclose()
    assert fake.requests[0].authorization != f"Bearer {new_key}"
    assert fake.requests[1].authorization == f"Bearer {new_key}"


def test_retry_after_parses_seconds_and_http_dates() -> None:
    """Retry-After: delta-seconds and HTTP dates give a delay; a past date gives 0; garbage gives None."""
    now = 1_700_000_000.0
    assert retry_after_s("7", now) == 7.0
    assert retry_after_s(email.utils.formatdate(now + 30, usegmt=True), now) == pytest.approx(30.0)
    assert retry_after_s(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    assert retry_after_s("soon", now) is None and retry_after_s(None, now) is None


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    """OPENAI_API_KEY_FILE naming a file that does not exist stops the backend at start with the setting and path."""
    with pytest.raises(ConfigError, match=r"OPENAI_API_KEY_FILE=.*gone does not exist"):
        OpenAICompatBackend(RotatingSecret("OPENAI_API_KEY_FILE", tmp_path / "gone"))
