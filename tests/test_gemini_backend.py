"""The Gemini backend through the real google-genai SDK, against the local fake Gemini server."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fake_gemini import (
    FakeGemini,
    error_body,
    fake_key,
    invalid_key_body,
    rate_limited_body,
    run_fake_gemini,
)
from worker.backends.base import ModelError
from common.secret_files import ConfigError, RotatingSecret
from worker.backends.gemini import GeminiBackend

pytestmark = pytest.mark.integration


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with run_fake_gemini() as server:
        yield server


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "gemini_api_key"
    path.write_text(fake_key() + "\n")
    os.chmod(path, 0o600)
    return path


def backend(key_file: Path, fake: FakeGemini, **kw: object) -> GeminiBackend:
    key = RotatingSecret("GEMINI_API_KEY_FILE", key_file)
    return GeminiBackend(key, base_url=fake.url, backoff_base_s=0.01, **kw)  # type: ignore[arg-type]


async def test_success_returns_the_text_and_sends_the_key_header(key_file: Path, fake: FakeGemini) -> None:
    """A 200 answer comes back as text; the SDK sent the key in x-goog-api-key to generateContent."""
    b = backend(key_file, fake)
    try:
        assert await b.generate("what is TLS?", "") == "Gemini says: what is TLS?"
    finally:
        await b.aclose()
    [req] = fake.requests
    assert re.fullmatch(r"/v1(beta)?/models/gemini-2\.5-flash:generateContent", req.path), req.path
    assert req.api_key == key_file.read_text().strip()


async def test_invalid_key_is_a_clear_error_and_not_retried(key_file: Path, fake: FakeGemini) -> None:
    """400 API_KEY_INVALID: one request only; the error says the key was refused and holds no key."""
    key = key_file.read_text().strip()
    fake.script.append((400, invalid_key_body(echo_key=key)))
    b = backend(key_file, fake)
    with pytest.raises(ModelError) as excinfo:
        await b.generate("hello", "")
    await b.aclose()
    assert len(fake.requests) == 1
    assert excinfo.value.code == "invalid_api_key"
    assert "key was refused" in excinfo.value.user_message
    assert key not in str(excinfo.value) and key not in excinfo.value.user_message


async def test_rate_limit_then_success_is_retried_and_answered(key_file: Path, fake: FakeGemini) -> None:
    """429 with RetryInfo, then 200: retried after the server's delay, answered."""
    fake.script.append((429, rate_limited_body("0.05s")))
    b = backend(key_file, fake)
    try:
        assert await b.generate("retry me", "") == "Gemini says: retry me"
    finally:
        await b.aclose()
    assert len(fake.requests) == 2


async def test_server_errors_are_retried_then_reported(key_file: Path, fake: FakeGemini) -> None:
    """503 on every attempt: `max_attempts` requests, then a clear 'temporarily unavailable'."""
    fake.script.extend([(503, error_body(503, "UNAVAILABLE", "overloaded"))] * 3)
    b = backend(key_file, fake, max_attempts=3)
    with pytest.raises(ModelError) as excinfo:
        await b.generate("x", "")
    await b.aclose()
    assert len(fake.requests) == 3
    assert excinfo.value.code == "model_unavailable" and "temporarily unavailable" in excinfo.value.user_message


async def test_replaced_key_file_is_used_by_the_next_request(key_file: Path, fake: FakeGemini) -> None:
    """Rotation without restart: after the key file changes, the next request carries the new key."""
    b = backend(key_file, fake)
    try:
        await b.generate("one", "")
        new_key = fake_key()
        tmp = key_file.with_suffix(".new")
        tmp.write_text(new_key + "\n")
        os.replace(tmp, key_file)  # how a secret update lands: a new file at the same path
        await b.generate("two", "")
    finally:
        await b.aclose()
    assert fake.requests[0].api_key != new_key
    assert fake.requests[1].api_key == new_key


async def test_unknown_model_is_refused_without_a_request(key_file: Path, fake: FakeGemini) -> None:
    """A model the worker does not offer is a model_unavailable error, and no request is sent."""
    b = backend(key_file, fake)
    with pytest.raises(ModelError) as excinfo:
        await b.generate("x", "gemini-0-imaginary")
    await b.aclose()
    assert excinfo.value.code == "model_unavailable" and fake.requests == []


async def test_missing_key_file_is_a_clear_error(tmp_path: Path, fake: FakeGemini) -> None:
    """A key file that does not exist stops the backend at start with the setting and the path."""
    with pytest.raises(ConfigError, match=r"GEMINI_API_KEY_FILE=.*gone does not exist"):
        GeminiBackend(RotatingSecret("GEMINI_API_KEY_FILE", tmp_path / "gone"), base_url=fake.url)
