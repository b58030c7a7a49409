"""The offline model: a deterministic echo, with optional simulated latency."""

from __future__ import annotations

import asyncio

ECHO_MODEL = "echo"


class EchoBackend:
    name = "echo"

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s

    @property
    def models(self) -> tuple[str, ...]:
        return (ECHO_MODEL,)

    async def generate(self, prompt: str, model: str) -> str:
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        return f"[offline echo model: no Gemini key configured] You said: {prompt}"

    async def aclose(self) -> None:
        return None
