"""Debian's Chromium for the browser tests, driven by Playwright (never `playwright install`:
the browser comes from `apt-get install -y chromium`)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import require

CHROMIUM = Path("/usr/bin/chromium")
# headless in a sandbox-less container, nothing fetched behind the test's back
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> Path:
    """Skip when Chromium is missing on a developer's machine; CI must have it."""
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install -y chromium)")
    return CHROMIUM
