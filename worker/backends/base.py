"""What every model backend provides, and the one error type it raises."""

from __future__ import annotations

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
