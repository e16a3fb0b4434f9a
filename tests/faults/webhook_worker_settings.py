"""Settings of the Celery workers that tests/faults/test_webhook_worker_killed.py starts and kills:
the normal settings with the webhook timings shortened (a claim held 3 s instead of 40, a due
delivery counted lost after 1 s instead of a minute) so that the test waits seconds, not minutes."""

from portal.settings import *  # noqa: F403

WEBHOOK_TIMEOUT_SECONDS = 2
WEBHOOK_CLAIM_SECONDS = 3
WEBHOOK_LOST_AFTER_SECONDS = 1
