"""The full local stack as real processes at DEBUG: no secret reaches any log, stdout, stderr or browser.

Secrets in play: a Gemini-shaped key (the fake Gemini server echoes it back in its errors),
both MQTT passwords, a session secret, and the private keys. Every byte every process wrote
(mosquitto's log included) is scanned afterwards.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from devstack.local_run import run_local_stack
from devstack.local_broker import free_port
from tests.fake_gemini import error_body, fake_gemini_in_thread, fake_key, invalid_key_body
from tests.stack_helpers import ChatClient, LoginFailed, login_cookie
from tests.pki_helpers import Pki, make_pki

pytestmark = pytest.mark.integration


def secret_values(pki: Pki, key: str, session_secret: str) -> dict[str, str]:
    values = {
        "gemini key": key,
        "master MQTT password": pki.password("master"),
        "worker MQTT password": pki.password("worker"),
        "session secret": session_secret,
    }
    for role in ("ca", "master", "mosquitto", "worker"):
        # The base64 body of each private key (any 40-character run of it would do).
        body = "".join(pki.key(role).read_text().splitlines()[1:-1])
        values[f"{role} private key"] = body[:40]
    return values


async def test_no_secret_in_any_process_output_or_browser_error(tmp_path: Path) -> None:
    """With every process at DEBUG and Gemini echoing the key, no secret is in any output or browser error."""
    pki = make_pki(tmp_path)
    key = fake_key()
    key_file = tmp_path / "gemini_api_key"
    key_file.write_text(key + "\n")
    session_secret = os.urandom(24).hex()
    session_file = tmp_path / "session_secret"
    session_file.write_text(session_secret)
    admin_password = "admin-" + os.urandom(12).hex()
    admin_file = tmp_path / "initial_admin_password"
    admin_file.write_text(admin_password + "\n")
    run_dir = tmp_path / "run"
    browser_errors: list[dict[str, str]] = []

    with fake_gemini_in_thread() as fake:
        stack_cm = run_local_stack(
            workers=2, web_port=free_port(), pki_dir=pki.out, run_dir=run_dir, gemini_key_file=key_file,
            gemini_base_url=fake.url, log_level="DEBUG",
            extra_env={"LOG_CONTENT": "true", "SESSION_SECRET_FILE": str(session_file),
                       "INITIAL_ADMIN_PASSWORD_FILE": str(admin_file)},
        )
        # run_local_stack makes credentials in pki_dir/credentials: the same files make_pki wrote.
        stack = await asyncio.to_thread(stack_cm.__enter__)
        try:
            # A failed login with a password-like string, then the admin seeded from its secret file.
            with pytest.raises(LoginFailed):
                await login_cookie(pki, stack.url, "admin", admin_password[::-1])
            cookie = await login_cookie(pki, stack.url, "admin", admin_password)
            client = ChatClient(pki, cookie=cookie)
            await client.connect(stack.url)
            try:
                # Success, with the key itself inside the prompt (content logging is on).
                await client.ask(f"please repeat {key}")
                assert (await client.next_response(20))["event"] == "ai-response"
                # Errors that echo the key: refused key (400), and a 500 whose message carries it.
                fake.script.append((400, invalid_key_body(echo_key=key)))
                await client.ask("this one fails")
                browser_errors.append(await client.next_response(20))
                fake.script.extend([(500, error_body(500, "INTERNAL", f"backend failed for key={key}"))] * 4)
                await client.ask("this one fails too")
                browser_errors.append(await client.next_response(30))
            finally:
                await client.close()
        finally:
            await asyncio.to_thread(stack_cm.__exit__, None, None, None)

    assert [e["event"] for e in browser_errors] == ["ai-error", "ai-error"]
    assert len(fake.requests) >= 6 and all(r.api_key == key for r in fake.requests)
    secrets_ = secret_values(pki, key, session_secret)
    secrets_.update({"admin password": admin_password, "wrong password tried": admin_password[::-1],
                     "session cookie": cookie.split(".")[0]})
    outputs = sorted((run_dir / "logs").glob("*.log"))
    assert {p.name for p in outputs} == {"mosquitto.log", "master.log", "worker-1.log", "worker-2.log"}
    worker_text = "".join((run_dir / "logs" / f"worker-{i}.log").read_text() for i in (1, 2))
    assert "level=DEBUG" in worker_text and "Gemini call failed: HTTP 400" in worker_text  # DEBUG really on
    assert "***REDACTED***" in worker_text  # the prompt holding the key was logged, redacted
    for path in outputs:
        text = path.read_text(errors="replace")
        for name, value in secrets_.items():
            assert value not in text, f"{name} found in {path.name}"
    for error in browser_errors:
        for name, value in secrets_.items():
            assert value not in str(error), f"{name} reached the browser"
        assert "Traceback" not in error["message"] and "/" not in error["message"]
