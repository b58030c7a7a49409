"""Answers render as Markdown in Chromium (master/static/markdown.js), and nothing in an answer can run: the echo
model answers with the question, so a question written in Markdown comes back as a Markdown answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.local_broker import RunningBroker
from tests.browser_helpers import CHROMIUM, launch_chromium, log_in_page
from tests.pki_helpers import Pki
from tests.stack_helpers import Stack, local_stack

pytestmark = [
    pytest.mark.integration, pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/test.sh installs it as root)"),
]

# Runs before the page's own scripts (through the DevTools protocol, so the page's CSP does not apply to it):
# every CSP violation is recorded. A handler or a javascript: URL that got through the sanitizer would show up here
# even though the CSP stops it from running.
WATCH = """
window.__pwned = 0;
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.violatedDirective + " " + e.blockedURI));
"""

PAYLOADS = """sanitizer check

<script>window.__pwned = 1; document.title = "pwned"</script>

<img src=x onerror="window.__pwned = 2; document.title = 'pwned'">

<iframe src="javascript:window.__pwned=3"></iframe> <svg onload="window.__pwned = 4"></svg>

[click me](javascript:window.__pwned=5) and [data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)

![picture](x"onerror="window.__pwned=6) ![logo](https://example.com/logo.png)

[docs](https://example.com/docs)

```html
<script>window.__pwned = 7</script>
<b onmouseover="window.__pwned = 8">bold?</b>
```

| name | value |
|------|-------|
| alpha | 1 |
| beta | 2 |
"""

FORMATTED = """markdown check

# A heading

- first item
- **second** item with `inline code`

```python
print("hello")
```
"""


async def open_chat(browser: Any, stack: Stack) -> tuple[Any, dict[str, list[str]]]:
    """A logged-in chat page (new user) that records page errors, dialogs and popups."""
    context = await browser.new_context()
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.url)
    page = await context.new_page()
    seen: dict[str, list[str]] = {"errors": [], "dialogs": [], "popups": []}
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("popup", lambda p: seen["popups"].append(p.url))

    async def on_dialog(dialog: Any) -> None:
        seen["dialogs"].append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    await page.add_init_script(WATCH)
    account = await stack.new_user()
    await log_in_page(page, stack.url, account.name, account.password)
    return page, seen


async def ask(page: Any, text: str, marker: str) -> Any:
    """Send `text`; the rendered answer whose text contains `marker`."""
    await page.fill("#question", text)
    await page.click("#send")
    answer = page.locator(".msg.ai.md", has_text=marker).last
    await answer.wait_for(timeout=10_000)
    return answer


async def test_answer_with_scripts_handlers_and_bad_links_runs_nothing_and_stays_readable(
        pki: Pki, broker: RunningBroker) -> None:
    """Scripts, handlers, javascript:/data: links and HTML in code: nothing runs or is blocked, all stays readable."""
    async with local_stack(pki, broker, workers=1) as stack, launch_chromium(pki) as browser:
        page, seen = await open_chat(browser, stack)
        answer = await ask(page, PAYLOADS, "sanitizer check")
        await page.wait_for_timeout(300)  # time for an image error or a load handler to have fired, if any existed

        # What could run is gone from the DOM ...
        found = await answer.evaluate("""el => ({
            dangerous: [...el.querySelectorAll('script, img, iframe, svg, object, embed, style, form, input')].map(e => e.tagName),
            handlers: [...el.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name)).filter(n => n.startsWith('on')),
            hrefs: [...el.querySelectorAll('a')].map(a => [a.textContent, a.getAttribute('href'), a.target, a.rel]),
            code: [...el.querySelectorAll('pre code')].map(c => c.textContent),
            cells: [...el.querySelectorAll('table th, table td')].map(c => c.textContent),
            text: el.textContent,
        })""")
        assert found["dangerous"] == [] and found["handlers"] == []
        assert found["hrefs"] == [
            ["click me", None, "", ""], ["data link", None, "", ""], ["picture", None, "", ""],
            ["logo", "https://example.com/logo.png", "_blank", "noopener noreferrer"],  # an image: its link, not loaded
            ["docs", "https://example.com/docs", "_blank", "noopener noreferrer"],
        ]
        # ... and nothing ran, nor tried to.
        assert await page.evaluate("() => [window.__pwned, document.title, window.__violations]") == [0, "ai-system chat", []]
        # The text stays readable: raw HTML shows as text, the code block verbatim, the table as a table.
        assert '<script>window.__pwned = 1; document.title = "pwned"</script>' in found["text"]
        assert "<img src=x onerror=" in found["text"]
        assert found["code"] == ['<script>window.__pwned = 7</script>\n<b onmouseover="window.__pwned = 8">bold?</b>\n']
        assert found["cells"] == ["name", "value", "alpha", "1", "beta", "2"]

        await answer.locator("a", has_text="click me").click()  # a link without its javascript: URL does nothing
        await answer.locator("pre").hover()
        await page.wait_for_timeout(200)
        assert await page.evaluate("() => [window.__pwned, window.__violations]") == [0, []]
        assert seen == {"errors": [], "dialogs": [], "popups": []}

        # Control: the watch sees what the sanitizer removed, had it reached the page.
        await page.evaluate("""() => { const d = document.createElement('div');
            d.innerHTML = '<img src="x" onerror="window.__pwned = 99">'; document.body.appendChild(d); }""")
        await page.wait_for_function("() => window.__violations.length > 0", timeout=5_000)
        assert await page.evaluate("() => window.__pwned") == 0


async def test_markdown_answer_renders_as_formatted_html_with_a_copy_button(pki: Pki, broker: RunningBroker) -> None:
    """A Markdown answer becomes h1, ul/li, strong and code elements; the code block's Copy button copies its code."""
    async with local_stack(pki, broker, workers=1) as stack, launch_chromium(pki) as browser:
        page, seen = await open_chat(browser, stack)
        answer = await ask(page, FORMATTED, "markdown check")
        assert await answer.locator("h1").text_content() == "A heading"
        assert await answer.locator("ul > li").all_text_contents() == ["first item", "second item with inline code"]
        assert await answer.locator("li strong").text_content() == "second"
        assert await answer.locator("li code").text_content() == "inline code"
        assert await answer.locator("pre code").text_content() == 'print("hello")\n'
        # The question is the user's text: shown as typed, never rendered.
        assert await page.locator(".msg.user").last.text_content() == FORMATTED.strip()

        await answer.locator("button.copy-code").click()
        await answer.locator("button.copy-code", has_text="Copied").wait_for(timeout=5_000)
        assert await page.evaluate("() => navigator.clipboard.readText()") == 'print("hello")\n'
        assert seen == {"errors": [], "dialogs": [], "popups": []}
