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
