"""Debian's Chromium through Playwright, trusting only our master's key (SPKI pin), for the browser tests."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import shutil
from collections.abc import AsyncIterator
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.pki_helpers import Pki

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def spki_pin(cert_path: Any) -> str:
    """base64(sha256(SubjectPublicKeyInfo)): Chromium then trusts this one key, not every certificate."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@contextlib.asynccontextmanager
async def launch_chromium(pki: Pki) -> AsyncIterator[Any]:
    """A headless Chromium (no sandbox: root in CI) that trusts the master's certificate; closed at the end."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--ignore-certificate-errors-spki-list={spki_pin(pki.cert('master'))}",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def log_in_page(page: Any, url: str, name: str, password: str) -> None:
    """Log in through the login form of the master at `url`; returns when the chat page is connected."""
    await page.goto(url + "/login")
    await page.fill("#name", name)
    await page.fill("#password", password)
    await page.click("#login-button")
    await wait_connected(page)


async def wait_connected(page: Any, timeout_ms: int = 10_000) -> None:
    """Wait until the page's Socket.IO connection is up; on timeout, say what the page showed instead."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        await page.wait_for_selector("#state.connected", timeout=timeout_ms)
    except PlaywrightTimeout:
        shown = await page.evaluate(
            "() => { const s = document.getElementById('state'); return [location.href, document.readyState, "
            "s ? s.className + ': ' + s.textContent : 'no #state', typeof io, "
            "window.chatSocket ? [window.chatSocket.connected, window.chatSocket.io.engine && "
            "window.chatSocket.io.engine.readyState] : 'no socket'] }")
        raise AssertionError(f"the page did not connect within {timeout_ms} ms; it shows {shown!r}") from None
