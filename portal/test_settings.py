"""Settings for the test suite: the normal settings with MC_ENV=test unless the caller chose."""

import os
import tempfile

os.environ.setdefault("MC_ENV", "test")
# Tests get their own var/ (file-system broker, beat schedule), so a developer's running worker
# never takes a test's task and tests never leave files in the work tree.
os.environ.setdefault("MC_VAR_DIR", tempfile.mkdtemp(prefix="mission-control-test-"))

from portal.settings import *  # noqa: E402,F403
