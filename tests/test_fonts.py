"""The Korean web font (the pages' last fallback): it covers every syllable the pages and
the server's texts show, and Chromium on a machine without a Korean font loads and uses it
on the chat, call and admin pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from playwright.async_api import async_playwright

from tests.conftest import LiveServer
from tests.support.browser import CHROMIUM_ARGS, require_chromium

ROOT = Path(__file__).resolve().parent.parent
FONT = ROOT / "public" / "fonts" / "korean-fallback.woff2"
SHOWN = [
    "public/*.html",
    "public/*.js",
    "server/admin/static/*.html",
    "server/admin/static/*.js",
    "server/texts.py",
    "server/errors.py",
    "server/welfare/data/*.json",
    "server/agents/*.json",
]


def test_the_font_is_small_and_covers_every_syllable_shown() -> None:
    assert FONT.stat().st_size < 200_000
    cmap = TTFont(FONT).getBestCmap()
    assert sum(1 for code in cmap if 0xAC00 <= code <= 0xD7A3) == 2350  # KS X 1001
    missing: dict[str, set[str]] = {}
    files = [f for pattern in SHOWN for f in ROOT.glob(pattern)]
    assert len(files) > 8
    for path in files:
        for ch in path.read_text(encoding="utf-8"):
            if 0xAC00 <= ord(ch) <= 0xD7A3 and ord(ch) not in cmap:
                missing.setdefault(ch, set()).add(path.name)
    assert missing == {}


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/", "/ai-call-test.html", "/admin"])
async def test_chromium_without_a_korean_font_uses_the_served_one(
    server: LiveServer, path: str
) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(require_chromium()), args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            fonts: list[str] = []
            page.on("response", lambda r: fonts.append(r.url) if "/fonts/" in r.url else None)
            await page.goto(server.url + path)
            await page.evaluate("document.fonts.ready")
            faces = await page.evaluate(
                "[...document.fonts].map(f => [f.family.replaceAll('\"', ''), f.status])"
            )
            # a Hangul run is drawn with it: as wide as the face says, not as empty boxes
            widths = await page.evaluate(
                """() => {
                    const c = document.createElement('canvas').getContext('2d');
                    c.font = '32px "mobok Korean"'; const served = c.measureText('복지').width;
                    c.font = '32px sans-serif'; const system = c.measureText('복지').width;
                    return [served, system];
                }"""
            )
        finally:
            await browser.close()
    assert ["mobok Korean", "loaded"] in faces
    assert any(url.endswith("/fonts/korean-fallback.woff2") for url in fonts)
    assert widths[0] > 0 and widths[0] != widths[1]
