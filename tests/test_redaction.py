"""common/redaction.py and common/logsetup.py: no secret survives into a log line.

Secret-shaped test values are built at run time, so that no key-shaped string or PEM
header is committed (tests/test_repository_hygiene.py scans for them).
"""

from __future__ import annotations

import io
import logging
import secrets
import string
from collections.abc import Iterator

import pytest

from common.logsetup import RedactingFormatter
from common.redaction import REDACTED, redact, register_secret

PEM_BEGIN = "-----BEGIN " + "EC PRIVATE KEY-----"
PEM_END = "-----END " + "EC PRIVATE KEY-----"


def gemini_key() -> str:
    return "AIza" + "".join(secrets.choice(string.ascii_letters + string.digits + "_-") for _ in range(35))


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose only handler is the production formatter, writing to a buffer."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(RedactingFormatter("test"))
    logger = logging.getLogger(f"redaction-test-{secrets.token_hex(4)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, buf
    logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("calling with {key}", "{key}"),
        ("Incorrect API key provided: sk-proj-Ab12Cd34Ef56Gh78Ij90KlMnOp.", "sk-proj-Ab12Cd34Ef56Gh78Ij90KlMnOp"),
        ("GET https://generativelanguage.googleapis.com/v1/models?key=s3cr3t-value-1&alt=json", "s3cr3t-value-1"),
        ("url /x?api_key=abcdef123456 done", "abcdef123456"),
        ("redirect ?token=tok-998877665544", "tok-998877665544"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
        ("headers={'x-goog-api-key': 'key-in-a-dict-repr', 'accept': '*/*'}", "key-in-a-dict-repr"),
        ('{"X-Goog-Api-Key": "key-in-json"}', "key-in-json"),
        ("Cookie: session=abc123def456; other=1", "session=abc123def456"),
        ("mqtts://master:hunter2-long-pw@mosquitto:8883", "hunter2-long-pw"),
        ("login password=correct-horse-battery", "correct-horse-battery"),
        ("key block " + PEM_BEGIN + "\nMHcCAQEEIB0=\n" + PEM_END + " after", "MHcCAQEEIB0="),
        ("truncated " + PEM_BEGIN + "\nMHcCAQEEIBtrunc", "MHcCAQEEIBtrunc"),
    ],
)
def test_each_pattern_is_redacted(text: str, secret: str) -> None:
    """Each secret shape (key, token, bearer, cookie, URL password, PEM key) is replaced by the marker."""
    key = gemini_key()
    text, secret = text.replace("{key}", key), secret.replace("{key}", key)
    out = redact(text)
    assert secret not in out and REDACTED in out


def test_harmless_text_is_unchanged() -> None:
    """Text with no secret, even with words like 'tokens' and 'keyboard', passes unchanged."""
    text = "task 3f2a done in 12.5 ms, prompt 40 chars, worker w-1 (keyboard, tokens=12)"
    assert redact(text) == text


def test_registered_secret_is_redacted_anywhere() -> None:
    """A registered secret is redacted wherever it appears, even inside a word."""
    secret = secrets.token_urlsafe(24)
    register_secret(secret)
    assert redact(f"x{secret}y and again {secret}") == f"x{REDACTED}y and again {REDACTED}"


def test_short_values_are_not_registered() -> None:
    """Values too short to be secrets are not registered (they would redact ordinary text)."""
    register_secret("abc")
    assert redact("abc abc") == "abc abc"


def test_secret_passed_as_logging_argument(log: tuple[logging.Logger, io.StringIO]) -> None:
    """logger.info("k=%s", key): the formatted line holds no key."""
    logger, buf = log
    key = gemini_key()
    logger.info("k=%s", key)
    logger.info("using %s for %d calls", key, 3)
    assert key not in buf.getvalue() and buf.getvalue().count(REDACTED) == 2


def test_exception_message_and_cause_are_redacted(log: tuple[logging.Logger, io.StringIO]) -> None:
    """A traceback whose exception and chained cause both carry the secret."""
    logger, buf = log
    key, password = gemini_key(), secrets.token_urlsafe(20)
    register_secret(password)
    try:
        try:
            raise ValueError(f"bad key {key}")
        except ValueError as inner:
            raise RuntimeError(f"login with {password} failed") from inner
    except RuntimeError:
        logger.exception("call failed")
    out = buf.getvalue()
    assert "Traceback" in out and "ValueError" in out and "The above exception was the direct cause" in out
    assert key not in out and password not in out


def test_bytes_and_non_string_arguments(log: tuple[logging.Logger, io.StringIO]) -> None:
    """A registered secret inside bytes, dict, list or an object's str() is redacted too."""
    logger, buf = log
    secret = secrets.token_urlsafe(18)
    register_secret(secret)
    logger.info("bytes %r dict %s list %s obj %s", secret.encode(), {"pw": secret}, [secret], _Holder(secret))
    assert secret not in buf.getvalue()


class _Holder:
    def __init__(self, value: str) -> None:
        self.value = value

    def __str__(self) -> str:
        return f"Holder({self.value})"


def test_secret_loaded_after_logging_started(log: tuple[logging.Logger, io.StringIO]) -> None:
    """Registering a secret later covers every later line, without reconfiguring logging."""
    logger, buf = log
    secret = secrets.token_urlsafe(22)
    logger.info("before registration")
    register_secret(secret)
    logger.info("after: %s", secret)
    assert secret not in buf.getvalue()


def test_secret_file_reader_registers_the_value(tmp_path, log) -> None:  # type: ignore[no-untyped-def]
    """read_secret registers what it reads, so a later log line holding it is redacted."""
    from common.secret_files import read_secret

    logger, buf = log
    value = secrets.token_urlsafe(30)
    (tmp_path / "s").write_text(value + "\n")
    assert read_secret("X_FILE", tmp_path / "s") == value
    logger.warning("leaked %s", value)
    assert value not in buf.getvalue()


def test_line_format_has_the_structured_fields(log: tuple[logging.Logger, io.StringIO]) -> None:
    """A log line is key=value: time, level, component, logger, then task_id and worker_id."""
    logger, buf = log
    logger.info("task done", extra={"task_id": "t1", "worker_id": "w1"})
    line = buf.getvalue().strip()
    assert line.startswith("time=") and " level=INFO component=test logger=redaction-test-" in line
    assert " task_id=t1 worker_id=w1 msg=\"task done\"" in line
