"""master/response_cache.py: hits, misses, TTL, LRU bound, per-user keys, no errors; and over the real stack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from devstack.local_broker import RunningBroker
from master.dispatcher import Outcome, Task
from master.response_cache import ResponseCache, normalise
from tests.pki_helpers import Pki
from tests.stack_helpers import chat_client, https_session, local_stack
from tests.api_helpers import API, answered, call, new_token
from worker.backends.base import ModelError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lookups(result: str) -> float:
    return REGISTRY.get_sample_value("aisys_response_cache_total", {"result": result}) or 0.0


def finished(cache: ResponseCache, user_id: int, prompt: str, outcome: Outcome, model: str = "m") -> None:
    cache.finished(Task("t", f"user-{user_id}", prompt, model, 1, 0.0, user_id=user_id), outcome)


def test_answer_is_a_hit_until_its_ttl_ends() -> None:
    """A finished answer is found for the same user, model and prompt until ttl_s has passed; then it is a miss."""
    clock = Clock()
    cache = ResponseCache(ttl_s=60, clock=clock)
    hits, misses = lookups("hit"), lookups("miss")
    assert cache.get(1, "m", "what is TLS?") is None
    finished(cache, 1, "what is TLS?", Outcome("t", answer="A protocol.", model="m-001"))
    hit = cache.get(1, "m", "what is TLS?")
    assert hit is not None and (hit.answer, hit.model) == ("A protocol.", "m-001")
    clock.now += 59.9
    assert cache.get(1, "m", "what is TLS?") is not None
    clock.now += 0.1
    assert cache.get(1, "m", "what is TLS?") is None and len(cache) == 0
    assert (lookups("hit") - hits, lookups("miss") - misses) == (2, 2)


def test_whitespace_and_unicode_form_do_not_matter_but_case_and_model_do() -> None:
    """Prompts equal after NFC and whitespace folding share an entry; another model or another case does not."""
    cache = ResponseCache(ttl_s=60)
    finished(cache, 1, "  what\tis\n TLS? ", Outcome("t", answer="A"))
    assert cache.get(1, "m", "what is TLS?") is not None
    assert normalise("caf\u0065\u0301") == normalise("caf\u00e9")
    assert cache.get(1, "other-model", "what is TLS?") is None
    assert cache.get(1, "m", "WHAT IS TLS?") is None


def test_entries_are_per_user_unless_shared() -> None:
    """By default another user's identical question misses; with shared=True it hits."""
    private, shared = ResponseCache(ttl_s=60), ResponseCache(ttl_s=60, shared=True)
    for cache in (private, shared):
        finished(cache, 1, "q", Outcome("t", answer="A"))
    assert private.get(2, "m", "q") is None and private.get(1, "m", "q") is not None
    assert shared.get(2, "m", "q") is not None


def test_errors_and_cached_answers_are_not_stored() -> None:
    """Error outcomes (even with text) and answers that came from the cache itself are not stored."""
    cache = ResponseCache(ttl_s=60)
    finished(cache, 1, "q", Outcome("t", error_code="invalid_api_key", error_message="The key was refused."))
    finished(cache, 1, "q2", Outcome("t", answer="partial", error_code="cancelled"))
    finished(cache, 1, "q3", Outcome("t", answer="A", cached=True))
    assert len(cache) == 0


def test_forget_user_drops_their_answers_even_when_shared() -> None:
    """After a user deletes their data, none of their answers comes back from the cache, shared or not."""
    for shared in (False, True):
        cache = ResponseCache(ttl_s=60, shared=shared)
        cache.put(1, "echo", "mine", "my answer", "echo")
        cache.put(2, "echo", "theirs", "their answer", "echo")
        assert cache.forget_user(1) == 1
        assert cache.get(1, "echo", "mine") is None and cache.get(2, "echo", "mine") is None
        assert cache.get(2, "echo", "theirs") is not None


def test_least_recently_used_entry_goes_first_when_full() -> None:
    """max_entries=2: after a, b, use of a, then c: b is gone, a and c stay."""
    cache = ResponseCache(ttl_s=60, max_entries=2)
    for prompt in ("a", "b"):
        finished(cache, 1, prompt, Outcome("t", answer=prompt.upper()))
    assert cache.get(1, "m", "a") is not None
    finished(cache, 1, "c", Outcome("t", answer="C"))
    assert [cache.get(1, "m", p) is not None for p in ("a", "b", "c")] == [True, False, True]


def test_off_by_default_never_stores_or_counts() -> None:
    """ttl_s=0 (the default setting): nothing is stored and lookups are not counted."""
    cache = ResponseCache(ttl_s=0)
    misses = lookups("miss")
    finished(cache, 1, "q", Outcome("t", answer="A"))
    assert cache.get(1, "m", "q") is None and len(cache) == 0 and lookups("miss") == misses


class CountingBackend:
    """Echoes, except that a prompt starting with 'fail' fails; counts the calls."""

    name = "counting"
    calls: list[str] = []

    @property
    def models(self) -> tuple[str, ...]:
        return ("count",)

    async def generate(self, prompt: str, model: str) -> str:
        CountingBackend.calls.append(prompt)
        if prompt.startswith("fail"):
            raise ModelError("rate_limited", "Slow down.")
        return f"counted: {prompt}"

    async def stream(self, prompt: str, model: str) -> AsyncIterator[str]:
        yield await self.generate(prompt, model)

    async def aclose(self) -> None:
        return None


@pytest.mark.integration
async def test_repeated_question_is_answered_from_the_cache(pki: Pki, broker: RunningBroker) -> None:
    """A repeat is answered cached (chat and REST) without the worker; another user's repeat and errors are not."""
    CountingBackend.calls = []
    async with local_stack(pki, broker, workers=1, backend_factory=CountingBackend,
                           master_overrides={"response_cache_ttl_s": 60}) as stack:
        hits = lookups("hit")
        async with chat_client(pki, stack.url, cookie=stack.cookie) as client:
            await client.ask({"text": "what is mTLS?", "model": "count"})
            first = await client.next_response()
            second_ack = await client.ask({"text": "what  is mTLS? ", "model": "count"})
            second = await client.next_response()
            assert "cached" not in first and second["cached"] is True
            assert (second["task_id"], second["answer"]) == (second_ack["task_id"], first["answer"])
            for _ in range(2):
                await client.ask({"text": "fail please", "model": "count"})
                assert (await client.next_response())["event"] == "ai-error"
        other = await stack.login(await stack.new_user())
        async with chat_client(pki, stack.url, cookie=other) as client:
            await client.ask({"text": "what is mTLS?", "model": "count"})
            assert "cached" not in await client.next_response()
        assert CountingBackend.calls == ["what is mTLS?", "fail please", "fail please", "what is mTLS?"]
        assert lookups("hit") - hits == 1
        async with https_session(pki.tls()) as http:
            token = await new_token(http, stack, stack.cookie)
            status, body, _ = await call(http, "POST", stack.url + f"{API}/tasks", token,
                                         json={"text": "what is mTLS?", "model": "count"})
            assert status == 202
            task = await answered(http, stack, token, body["task_id"])
            assert task["cached"] is True and task["answer"] == first["answer"]
            status, body, _ = await call(http, "GET", stack.url + f"{API}/tasks/{first['task_id']}", token)
            assert status == 200 and body["cached"] is False
    assert len(CountingBackend.calls) == 4
