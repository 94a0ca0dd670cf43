"""The chat page at `/` in a real Chromium (Debian's /usr/bin/chromium driven by Playwright).

Without /usr/bin/chromium the tests skip, or fail under CI=true. Never `playwright install`:
the browser comes from `apt-get install -y chromium`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.support.browser import CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.browser

GREETING = "안녕하세요! 복지 서비스 검색 AI입니다. 어떤 복지 서비스를 찾고 계신가요?"
QUESTION = "노인 복지 서비스 알려줘"
WAIT_MS = 10_000


class RunningServer(Protocol):
    url: str


@pytest.fixture
def chromium_path() -> Path:
    return require_chromium()


@pytest.fixture
async def browser(chromium_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


def collect_page_errors(page: Page) -> list[str]:
    """Uncaught exceptions and console errors of the page (a 404 shows up here too)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    return errors


async def conversation(page: Page) -> list[tuple[str, str]]:
    """(role, text) of every message bubble, in page order."""
    rows: list[list[str]] = await page.eval_on_selector_all(
        "#messages .msg",
        """els => els.map(el => [
            ['user', 'assistant', 'system'].find(c => el.classList.contains(c)) || '?',
            el.querySelector('.body').textContent,
        ])""",
    )
    return [(role, text) for role, text in rows]


async def open_chat(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("#status")).to_have_text("연결됨", timeout=WAIT_MS)


async def test_chat_page_turn_and_reload(
    browser: Browser, server: RunningServer, tmp_path: Path
) -> None:
    page = await browser.new_page(viewport={"width": 900, "height": 1200}, locale="ko-KR")
    errors = collect_page_errors(page)
    messages = page.locator("#messages .msg")

    await open_chat(page, server.url + "/")
    await expect(messages).to_have_count(1, timeout=WAIT_MS)
    assert await conversation(page) == [("assistant", GREETING)]
    session_id = await page.evaluate("localStorage.getItem('chat.sessionId')")
    assert session_id

    await page.locator("#message-input").fill(QUESTION)
    await page.locator("#message-input").press("Enter")
    user_bubbles = page.locator("#messages .msg.user .body")
    await expect(user_bubbles).to_have_text([QUESTION], timeout=WAIT_MS)
    await expect(page.locator("#message-input")).to_have_value("")
    finished = page.locator("#messages .msg.assistant:not(.streaming)")
    await expect(finished).to_have_count(2, timeout=WAIT_MS)

    before = await conversation(page)
    assert [role for role, _ in before] == ["assistant", "user", "assistant"]
    reply = before[2][1]
    assert "1. " in reply
    assert "담당:" in reply
    # Numbered replies keep their line breaks on screen (white-space: pre-wrap).
    shown = await finished.nth(1).locator(".body").inner_text()
    assert "\n" in shown
    assert await page.locator("#error").is_hidden()

    await page.reload()
    await expect(page.locator("#status")).to_have_text("연결됨", timeout=WAIT_MS)
    await expect(messages).to_have_count(3, timeout=WAIT_MS)
    await page.wait_for_timeout(500)  # a second greeting, if any, would have arrived by now
    assert await conversation(page) == before
    assert await page.evaluate("localStorage.getItem('chat.sessionId')") == session_id

    await page.screenshot(path=tmp_path / "chat.png", full_page=True)
    assert (tmp_path / "chat.png").stat().st_size > 0
    assert errors == []
    await page.close()


async def test_chat_page_two_tabs_typing_and_new_chat(
    browser: Browser, server: RunningServer
) -> None:
    context = await browser.new_context(locale="ko-KR")  # two tabs share localStorage
    first = await context.new_page()
    errors = collect_page_errors(first)
    await open_chat(first, server.url + "/")
    await expect(first.locator("#messages .msg")).to_have_count(1, timeout=WAIT_MS)
    second = await context.new_page()
    errors += collect_page_errors(second)
    await open_chat(second, server.url + "/")
    await expect(second.locator("#messages .msg")).to_have_count(1, timeout=WAIT_MS)

    await first.locator("#message-input").press_sequentially("노인")
    await expect(second.locator("#typing")).to_be_visible(timeout=WAIT_MS)
    await expect(second.locator("#typing")).to_have_text("상대방이 입력 중…")
    assert await first.locator("#typing").is_hidden()
    # 1.5 s without a keystroke ends "typing" on the other tab.
    await expect(second.locator("#typing")).to_be_hidden(timeout=WAIT_MS)

    await first.locator("#message-input").fill(QUESTION)
    await first.locator("#send-btn").click()
    for page in (first, second):
        await expect(page.locator("#messages .msg.user .body")).to_have_text([QUESTION])
        await expect(page.locator("#messages .msg.assistant:not(.streaming)")).to_have_count(
            2, timeout=WAIT_MS
        )
    assert await conversation(first) == await conversation(second)

    old_session = await first.evaluate("localStorage.getItem('chat.sessionId')")
    await first.locator("#new-chat").click()
    await expect(first.locator("#status")).to_have_text("연결됨", timeout=WAIT_MS)
    await expect(first.locator("#messages .msg")).to_have_count(1, timeout=WAIT_MS)
    assert await conversation(first) == [("assistant", GREETING)]
    new_session = await first.evaluate("localStorage.getItem('chat.sessionId')")
    assert new_session
    assert new_session != old_session
    assert errors == []
    await context.close()
