"""The offline model: a deterministic echo, with optional simulated latency."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

ECHO_MODEL = "echo"
_WORDS = re.compile(r"\S+\s*|\s+")


class EchoBackend:
    name = "echo"

    def __init__(self, latency_s: float = 0.0, models: tuple[str, ...] = (ECHO_MODEL,),
                 first_token_s: float | None = None) -> None:
        # latency_s: the whole answer's time; first_token_s: when its first word comes (streaming), else
        # the latency is spread evenly over the words.
        self.latency_s = latency_s
        self._models = models or (ECHO_MODEL,)
        self.first_token_s = first_token_s

    @property
    def models(self) -> tuple[str, ...]:
        """The names this worker advertises (ECHO_MODELS): several workers with different names test routing."""
        return self._models

    @staticmethod
    def answer(prompt: str) -> str:
        return f"[offline echo model: no Gemini key configured] You said: {prompt}"

    async def generate(self, prompt: str, model: str) -> str:
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        return self.answer(prompt)

    async def stream(self, prompt: str, model: str) -> AsyncIterator[str]:
        """The answer word by word (whitespace kept), the latency spread over the words."""
        words = _WORDS.findall(self.answer(prompt))
        for i, word in enumerate(words):
            delay = self._delay(i, len(words))
            if delay > 0:
                await asyncio.sleep(delay)
            yield word

    def _delay(self, i: int, n: int) -> float:
        """Seconds before word `i` of `n`: the first after first_token_s, the rest evenly until latency_s."""
        if self.first_token_s is None:
            return self.latency_s / n
        if i == 0:
            return self.first_token_s
        return max(0.0, self.latency_s - self.first_token_s) / max(1, n - 1)

    async def aclose(self) -> None:
        return None
