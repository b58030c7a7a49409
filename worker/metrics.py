"""The worker's Prometheus metrics. The model label is one of the models this worker is configured
to offer (or "other"): a bounded set, whatever tasks name."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from common.metrics_server import LATENCY_BUCKETS

MODEL_CALL = Histogram("aisys_model_call_seconds", "Model calls, by model", ["model"], buckets=LATENCY_BUCKETS)
MODEL_ERRORS = Counter("aisys_model_errors", "Model calls that failed, by model and error code", ["model", "code"])
MODEL_RETRIES = Counter("aisys_model_retries", "Model calls retried (429, 5xx, transport errors)", ["model"])
TASKS_RUNNING = Gauge("aisys_tasks_running", "Tasks this worker is running")
KEY_RELOADS = Counter("aisys_gemini_key_reloads", "Times the Gemini key file changed and was read again")
OPENAI_KEY_RELOADS = Counter("aisys_openai_key_reloads",
                             "Times the OpenAI-compatible API key file changed and was read again")

ERROR_CODES = frozenset({"invalid_api_key", "no_api_key", "rate_limited", "model_unavailable", "bad_request",
                         "model_error", "empty_answer", "timeout", "internal"})


def model_label(model: str, offered: tuple[str, ...]) -> str:
    return model if model in offered else "other"


def error_label(code: str) -> str:
    return code if code in ERROR_CODES else "other"
