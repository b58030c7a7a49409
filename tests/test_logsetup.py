"""common/logsetup.py: every line a process writes through `logging` leaves by the one redacting handler.

In-process tests configure logging inside pytest and put everything back afterwards; the last
test provokes the engineio line that used to bypass the handler in a real master process.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import secrets
import socket
import ssl
import string
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.logsetup import configure_logging
from common.redaction import REDACTED
from common.tls import client_context
from devstack.local_broker import free_port
from devstack.local_run import database_file, run_local_stack
from devstack.users import create_users
from master.sessions import COOKIE_NAME
from tests.conftest import Pki
from tests.stack_helpers import https_session, login_cookie

REPO = Path(__file__).resolve().parent.parent

# One line as RedactingFormatter writes it (context fields such as task_id may sit before msg).
LINE = re.compile(r'^time=\S+Z level=[A-Z]+ component=(?P<component>\S+) logger=(?P<logger>\S+)( \w+=\S+)* msg=".*"$')


def gemini_key() -> str:
    return "AIza" + "".join(secrets.choice(string.ascii_letters + string.digits + "_-") for _ in range(35))


@contextlib.contextmanager
def logging_configured() -> Iterator[None]:
    """configure_logging("test", "DEBUG") for the block; pytest's own logging set-up back afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.Logger.addHandler, logging.lastResort,
             sys.excepthook, threading.excepthook)
    configure_logging("test", "DEBUG")
    try:
        yield
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
        handlers, level, add_handler, last_resort, sys.excepthook, threading.excepthook = saved
        logging.Logger.addHandler = add_handler  # type: ignore[method-assign]
        logging.lastResort = last_resort
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
        logging.captureWarnings(False)


def our_lines(err: str) -> list[str]:
    lines = err.splitlines()
    assert lines, "nothing was written"
    assert all(LINE.match(line) for line in lines), "\n".join(lines)
    return lines


def test_handler_a_library_adds_before_configure_is_removed(capfd: pytest.CaptureFixture[str]) -> None:
    """A library logger's own stderr handler (added at import) is gone after configure_logging."""
    lib = logging.getLogger(f"lib-before-{secrets.token_hex(3)}")
    lib.addHandler(logging.StreamHandler())
    with logging_configured():
        lib.warning("from the library")
        (line,) = our_lines(capfd.readouterr().err)
    assert f"logger={lib.name} " in line and lib.handlers == []


def test_handler_a_library_adds_after_configure_is_refused(capfd: pytest.CaptureFixture[str]) -> None:
    """engineio's pattern: StreamHandler() added when the server is built; the line is ours, once, redacted."""
    with logging_configured():
        lib = logging.getLogger(f"engineio-like-{secrets.token_hex(3)}")
        lib.setLevel(logging.ERROR)
        lib.addHandler(logging.StreamHandler())  # as engineio's BaseServer does when logger=False
        key = gemini_key()
        lib.error("https://evil.example is not an accepted origin. key=%s", key)
        (line,) = our_lines(capfd.readouterr().err)
        assert f"level=ERROR component=test logger={lib.name} " in line
        assert key not in line and REDACTED in line and lib.handlers == []


def test_logger_that_does_not_propagate_still_writes_our_format(capfd: pytest.CaptureFixture[str]) -> None:
    """uvicorn's default dictConfig: its own stderr handler and propagate=False; the line is still ours."""
    # (dictConfig itself is not called here: it closes every existing handler, pytest's included.)
    with logging_configured():
        lib = logging.getLogger(f"uvicorn-like-{secrets.token_hex(3)}")
        lib.addHandler(logging.StreamHandler(sys.stderr))
        lib.propagate = False
        lib.setLevel(logging.INFO)
        lib.info("Started server process")
        (line,) = our_lines(capfd.readouterr().err)
        assert f"level=INFO component=test logger={lib.name} " in line


def test_handler_to_a_buffer_is_kept() -> None:
    """Only stdout/stderr handlers are refused: a handler writing elsewhere still receives its records."""
    with logging_configured():
        buf = io.StringIO()
        lib = logging.getLogger(f"buffered-{secrets.token_hex(3)}")
        lib.addHandler(logging.StreamHandler(buf))
        lib.warning("kept")
        assert buf.getvalue() == "kept\n"


