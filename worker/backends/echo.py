"""The offline model: a deterministic echo, with optional simulated latency."""

from __future__ import annotations

import asyncio

ECHO_MODEL = "echo"


class EchoBackend:
    name = "echo"

    def __init__(self, latency_s: float = 0.0, models: tuple[str, ...] = (ECHO_MODEL,)) -> None:
        self.latency_s = latency_s
        self._models = models or (ECHO_MODEL,)

    @property
    def models(self) -> tuple[str, ...]:
        """The names this worker advertises (ECHO_MODELS): several workers with different names test routing."""
        return self._models

    async def generate(self, prompt: str, model: str) -> str:
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        return f"[offline echo model: no Gemini key configured] You said: {prompt}"

    async def aclose(self) -> None:
        return None
