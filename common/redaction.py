"""Remove secrets from text: loaded secret values and secret-shaped patterns."""

from __future__ import annotations

import re
import threading

REDACTED = "***REDACTED***"
# Secrets shorter than this are not registered: replacing "a" everywhere would wreck logs, and
# no secret this system generates or accepts is that short.
MIN_SECRET_LENGTH = 8

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys, whole block (RSA/EC/ENCRYPTED/plain).
    (
        re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.S),
        REDACTED,
    ),
    # Gemini API keys.
    (re.compile(r"AIza[0-9A-Za-z_\-]{35}"), REDACTED),
    # OpenAI-style API keys (sk-..., sk-proj-..., sk-svcacct-...), which other compatible servers copy.
    (re.compile(r"\bsk-[0-9A-Za-z_\-]{20,}"), REDACTED),
    # Header values: Authorization, x-goog-api-key, Cookie / Set-Cookie (as text, dict repr or JSON).
    (
        re.compile(
            r"(?i)((?:authorization|proxy-authorization|x-goog-api-key|cookie|set-cookie)['\"]?\s*[:=]\s*['\"]?)"
            r"([^'\"\r\n,}]+)"
        ),
        r"\1" + REDACTED,
    ),
    # Query or form parameters and key=value pairs that carry secrets.
    (
        re.compile(
            r"(?i)(\b(?:key|api_key|apikey|token|access_token|password|passwd|secret|session_secret)"
            r"['\"]?\s*[=:]\s*['\"]?)([^&\s'\",;}]+)"
        ),
        r"\1" + REDACTED,
    ),
    # user:password@ in URLs.
    (re.compile(r"(?i)([a-z][a-z0-9+.\-]*://[^/\s:@]+:)([^@\s/]+)(@)"), r"\1" + REDACTED + r"\3"),
)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_secret_re: re.Pattern[str] | None = None


def register_secret(value: str | bytes | None) -> None:
    """Add a secret value to redact everywhere from now on (called when a secret is loaded)."""
    global _secrets, _secret_re
    if value is None:
        return
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    text = text.strip()
    if len(text) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if text in _secrets:
            return
        # Longest first, so a secret that contains another is removed whole.
        _secrets = tuple(sorted((*_secrets, text), key=len, reverse=True))
        _secret_re = re.compile("|".join(re.escape(s) for s in _secrets))


def forget_secrets() -> None:
    """Drop every registered secret (tests only)."""
    global _secrets, _secret_re
    with _lock:
        _secrets, _secret_re = (), None


def redact(text: str) -> str:
    """`text` with every registered secret and secret-shaped string replaced by ***REDACTED***."""
    secret_re = _secret_re
    if secret_re is not None:
        text = secret_re.sub(REDACTED, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
