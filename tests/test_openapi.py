"""API docs that render (point 4 of the operations issue): Swagger UI 5 over the document in
Chromium, every path an operation; the document's constraints; 405 for a wrong method; and
schemathesis against the running server with no failure."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests.conftest import LiveServer, make_settings, serve
from tests.support.browser import CHROMIUM_ARGS, require_chromium

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
async def docs_server(sqlite_url: str) -> AsyncIterator[LiveServer]:
    async with serve(make_settings(sqlite_url, stun_server_url="")) as live:
        yield live


async def document(live: LiveServer) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(live.url + "/api/docs/openapi.json") as resp:
            assert resp.status == 200
            doc: dict[str, Any] = await resp.json()
    return doc


@pytest.mark.browser
async def test_swagger_ui_shows_every_path_of_the_document(docs_server: LiveServer) -> None:
    doc = await document(docs_server)
    expected = sorted(
        (method.upper(), path) for path, item in doc["paths"].items() for method in item
    )
    assert len(expected) >= 16
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(require_chromium()), args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            requested: list[str] = []
            page.on("request", lambda req: requested.append(req.url))
            await page.goto(docs_server.url + "/api/docs")
            await page.wait_for_selector(".opblock", timeout=20_000)
            shown = await page.eval_on_selector_all(
                ".opblock",
                """blocks => blocks.map(b => [
                    b.querySelector('.opblock-summary-method').textContent.trim(),
                    b.querySelector('.opblock-summary-path').getAttribute('data-path')])""",
            )
            text = await page.inner_text("body")
        finally:
            await browser.close()
    assert sorted(tuple(s) for s in shown) == expected
    assert "Unable to render" not in text and "valid version field" not in text
    assert errors == []
    assert all(url.startswith(docs_server.url) for url in requested), requested  # no CDN


async def test_the_document_declares_the_constraints_the_handlers_enforce(
    docs_server: LiveServer,
) -> None:
    doc = await document(docs_server)
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    caller = schemas["CreateCallBody"]["properties"]["callerNumber"]
    assert caller["pattern"].startswith("^") and caller["type"] == "string"
    room = doc["paths"]["/api/chat/history/{sid}"]["get"]["parameters"]
    assert room[0]["schema"]["pattern"] == "^[A-Za-z0-9_-]{1,128}$"
    sessions = doc["paths"]["/api/v1/chat/sessions"]["get"]
    limit = next(p for p in sessions["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 200)
    assert {"401", "403"} <= set(sessions["responses"])
    assert sessions["security"][0] == {"bearerAuth": []}
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    deleted = doc["paths"]["/api/v1/chat/sessions/{sessionId}"]["delete"]["responses"]["204"]
    assert "content" not in deleted


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/v1/calls/abc/connect", "OPTIONS, POST"),
        ("GET", "/api/v1/calls/conversation/process", "OPTIONS, POST"),
        ("PUT", "/api/v1/chat/sessions", "GET, HEAD, OPTIONS"),
        ("POST", "/api/v1/health", "GET, HEAD, OPTIONS"),
        ("PATCH", "/api/v1/users/u1", "DELETE, OPTIONS"),
    ],
)
async def test_a_wrong_method_is_405_with_allow(
    docs_server: LiveServer, method: str, path: str, allow: str
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, docs_server.url + path) as resp:
            assert resp.status == 405
            assert resp.headers["Allow"] == allow
            assert (await resp.json())["message"] == f"허용되지 않는 메서드입니다: {method}"


@pytest.mark.slow  # ~1000 generated requests
async def test_schemathesis_finds_no_failure(docs_server: LiveServer, tmp_path: Path) -> None:
    """Every check (`--checks all`), every phase, against the running server; the two
    things the document cannot say are in tests/schemathesis.toml with their reasons."""
    seed = os.environ.get("SCHEMATHESIS_SEED", "20261206")
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(ROOT / "tests" / "schemathesis.toml"),
        "run",
        docs_server.url + "/api/docs/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "ensure_resource_availability",  # why: tests/schemathesis.toml
        "--max-examples",
        os.environ.get("SCHEMATHESIS_EXAMPLES", "30"),
        "--workers",
        "1",
        "--seed",
        seed,
        "--no-color",
        cwd=tmp_path,  # its `.schemathesis/` of replayable cases stays out of the tree
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=600)
    report = out.decode(errors="replace")
    summary = report.strip().splitlines()[-1]
    counted = [line.strip() for line in report.splitlines() if " generated, " in line]
    print(f"schemathesis (seed {seed}): {counted} {summary}")
    assert proc.returncode == 0, report[-6000:]
    assert "failure" not in summary and "passed" in report, report[-3000:]
