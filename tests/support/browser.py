"""Debian's Chromium, driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

from typing import Any

CHROMIUM = "/usr/bin/chromium"
# Headless, as root, on a machine whose network ends at loopback: no sandbox, and none of
# Chromium's own background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ZONE = "Europe/Berlin"  # the viewer's zone in browser tests and screenshots


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
