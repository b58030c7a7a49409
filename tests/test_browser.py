"""A real browser (Debian's Chromium through Playwright) uses the chat over HTTPS."""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devstack.local_broker import RunningBroker
from tests.pki_helpers import Pki
from tests.stack_helpers import local_stack

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def spki_pin(cert_path: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)): Chromium then trusts this one key, not every certificate."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/test.sh installs it as root)")
async def test_browser_sends_a_message_and_sees_the_answer(pki: Pki, broker: RunningBroker, tmp_path: Path) -> None:
    """In Chromium: log in (a wrong password first), chat, a question over the limit is refused and kept, log out."""
    from playwright.async_api import async_playwright

    async with local_stack(pki, broker, workers=1) as stack, async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--ignore-certificate-errors-spki-list={spki_pin(pki.cert('master'))}",
            ],
        )
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 740})  # phone width
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            account = await stack.new_user()
            await page.goto(stack.url + "/")
            await page.wait_for_selector("#login-button", timeout=10_000)  # not logged in: the login form
            await page.fill("#name", account.name)
            await page.fill("#password", "wrong password!")
            await page.click("#login-button")
            await page.wait_for_selector("#login-error >> text=Wrong user name or password.", timeout=10_000)
            await page.fill("#password", account.password)
            await page.click("#login-button")
            await page.wait_for_selector("#state.connected", timeout=10_000)
            await page.wait_for_selector(f"#user >> text={account.name}", timeout=5_000)
            await page.fill("#question", "hello from chromium")
            await page.click("#send")
            answer = page.locator(".msg.ai").last
            await answer.wait_for(timeout=10_000)
            await page.wait_for_function(
                "() => [...document.querySelectorAll('.msg.ai')].some(e => e.textContent.includes('You said: hello from chromium'))",
                timeout=10_000,
            )
            # A question over the limit is refused in the page and stays in the box to be shortened.
            too_long = "x" * 8001
            await page.fill("#question", too_long)
            await page.click("#send")
            await page.wait_for_selector(".msg.error >> text=the limit is 8000", timeout=5_000)
            assert await page.input_value("#question") == too_long
            await page.screenshot(path=str(tmp_path / "chat.png"))
            await page.click("#logout")
            await page.wait_for_selector("#login-button", timeout=10_000)
            assert page.url.endswith("/login")
            # The login page's failed attempt is a 401 response, which Chromium reports as a console error.
            assert [e for e in errors if "401" not in e] == []
        finally:
            await browser.close()
