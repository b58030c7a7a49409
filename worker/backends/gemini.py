"""Google Gemini through the google-genai SDK: key from a file (re-read on change), retries, clear errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import AsyncIterator
from typing import Any

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from common.secret_files import ConfigError, RotatingSecret
from worker.backends.base import ModelError, choose_model, jittered_backoff, offered_models
from worker.metrics import KEY_RELOADS, MODEL_RETRIES, model_label

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gemini-2.5-flash"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def retry_delay_s(exc: genai_errors.APIError) -> float | None:
    """The server's RetryInfo.retryDelay ('1.5s'), when it gave one."""
    details: Any = exc.details
    if isinstance(details, dict):
        details = details.get("error", {}).get("details", [])
    for item in details if isinstance(details, list) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION_RE.match(str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _error_reason(exc: genai_errors.APIError) -> str:
    details: Any = exc.details
    if isinstance(details, dict):
        details = details.get("error", {}).get("details", [])
    for item in details if isinstance(details, list) else []:
        if isinstance(item, dict) and item.get("reason"):
            return str(item["reason"])
    return ""


def user_error(exc: genai_errors.APIError) -> ModelError:
    """Map an API error to a message that says what failed and what to do, without the key."""
    code, reason = exc.code, _error_reason(exc)
    if reason == "API_KEY_INVALID" or code in (401, 403):
        return ModelError(
            "invalid_api_key",
            "The Gemini API key was refused. The operator must put a valid key in the gemini_api_key secret.",
        )
    if code == 429:
        return ModelError("rate_limited", "Gemini is rate limiting this service. Please try again in a minute.")
    if code == 404:
        return ModelError("model_unavailable", "The requested Gemini model does not exist or is not available.")
    if code == 400:
        return ModelError("bad_request", "Gemini could not process this question. Try rephrasing or shortening it.")
    if code is not None and code >= 500:
        return ModelError("model_unavailable", "Gemini is temporarily unavailable. Please try again shortly.")
    return ModelError("model_error", f"Gemini answered with an error (HTTP {code}).")


class GeminiBackend:
    name = "gemini"

    def __init__(
        self,
        key: RotatingSecret,
        default_model: str = DEFAULT_MODEL,
        *,
        models: tuple[str, ...] = (),
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
    ) -> None:
        self.key = key
        self.default_model = default_model
        self._models = offered_models(default_model, models)
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._client: genai.Client | None = None

    @property
    def models(self) -> tuple[str, ...]:
        return self._models

    def _client_for_current_key(self) -> genai.Client:
        try:
            key, changed = self.key.current()
        except ConfigError as exc:
            logger.error("%s", exc)
            raise ModelError("no_api_key", "The Gemini API key is not available. The operator must configure it.") from None
        if changed:
            KEY_RELOADS.inc()
        if self._client is None or changed:
            options = types.HttpOptions(
                base_url=self.base_url,
                timeout=int(self.timeout_s * 1000),
                # Our loop below owns retries (it honours RetryInfo and never retries a bad key).
                retry_options=types.HttpRetryOptions(attempts=1),
            )
            self._client = genai.Client(api_key=key, http_options=options)
        return self._client

    def _backoff(self, attempt: int, exc: genai_errors.APIError) -> float:
        server = retry_delay_s(exc)
        if server is not None:
            return min(server, self.backoff_max_s) + random.uniform(0, 0.1)
        return jittered_backoff(attempt, self.backoff_base_s, self.backoff_max_s)

    def _retry_delay(self, exc: Exception, attempt: int, chosen: str, can_retry: bool, mode: str) -> float:
        """After a failed call: the delay before the next attempt, or raises the ModelError the asker gets.
        429 and 5xx are retried (the server's RetryInfo delay honoured), as are transport errors; a
        refused key or a bad request never is, nor anything once `can_retry` is False."""
        if isinstance(exc, ModelError):
            raise exc
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            raise ModelError("timeout", f"Gemini did not answer within {self.timeout_s:.0f} s. Please try again.") from None
        if isinstance(exc, genai_errors.APIError):
            logger.warning("Gemini call failed: HTTP %s %s (attempt %d%s)", exc.code, exc.status, attempt + 1, mode)
            if not (can_retry and exc.code in RETRYABLE_STATUS):
                raise user_error(exc) from None
            delay = self._backoff(attempt, exc)
        else:  # transport errors of httpx/aiohttp: name the kind, not the details
            logger.warning("Gemini call failed: %s (attempt %d%s)", type(exc).__name__, attempt + 1, mode)
            if not can_retry:
                raise ModelError("model_unavailable", "Gemini could not be reached. Please try again shortly.") from None
            delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        MODEL_RETRIES.labels(model_label(chosen, self._models)).inc()
        return delay

    async def stream(self, prompt: str, model: str) -> AsyncIterator[str]:
        """generateContent over SSE (`:streamGenerateContent?alt=sse`): the text of each piece as it comes.
        Retried as `generate` is until the first piece; an error after it ends the answer with that error.
        Cancelling or closing this generator closes the HTTP response (the SDK's `finally: aclose()`)."""
        chosen = choose_model(model, self.default_model, self._models)
        wrote = False
        for attempt in range(self.max_attempts):
            client = self._client_for_current_key()
            try:
                pieces = await client.aio.models.generate_content_stream(model=chosen, contents=prompt)
                async with contextlib.aclosing(pieces):
                    async for piece in pieces:
                        text = piece.text
                        if text:
                            wrote = True
                            yield text
            except Exception as exc:
                can_retry = attempt + 1 < self.max_attempts and not wrote
                await asyncio.sleep(self._retry_delay(exc, attempt, chosen, can_retry, ", streaming"))
                continue
            if not wrote:
                raise ModelError("empty_answer", "Gemini returned no text for this question (it may have been blocked).")
            return
        raise ModelError("model_unavailable", "Gemini is temporarily unavailable. Please try again shortly.")

    async def generate(self, prompt: str, model: str) -> str:
        chosen = choose_model(model, self.default_model, self._models)
        for attempt in range(self.max_attempts):
            client = self._client_for_current_key()
            try:
                response = await client.aio.models.generate_content(model=chosen, contents=prompt)
            except Exception as exc:
                await asyncio.sleep(self._retry_delay(exc, attempt, chosen, attempt + 1 < self.max_attempts, ""))
                continue
            text = response.text
            if not text:
                raise ModelError("empty_answer", "Gemini returned no text for this question (it may have been blocked).")
            return text
        raise ModelError("model_unavailable", "Gemini is temporarily unavailable. Please try again shortly.")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
