"""Open a local HTML page in headless Chromium (Playwright) and collect its problems and script results.

Tests skip with the reason when Chromium or Playwright is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

IMAGES = "Array.from(document.images).map(i => [i.complete, i.naturalWidth])"


def open_page(path: Path, scripts: Mapping[str, str], *, width: int | None = None,
              screenshot: Path | None = None) -> tuple[list[str], dict[str, Any]]:
    """Load `path`; return console errors/warnings, page errors and failed requests, and each script's value.

    `width`: the viewport width in CSS pixels (a phone-like, touch viewport below 600); `screenshot`: a full-page PNG.
    """
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=browser, args=["--no-sandbox", "--disable-gpu",
                                                                   "--disable-background-networking"])
        view = {} if width is None else {"viewport": {"width": width, "height": 900}, "is_mobile": width < 600,
                                         "has_touch": width < 600}
        page = chrome.new_page(**view)
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto(path.as_uri(), wait_until="load")
        results = {name: page.evaluate(script) for name, script in scripts.items()}
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=True)
        chrome.close()
    return problems, results
