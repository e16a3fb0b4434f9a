"""Browser tests: headless Debian Chromium driven by Playwright against pytest-django's live server.

Never downloads a browser (no `playwright install`): it launches the system Chromium. When that is
missing the tests are skipped loudly, or fail when MC_REQUIRE_BROWSER=1 (CI must not skip silently).
Each test leaves a full-page screenshot in var/screenshots/<test name>.png for a human to look at.
"""

import os
import shutil
from pathlib import Path

import pytest

BROWSER_DIR = Path(__file__).resolve().parent
SCREENSHOT_DIR = BROWSER_DIR.parents[1] / "var" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
SKIP_REASON = "BROWSER TESTS SKIPPED: Debian chromium not found (apt-get install chromium; /usr/bin/chromium)"


def pytest_collection_modifyitems(config, items):
    """Every test in this folder is a browser test, whatever its module says."""
    for item in items:
        if BROWSER_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


def _find_chromium() -> str | None:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session", autouse=True)
def chromium_executable() -> str:
    """Path of Debian's Chromium; skips (or fails with MC_REQUIRE_BROWSER=1) every browser test without it."""
    path = _find_chromium()
    if path is None:
        if os.environ.get("MC_REQUIRE_BROWSER") == "1":
            pytest.fail(
                "MC_REQUIRE_BROWSER=1 but Debian chromium was not found (looked for `chromium` on PATH "
                "and /usr/bin/chromium). Install it with apt-get install chromium; never `playwright install`.",
                pytrace=False,
            )
        pytest.skip(SKIP_REASON)
    return path


@pytest.fixture(scope="package")
def browser(chromium_executable):
    """One Chromium for this folder's tests, stopped when they are done.

    Playwright's sync API keeps an event loop running in the main thread, where Django's ORM then
    refuses to run (the test's own factories and assertions run there). DJANGO_ALLOW_ASYNC_UNSAFE is
    set before Playwright starts and restored after it stops, never for the whole process: it would
    leak into the other tests and their subprocesses (`manage.py check --deploy` reports async.E001).
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def page(request, browser, live_server):
    """A fresh browser context (no cookies) per test, with the live server as base URL."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(SCREENSHOT_DIR / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()