def test_uncaught_thread_exception_is_logged_redacted(capfd: pytest.CaptureFixture[str]) -> None:
    """An exception escaping a thread (paho's network thread, say) becomes one redacted line."""
    with logging_configured():
        key = gemini_key()
        t = threading.Thread(target=_raise_with, args=(key,))
        t.start()
        t.join()
        err = capfd.readouterr().err
        assert "uncaught exception in thread" in err and "boom" in err and key not in err
        assert all(LINE.match(line) for line in err.splitlines())


def _raise_with(key: str) -> None:
    raise RuntimeError(f"boom {key}")


# What a service does (common/service_main.py), then stderr written around logging: absl lines as
# gRPC core writes them, a stray print, and a normal record; the process exits at once.
RELAY_PROGRAM = """
import logging, os, sys
from common.logsetup import configure_logging
configure_logging("relay-test", "DEBUG", relay_native_stderr=True)
configure_logging("relay-test", "DEBUG")  # service_main's second call: the relay stays
os.write(2, b"I1130 12:43:33.952658   21723 ssl_transport_security.cc:2563] Handshake failed\\n")
os.write(2, ("E1130 12:43:34.000001   21724 chttp2_server.cc:17] bad url ?key=" + sys.argv[1] + "\\n").encode())
print("a stray print", file=sys.stderr)
logging.getLogger("app").info("normal line")
"""


@pytest.mark.integration
def test_native_stderr_lines_become_our_lines() -> None:
    """What C code writes to descriptor 2 (gRPC core's absl log) is relayed: our format, level, redaction, none lost."""
    key = "s3cr3t-" + secrets.token_hex(8)
    done = subprocess.run([sys.executable, "-c", RELAY_PROGRAM, key], cwd=REPO, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    lines = our_lines(done.stderr)
    assert len(lines) == 4, lines
    absl_info, absl_error, stray, normal = (
        next(line for line in lines if word in line) for word in ("Handshake failed", "bad url", "stray", "normal")
    )
    assert " level=INFO component=relay-test logger=stderr " in absl_info
    assert 'msg="ssl_transport_security.cc:2563] Handshake failed"' in absl_info
    assert " level=ERROR component=relay-test logger=stderr " in absl_error and key not in absl_error
    assert " level=WARNING component=relay-test logger=stderr " in stray and 'msg="a stray print"' in stray
    assert " level=INFO component=relay-test logger=app " in normal


@pytest.mark.integration
async def test_engineio_origin_refusal_line_is_in_our_format(pki: Pki, tmp_path: Path) -> None:
    """A foreign-Origin handshake (logged in, so engineio sees it) and a failed gRPC handshake: every line ours, once."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    [(name, password)] = create_users(database_file(run_dir), ["logsetup"]).items()
    stack_cm = run_local_stack(workers=0, web_port=free_port(), pki_dir=pki.out, run_dir=run_dir)
    stack = await asyncio.to_thread(stack_cm.__enter__)
    try:
        cookie = await login_cookie(pki, stack.url, name, password)
        async with https_session(pki.tls()) as http:
            url = stack.url + "/socket.io/?EIO=4&transport=polling"
            headers = {"Origin": "https://evil.example", "Cookie": f"{COOKIE_NAME}={cookie}"}
            async with http.get(url, headers=headers) as resp:
                assert resp.status == 400
        # No client certificate: gRPC core (C, absl) logs the failed handshake on descriptor 2.
        # (The refusal reaches this client as an alert or as EOF, depending on timing: the log says.)
        with socket.create_connection(("127.0.0.1", stack.grpc_port), timeout=5) as raw, \
                contextlib.suppress(ssl.SSLError), \
                client_context(pki.tls()).wrap_socket(raw, server_hostname="localhost") as tls:
            tls.recv(1)
        log = stack.logs / "master.log"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = log.read_text()
            if "is not an accepted origin" in text and "Handshake failed" in text:
                break
            await asyncio.sleep(0.05)
    finally:
        await asyncio.to_thread(stack_cm.__exit__, None, None, None)
    lines = log.read_text().splitlines()
    refusals = [line for line in lines if "is not an accepted origin" in line]
    assert len(refusals) == 1, refusals  # once: not also a bare copy from engineio's own handler
    assert " level=ERROR component=master logger=engineio.server " in refusals[0]
    assert 'msg="https://evil.example is not an accepted origin.' in refusals[0]
    assert any(" logger=stderr " in line and "Handshake failed" in line for line in lines), lines[-20:]
    strays = [line for line in lines if not LINE.match(line)]
    assert not strays, "lines outside our format:\n" + "\n".join(strays[:20])
    assert {LINE.match(line)["component"] for line in lines} == {"master"}  # type: ignore[index]
