"""Shared set-up of the Playwright tests: Debian's Chromium, browser contexts, logging a user
in by session cookie, the eager Celery worker, and where screenshots go.

`tests/conftest.py` loads this module as a plugin (`pytest_plugins`). A browser test module
marks itself with `pytestmark = BROWSER_TEST`; the `browser` fixture also skips by itself
when Chromium or Playwright is missing, so no test can fail for want of a browser.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright's own browser is never downloaded
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
]  # fmt: skip
SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"

BROWSER_TEST = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def browser(monkeypatch):
    """A headless Chromium, closed after the test."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API keeps an event loop running in this thread, and Django then refuses
    # ORM calls from the test ("cannot call this from an async context"). Set for this test
    # only (including the database teardown, which runs while the browser is still open).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        # The test's ORM calls ran beside Playwright's event loop, with database connections of
        # their own: closed here, or the test database could not be dropped at the end.
        connections.close_all()
        launched.close()


@pytest.fixture
def browser_context(browser):
    """Make a browser context (English, unless `locale` says otherwise); closed after the test."""
    contexts = []

    def make(**options):
        context = browser.new_context(**{"locale": "en-US", **options})
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def session_login(live_server):
    """Log `user` in on a browser context with a session cookie like the login view makes
    (the login form itself has its own browser test)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    def log_in(context, user) -> None:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session.session_key, "url": live_server.url}])

    return log_in


@pytest.fixture
def eager_worker():
    """The Celery worker's job, done in the web process as soon as a task is queued."""
    from whatsbot.celery import app as celery_app

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def screenshot(page, filename: str, *, full_page: bool = False) -> None:
    """Save a screenshot as a test artifact: artifacts/screenshots/<filename>."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / filename), full_page=full_page)
