"""OpenAI-compatible chat completions (OpenAI, Ollama, vLLM, llama.cpp server) over plain httpx2.

One POST to `{base_url}/chat/completions`; with `stream: true` the answer comes as server-sent
events (`data: {json}` lines, ending with `data: [DONE]`). The key (optional: local servers need
none) is read from a file and re-read when it changes; 429 and 5xx are retried after the server's
`Retry-After` (seconds or an HTTP date) or an exponential backoff; a refused key is never retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2  # the HTTP client google-genai already ships (the httpx API, next major version)

from common.secret_files import ConfigError, RotatingSecret
from worker.backends.base import ModelError, choose_model, jittered_backoff, offered_models
from worker.metrics import MODEL_RETRIES, OPENAI_KEY_RELOADS, model_label

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
WHO = "The OpenAI-compatible model server"


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """The delay a `Retry-After` header asks for: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if seconds == seconds else None  # NaN: no usable value


def user_error(status: int, has_key: bool) -> ModelError:
    """Map an HTTP error to a message that says what failed and what to do (never the key or the body)."""
    if status in (401, 403):
        if not has_key:
            return ModelError("no_api_key", f"{WHO} wants an API key. The operator must set OPENAI_API_KEY_FILE.")
        return ModelError("invalid_api_key",
                          f"{WHO} refused the API key. The operator must put a valid key in the openai_api_key secret.")
    if status == 429:
        return ModelError("rate_limited", f"{WHO} is rate limiting this service. Please try again in a minute.")
    if status == 404:
        return ModelError("model_unavailable", f"{WHO} does not offer the requested model.")
    if status in (400, 413, 422):
        return ModelError("bad_request", f"{WHO} could not process this question. Try rephrasing or shortening it.")
    if status >= 500:
        return ModelError("model_unavailable", f"{WHO} is temporarily unavailable. Please try again shortly.")
    return ModelError("model_error", f"{WHO} answered with an error (HTTP {status}).")


def _delta_text(event: dict[str, Any]) -> str:
    """The text of one streamed chunk (`choices[0].delta.content`), '' when it carries none."""
    if isinstance(event.get("error"), dict):
        raise ModelError("model_error", f"{WHO} reported an error in the middle of the answer.")
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


class OpenAICompatBackend:
    name = "openai"

    def __init__(
        self,
        key: RotatingSecret | None,
        default_model: str = DEFAULT_MODEL,
        *,
        models: tuple[str, ...] = (),
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 60.0,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
    ) -> None:
        self.key = key
        self.default_model = default_model
        self._models = offered_models(default_model, models)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        # One client, one connection pool: a TLS connect costs far more than a call on an open connection.
        self._client = httpx2.AsyncClient(timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, 10.0)))

    @property
    def models(self) -> tuple[str, ...]:
        return self._models

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.key is None:
            return headers
        try:
            key, changed = self.key.current()
        except ConfigError as exc:
            logger.error("%s", exc)
            raise ModelError("no_api_key", "The API key of the model server is not available. "
                                           "The operator must configure OPENAI_API_KEY_FILE.") from None
        if changed:
            OPENAI_KEY_RELOADS.inc()
        headers["Authorization"] = f"Bearer {key}"
        return headers

    def _backoff(self, attempt: int) -> float:
        return jittered_backoff(attempt, self.backoff_base_s, self.backoff_max_s)

    async def _open(self, chosen: str, prompt: str, stream: bool) -> httpx2.Response:
        """A 200 response (body not yet read; the caller closes it), after retries; else ModelError."""
        body: dict[str, Any] = {"model": chosen, "messages": [{"role": "user", "content": prompt}], "stream": stream}
        label = model_label(chosen, self._models)
        for attempt in range(self.max_attempts):
            last = attempt + 1 >= self.max_attempts
            request = self._client.build_request("POST", self.url, json=body, headers=self._headers())
            try:
                response = await self._client.send(request, stream=True)
            except httpx2.TimeoutException:
                raise ModelError("timeout", f"{WHO} did not answer within {self.timeout_s:.0f} s. Please try again.") from None
            except httpx2.TransportError as exc:  # refused, reset, DNS: name the kind, not the details
                logger.warning("model call failed: %s (attempt %d)", type(exc).__name__, attempt + 1)
                if last:
                    raise ModelError("model_unavailable", f"{WHO} could not be reached. Please try again shortly.") from None
                MODEL_RETRIES.labels(label).inc()
                await asyncio.sleep(self._backoff(attempt))
                continue
            if response.status_code == 200:
                return response
            status, asked = response.status_code, retry_after_s(response.headers.get("Retry-After"))
            await response.aclose()  # the error body is neither logged nor shown: servers may echo the key
            logger.warning("model call failed: HTTP %d (attempt %d)", status, attempt + 1)
            if status not in RETRYABLE_STATUS or last:
                raise user_error(status, self.key is not None)
            if asked is not None and asked > self.backoff_max_s:
                logger.warning("the server asks to wait %.0f s, over the %.0f s limit: not retried", asked,
                               self.backoff_max_s)
                raise user_error(status, self.key is not None)
            MODEL_RETRIES.labels(label).inc()
            await asyncio.sleep(asked if asked is not None else self._backoff(attempt))
        raise ModelError("model_unavailable", f"{WHO} is temporarily unavailable. Please try again shortly.")

    async def generate(self, prompt: str, model: str) -> str:
        chosen = choose_model(model, self.default_model, self._models)
        response = await self._open(chosen, prompt, stream=False)
        try:
            data = json.loads(await response.aread())
            text = data["choices"][0]["message"]["content"]
        except httpx2.TimeoutException:
            raise ModelError("timeout", f"{WHO} did not answer within {self.timeout_s:.0f} s. Please try again.") from None
        except httpx2.TransportError:
            raise ModelError("model_unavailable", f"{WHO} closed the connection. Please try again.") from None
        except (ValueError, KeyError, IndexError, TypeError):
            raise ModelError("model_error", f"{WHO} sent an answer this worker cannot read.") from None
        finally:
            await response.aclose()
        if not isinstance(text, str) or not text:
            raise ModelError("empty_answer", f"{WHO} returned no text for this question (it may have been blocked).")
        return text

    async def stream(self, prompt: str, model: str) -> AsyncIterator[str]:
        """The answer as the server writes it; closing this generator closes the HTTP stream."""
        chosen = choose_model(model, self.default_model, self._models)
        response = await self._open(chosen, prompt, stream=True)
        wrote = False
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, `event:`, `id:` and `:` comments
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    raise ModelError("model_error", f"{WHO} sent a stream this worker cannot read.") from None
                text = _delta_text(event) if isinstance(event, dict) else ""
                if text:
                    wrote = True
                    yield text
        except httpx2.TimeoutException:
            raise ModelError("timeout", f"{WHO} stopped writing for {self.timeout_s:.0f} s. Please try again.") from None
        except httpx2.TransportError:
            raise ModelError("model_unavailable", f"{WHO} closed the connection in the middle of the answer.") from None
        finally:
            await response.aclose()
        if not wrote:
            raise ModelError("empty_answer", f"{WHO} returned no text for this question (it may have been blocked).")

    async def aclose(self) -> None:
        await self._client.aclose()
