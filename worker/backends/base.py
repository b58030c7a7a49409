"""What every model backend provides, and the one error type it raises."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Protocol


class ModelError(Exception):
    """A model call failed; `code` is for machines, `user_message` for the person who asked."""

    def __init__(self, code: str, user_message: str) -> None:
        super().__init__(f"{code}: {user_message}")
        self.code = code
        self.user_message = user_message


class ModelBackend(Protocol):
    name: str

    @property
    def models(self) -> tuple[str, ...]: ...

    async def generate(self, prompt: str, model: str) -> str:
        """The whole answer to `prompt` from `model` ('' means the default model)."""
        ...

    def stream(self, prompt: str, model: str) -> AsyncIterator[str]:
        """The answer in pieces as the model writes them (an async generator); their concatenation is
        what `generate` would return. Closing or cancelling the iterator closes the upstream call."""
        ...

    async def aclose(self) -> None: ...


def offered_models(default_model: str, extra: tuple[str, ...]) -> tuple[str, ...]:
    """The models a backend offers: its default first, then the extra ones, each once."""
    return tuple(dict.fromkeys((default_model, *extra)))


def choose_model(model: str, default_model: str, offered: tuple[str, ...]) -> str:
    """The model a call uses ('' means the default); one not offered is a clear ModelError, before any request."""
    chosen = model or default_model
    if chosen not in offered:
        raise ModelError("model_unavailable", f"Model '{chosen}' is not offered here. Choose one of: {', '.join(offered)}.")
    return chosen


def jittered_backoff(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with jitter: between half and all of min(max_s, base_s * 2**attempt)."""
    ceiling = min(max_s, base_s * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)
