"""Settings for the test suite: the normal settings with MC_ENV=test unless the caller chose."""

import os

os.environ.setdefault("MC_ENV", "test")

from portal.settings import *  # noqa: E402,F403
