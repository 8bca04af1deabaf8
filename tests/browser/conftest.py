"""Browser fixtures: one headless system Chromium (software GL via SwiftShader) per test module,
and ``open_page`` that opens a page on the live server in a fresh context, recording console
errors and page errors so each test can assert there were none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.chromium import CHROMIUM, NO_WEBGL_SCRIPT, launch

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium():
    # Module scope: Playwright's sync API allows one instance per thread at a time, and other
    # test modules here start their own.
    if not Path(CHROMIUM).exists():
        pytest.skip("no system Chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()


class OpenedPage:
    def __init__(self, page, errors):
        self.page = page
        self.errors = errors


@pytest.fixture
def open_page(chromium, live_server):
    contexts = []

    def opener(path: str, *, webgl: bool = True, wait: bool = True, **context_options):
        options = {"viewport": {"width": 1100, "height": 900}, **context_options}
        context = chromium.new_context(**options)
        contexts.append(context)
        if not webgl:
            context.add_init_script(NO_WEBGL_SCRIPT)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.goto(live_server.base_url + path)
        if wait:
            page.wait_for_selector("html[data-scene-state]", state="attached", timeout=120_000)
        return OpenedPage(page, errors)

    yield opener
    for context in contexts:
        context.close()


def write_screenshots() -> bool:
    return os.environ.get("HAVEN_WRITE_SCREENSHOTS") == "1"
