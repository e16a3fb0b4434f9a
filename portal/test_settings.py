"""Settings for the test suite: the normal settings with MC_ENV=test unless the caller chose."""

import os
import tempfile

os.environ.setdefault("MC_ENV", "test")
# Tests get their own var/ (file-system broker, beat schedule), so a developer's running worker
# never takes a test's task and tests never leave files in the work tree.
os.environ.setdefault("MC_VAR_DIR", tempfile.mkdtemp(prefix="mission-control-test-"))

from portal.settings import *  # noqa: E402,F403

if not os.environ.get("STRIPE_API_BASE"):
    # Stripe calls go to the localstripe the tests start (the `localstripe` fixture sets it); until
    # then to a closed loopback port, never to a developer's `./dev run` localstripe.
    STRIPE_API_BASE = "http://127.0.0.1:9"
    STRIPE_JS_URL = f"{STRIPE_API_BASE}/js.stripe.com/v3/"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not Django's default shared-cache in-memory database: tests that run a real Celery
    # worker or a live server talk to it from other threads, and shared-cache SQLite answers a
    # concurrent writer with "database table is locked" at once instead of waiting out the busy
    # timeout as the file database of `./dev run` does. WAL lets a reader poll while the worker
    # writes; the file is scratch, so commits need not reach the disk.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF"  # noqa: F405
