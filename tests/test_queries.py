"""master/queries.py: what the browser sends is turned into a question, or refused with a clear message."""

from __future__ import annotations

from typing import Any

import pytest

from master.queries import MAX_MODEL_NAME_CHARS, Query, QueryRejected, parse_query


@pytest.mark.parametrize("data, expected", [
    ("hello", Query("hello", "default-model")),
    ({"text": "hello"}, Query("hello", "default-model")),
    ({"text": "hello", "model": "gemini-2.5-pro"}, Query("hello", "gemini-2.5-pro")),
    ({"text": "x" * 10, "model": ""}, Query("x" * 10, "default-model")),
])
def test_valid_query_is_parsed(data: Any, expected: Query) -> None:
    """A plain string or a {text, model} object becomes a question; no model means the default."""
    assert parse_query(data, max_prompt_chars=10, default_model="default-model") == expected


@pytest.mark.parametrize("data", [None, 42, [], ["hello"], {}, {"text": 5}, {"text": "   "}, "", {"model": "m"}])
def test_query_without_text_is_a_bad_request(data: Any) -> None:
    """Anything that is not non-empty text is refused as bad_request."""
    with pytest.raises(QueryRejected) as refused:
        parse_query(data, max_prompt_chars=100)
    assert refused.value.code == "bad_request" and "non-empty question" in refused.value.message


@pytest.mark.parametrize("model", [5, None, "m" * (MAX_MODEL_NAME_CHARS + 1)])
def test_bad_model_name_is_a_bad_request(model: Any) -> None:
    """A model that is not short text is refused, naming the limit."""
    with pytest.raises(QueryRejected) as refused:
        parse_query({"text": "hi", "model": model}, max_prompt_chars=100)
    assert refused.value.code == "bad_request" and str(MAX_MODEL_NAME_CHARS) in refused.value.message


def test_question_over_the_limit_names_its_length_and_the_limit() -> None:
    """One character over the limit is refused with both numbers, so the asker knows how much to cut."""
    with pytest.raises(QueryRejected) as refused:
        parse_query("x" * 11, max_prompt_chars=10)
    assert refused.value.code == "prompt_too_long"
    assert "11 characters" in refused.value.message and "limit is 10" in refused.value.message


def test_question_at_the_limit_is_accepted() -> None:
    """Control for the limit: exactly max_prompt_chars is accepted."""
    assert parse_query("x" * 10, max_prompt_chars=10).text == "x" * 10


@pytest.mark.parametrize("data", ["a\ud800b", {"text": "ok", "model": "m\udfff"}])
def test_lone_surrogate_is_refused_at_the_edge(data: Any) -> None:
    """Text that cannot be UTF-8 (a lone surrogate) is refused before anything is queued."""
    with pytest.raises(QueryRejected) as refused:
        parse_query(data, max_prompt_chars=100)
    assert refused.value.code == "bad_request"
