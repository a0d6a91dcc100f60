"""Debian's Chromium driven by Playwright (the system binary: no browser download), for the web
console's tests. `make test` installs the `chromium` package where it is missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, async_playwright

# Chromium reaches for Google's services at start; this machine's network refuses them.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise AssertionError("Chromium is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    return found


@asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()
