"""The admin console at /admin in Chromium (loopback: no credential configured), its
sign-in with ADMIN_TOKEN, and the figures its charts are drawn from."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from models import ChatMessage, ChatSession, Sender
from server.keys import CHAT
from tests.conftest import LiveServer, make_settings, serve
from tests.support.browser import CHROMIUM_ARGS, require_chromium
from tests.support.sio import joined_chat_client
from tests.support.waiting import until

WAIT_MS = 15_000
# where the screenshot is kept for a person to look at (the test's own folder otherwise)
SHOTS = os.environ.get("ADMIN_SCREENSHOT_DIR")


@pytest.mark.browser
async def test_console_lists_shows_flags_exports_and_erases(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(sqlite_url, admin_sample_seconds=0.2, stun_server_url="")
    async with serve(settings) as live:
        client, session_id = await joined_chat_client(live.url, "grandma-kim")
        await client.emit("send-message", {"sessionId": session_id, "message": "기초연금 문의"})
        await client.next("ai-message")
        await live.app[CHAT].store.add(session_id, Sender.USER, "요즘 죽고 싶다는 생각이 들어요")
        await client.close()
        async with aiohttp.ClientSession() as http:
            async with http.post(
                live.url + "/api/v1/calls", json={"callerNumber": "010-2222-3333"}
            ) as resp:
                assert resp.status == 201
        await until(lambda: len(live.app[_history_key()].points) >= 2, what="two samples")

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(require_chromium()), args=CHROMIUM_ARGS
            )
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 1100})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                requested: list[str] = []
                page.on("request", lambda req: requested.append(req.url))
                await page.goto(live.url + "/admin")
                await expect(page.locator("#status")).to_have_text(
                    "준비되었습니다", timeout=WAIT_MS
                )
                await expect(page.locator("#numbers .number")).not_to_have_count(0)
                assert await page.locator("#chart-turns canvas").count() == 1
                assert await page.locator("#calls tr").count() == 1
                await page.fill("#session-user", "grandma-kim")
                await page.click("#session-search button")
                row = page.locator("#sessions tr")
                await expect(row).to_have_count(1, timeout=WAIT_MS)
                await row.click()
                await expect(page.locator("#messages li")).to_have_count(4, timeout=WAIT_MS)
                await expect(page.locator("#messages .flag")).to_have_text(["위기 표현"])
                shot = Path(SHOTS or tmp_path) / "admin-console.png"
                await page.screenshot(path=str(shot), full_page=True)

                async with page.expect_download() as download_info:
                    await page.click("#export-user")
                download = await download_info.value
                saved = await download.path()
                exported = json.loads(await asyncio.to_thread(Path(saved).read_text))
                assert exported["userId"] == "grandma-kim"
                assert len(exported["chatSessions"][0]["messages"]) == 4

                page.on("dialog", lambda dialog: dialog.accept())
                await page.click("#erase-user")
                await expect(page.locator("#status")).to_contain_text(
                    "grandma-kim: 삭제했습니다", timeout=WAIT_MS
                )
            finally:
                await browser.close()
        assert errors == []
        assert all(url.startswith(live.url) or url.startswith("blob:") for url in requested)
        assert not await ChatSession.filter(user_id="grandma-kim").exists()
        assert await ChatMessage.filter(session_id=session_id).count() == 0
        assert shot.stat().st_size > 10_000


def _history_key():  # type: ignore[no-untyped-def]
    from server.admin.samples import METRICS_HISTORY

    return METRICS_HISTORY


async def test_admin_token_sign_in_sets_the_cookie_the_console_uses(sqlite_url: str) -> None:
    token = "console-admin-token-0123456789"
    async with serve(make_settings(sqlite_url, admin_token=token)) as live:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.get(live.url + "/admin") as resp:
                assert resp.status == 401 and "관리자 토큰" in await resp.text()
            async with http.get(live.url + "/admin/static/admin.js") as resp:
                assert resp.status == 401
            async with http.post(live.url + "/admin/login", data={"token": "wrong"}) as resp:
                assert resp.status == 401 and "인증에 실패했습니다" in await resp.text()
            async with http.post(
                live.url + "/admin/login", data={"token": token}, allow_redirects=False
            ) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/admin"
                cookie = resp.cookies["mobok_admin"]
                assert cookie["httponly"] and cookie["samesite"] == "Strict"
            async with http.get(live.url + "/admin") as resp:
                assert resp.status == 200 and "mobok 관리자 콘솔" in await resp.text()
            async with http.get(live.url + "/api/v1/admin/metrics") as resp:
                body = await resp.json()
                assert resp.status == 200 and {"points", "current"} <= set(body)
            async with http.get(live.url + "/admin/static/../../config.py") as resp:
                assert resp.status in (400, 404)
            async with http.post(live.url + "/admin/logout", allow_redirects=False) as resp:
                assert resp.status == 303
            async with http.get(live.url + "/admin") as resp:
                assert resp.status == 401


async def test_the_samples_count_turns_per_minute(any_server: LiveServer) -> None:
    from server.admin.samples import METRICS_HISTORY, read_totals

    history = any_server.app[METRICS_HISTORY]
    before = read_totals().turns
    client, session_id = await joined_chat_client(any_server.url, "u")
    await client.emit("send-message", {"sessionId": session_id, "message": "안녕하세요"})
    await client.next("ai-message")
    await client.close()
    assert read_totals().turns == before + 1
    point = history.sample()
    assert point["turnsPerMinute"] > 0 and point["turnMeanMs"] is not None


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({}, "loopback clients only (set ADMIN_TOKEN or AUTH_SECRET to open them to others)"),
        ({"admin_token": "t" * 32}, "ADMIN_TOKEN"),
        (
            {"auth_secret": "s" * 32, "admin_token": "t" * 32},
            "a JWT with role admin or ADMIN_TOKEN",
        ),
    ],
)
async def test_the_start_says_who_may_administer(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, overrides: dict[str, str], said: str
) -> None:
    caplog.set_level(logging.INFO, logger="server.rest.admin")
    async with serve(make_settings(sqlite_url, **overrides)):
        pass
    assert f"admin routes and /admin: {said}" in caplog.messages
