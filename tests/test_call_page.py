"""The call page `/ai-call-test.html` in a real Chromium places a call to the AI (CONTRACT §2).

Chromium's fake microphone plays an English sentence spoken by espeak-ng; the AI greets,
hears it (offline STT: pocketsphinx) and answers by voice. Media stays on 127.0.0.1: the
AI peer gathers on loopback only, the page gets no STUN server, and an init script drops
every ICE candidate of the browser that is not 127.0.0.1 before the page sees it.
Without /usr/bin/chromium or espeak-ng the test skips, or fails under CI=true.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from playwright.async_api import Page, Route, async_playwright, expect

from models import ChatMessage
from models.calls import Call
from server.ai.audio import decode_to_pcm, wav_bytes
from server.calls.prompts import CALL_GREETING
from server.config import ROOT
from tests.conftest import LiveServer, make_settings, require, serve
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.support.voice_client import KEYWORDS, espeak_available, spoken_wav
from tests.support.waiting import until

pytestmark = pytest.mark.browser

SEED_GUIDE = ROOT.parent / "shared" / "seeds" / "webrtc-ai-call-guide.md"
SOCKET_IO_CDN = "https://cdn.socket.io/4.5.4/socket.io.min.js"
VENDORED_SOCKET_IO = ROOT / "public" / "vendor" / "socket.io.min.js"
RATE = 48_000
WAIT_MS = 60_000

# Only loopback candidates reach the page's handler (and so the server).
LOOPBACK_ONLY = """
(() => {
  const Native = window.RTCPeerConnection;
  const loopback = (c) => !c || !c.candidate || / 127\\.0\\.0\\.1 /.test(c.candidate);
  window.RTCPeerConnection = class extends Native {
    set onicecandidate(handler) {
      super.onicecandidate = (event) => { if (loopback(event.candidate)) handler(event); };
    }
    get onicecandidate() { return super.onicecandidate; }
  };
})();
"""

INBOUND_AUDIO = """async () => {
  const pc = window.aiCall && window.aiCall.pc;
  if (!pc) return null;
  for (const report of (await pc.getStats()).values()) {
    if (report.type === 'inbound-rtp' && report.kind === 'audio') {
      return { bytes: report.bytesReceived || 0, level: report.audioLevel || 0 };
    }
  }
  return null;
}"""


def microphone_wav(path: Path) -> Path:
    """2 s of silence, the sentence, then silence (Chromium loops the file)."""
    speech = decode_to_pcm(spoken_wav(), RATE)
    silence = bytes(2 * RATE * 2)
    path.write_bytes(wav_bytes(silence + speech + silence * 4, RATE))
    return path


@pytest.fixture
async def call_server(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveServer]:
    monkeypatch.setenv("RTC_ICE_LOOPBACK", "1")
    monkeypatch.setenv("STUN_SERVER_URL", "")  # the page's RTCConfiguration: no STUN server
    monkeypatch.setenv("VOICE_GREETING_DELAY_MS", "500")
    async with serve(make_settings(sqlite_url)) as live:
        yield live


@pytest.fixture
def microphone(tmp_path: Path) -> Path:
    require_chromium()
    require(espeak_available(), "espeak-ng is not installed")
    return microphone_wav(tmp_path / "microphone.wav")


@pytest.fixture
async def page(microphone: Path, call_server: LiveServer) -> AsyncIterator[Page]:
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
        # the documented page calls http://localhost:3000: that is this test's server
        f"--host-resolver-rules=MAP localhost:3000 127.0.0.1:{urlsplit(call_server.url).port}",
    ]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            context = await browser.new_context()
            await context.add_init_script(LOOPBACK_ONLY)
            await context.route("**/*", stay_local)
            yield await context.new_page()
        finally:
            await browser.close()


async def stay_local(route: Route) -> None:
    """Nothing leaves the machine: the seed page's CDN script is served from the vendored
    copy, any other outside address is refused."""
    url = route.request.url
    if url == SOCKET_IO_CDN:
        await route.fulfill(path=VENDORED_SOCKET_IO, content_type="application/javascript")
    elif urlsplit(url).hostname in ("127.0.0.1", "localhost"):
        await route.continue_()
    else:
        await route.abort()


async def test_the_page_calls_the_ai_hears_the_greeting_and_gets_answers(
    call_server: LiveServer, page: Page
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{call_server.url}/ai-call-test.html")
    await page.click("#startCall")

    # the greeting: an ai-audio-response, and sound on the AI's track
    await page.wait_for_function(
        "text => window.aiCall.events.some(e => e.text === text)",
        arg=CALL_GREETING,
        timeout=WAIT_MS,
    )
    first = await page.evaluate(INBOUND_AUDIO)
    assert first is not None
    await page.wait_for_function(
        f"async () => {{ const s = await ({INBOUND_AUDIO})(); "
        f"return s && s.bytes > {first['bytes']} && s.level > 0; }}",
        timeout=WAIT_MS,
        polling=200,
    )
    await expect(page.locator("#callStatus")).to_have_text("통화 중", timeout=WAIT_MS)

    # the caller's sentence, transcribed offline and answered by voice
    await page.wait_for_function(
        "words => window.aiCall.events.some(e => e.transcript &&"
        " words.some(w => e.transcript.toLowerCase().includes(w)))",
        arg=list(KEYWORDS),
        timeout=WAIT_MS,
    )
    await expect(page.locator("#transcript .caller").first).to_be_visible()
    await expect(page.locator("#transcript .ai").nth(1)).to_be_visible()
    call_id = await page.evaluate("window.aiCall.call.id")
    call = await Call.get(id=call_id)
    rows = await ChatMessage.filter(session_id=call.session_id).order_by("created_at")
    assert [r.sender for r in rows[:3]] == ["assistant", "user", "assistant"]
    assert {r.message_type for r in rows} == {"AUDIO"}

    # barge-in: on `ai-audio-interrupted` the page drops what its audio element still holds
    muted = await page.evaluate(
        "() => { window.aiCall.socket.listeners('ai-audio-interrupted')"
        ".forEach(f => f({ timestamp: Date.now() }));"
        " return document.getElementById('remoteAudio').muted; }"
    )
    assert muted is True
    await page.wait_for_function("() => !document.getElementById('remoteAudio').muted")
    assert await page.evaluate("window.aiCall.events.some(e => e.interrupted)")

    await page.click("#endCall")
    await expect(page.locator("#callStatus")).to_have_text("종료됨", timeout=WAIT_MS)
    assert (await Call.get(id=call_id)).status == "ENDED"
    # a finished call: media closed, the audio element let go, a closing note, no error line
    await expect(page.locator("#transcript .note").last).to_have_text("통화를 종료했습니다")
    await expect(page.locator("#mediaState")).to_have_text("닫힘")
    await expect(page.locator("#micState")).to_have_text("꺼짐")
    assert await page.evaluate("document.getElementById('remoteAudio').srcObject") is None
    assert await page.locator("#error").inner_text() == ""
    assert "끊어졌습니다" not in await page.locator("#transcript").inner_text()
    assert errors == []


@pytest.fixture
def seed_page() -> str:
    """The documented call page, as the guide prints it."""
    require(SEED_GUIDE.exists(), f"{SEED_GUIDE} is missing")
    found = re.search(r"```html\n(.*?)```", SEED_GUIDE.read_text("utf-8"), re.S)
    assert found is not None
    return found.group(1)


@pytest.fixture
async def seed_page_url(seed_page: str) -> AsyncIterator[str]:
    """The documented page, unchanged, served from an origin of its own."""

    async def serve_page(request: web.Request) -> web.Response:
        return web.Response(text=seed_page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", serve_page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


async def test_the_documented_page_from_another_origin_completes_a_call(
    call_server: LiveServer, page: Page, seed_page_url: str
) -> None:
    await page.goto(seed_page_url)
    await page.click("#startCall")
    # `callId` and `peerConnection` are the page's own top-level variables
    call_id = str(
        await (await page.wait_for_function("() => callId", timeout=WAIT_MS)).json_value()
    )
    call = await Call.get(id=call_id)

    async def spoken(sender: str) -> list[str]:
        return [
            m.content for m in await ChatMessage.filter(session_id=call.session_id, sender=sender)
        ]

    await until(lambda: spoken("assistant"), timeout=30)  # the greeting
    assert (await spoken("assistant"))[0] == CALL_GREETING
    stats = (
        "async () => { for (const r of (await peerConnection.getStats()).values())"
        " if (r.type === 'inbound-rtp' && r.kind === 'audio') return r.audioLevel > 0; }"
    )
    await page.wait_for_function(stats, timeout=WAIT_MS, polling=200)

    async def heard() -> bool:
        return any(w in t.lower() for t in await spoken("user") for w in KEYWORDS)

    await until(heard, timeout=60)

    async def answered() -> bool:
        return len(await spoken("assistant")) >= 2

    await until(answered, timeout=30)
    await page.click("#endCall")

    async def ended() -> bool:
        return (await Call.get(id=call_id)).status == "ENDED"

    await until(ended, timeout=30)
