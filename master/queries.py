"""Validation of a question at the edge: what the browser sent, turned into text and a model or refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from master.fair_queue import PRIORITY_LEVELS

MAX_MODEL_NAME_CHARS = 128


@dataclass(frozen=True)
class Query:
    text: str
    model: str
    priority: str = "normal"  # a key of PRIORITY_LEVELS


class QueryRejected(Exception):
    """A question that is not queued; `code` is stable, `message` is shown to the asker."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_query(data: Any, max_prompt_chars: int, default_model: str = "") -> Query:
    """`data` is `"text"` or `{"text": ..., "model": ..., "priority": ...}`; raises QueryRejected with a clear message."""
    priority: Any = "normal"
    if isinstance(data, str):
        text, model = data, ""
    elif isinstance(data, dict):
        text, model, priority = data.get("text"), data.get("model", ""), data.get("priority", "normal")
    else:
        text, model = None, ""
    if not isinstance(text, str) or not text.strip():
        raise QueryRejected("bad_request", "Send a non-empty question as text.")
    if not _is_valid_text(text):
        raise QueryRejected("bad_request", "The question contains something that is not text (an unpaired "
                                           "surrogate code point). Remove it and send it again.")
    if not isinstance(model, str) or len(model) > MAX_MODEL_NAME_CHARS or not _is_valid_text(model):
        raise QueryRejected("bad_request", f"The model name must be text of at most {MAX_MODEL_NAME_CHARS} characters.")
    if len(text) > max_prompt_chars:
        raise QueryRejected(
            "prompt_too_long", f"The question has {len(text)} characters; the limit is {max_prompt_chars}. Shorten it."
        )
    if not isinstance(priority, str) or priority not in PRIORITY_LEVELS:
        raise QueryRejected("bad_request", "The priority must be one of high, normal, low (or left out: normal).")
    return Query(text, model or default_model, priority)


def _is_valid_text(value: str) -> bool:
    """Encodable as UTF-8: no lone surrogates (which JSON can carry but no worker or model can take)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
