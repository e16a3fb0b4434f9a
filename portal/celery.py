import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# One beat process runs this schedule; every entry starts a single small task.
app.conf.beat_schedule = {
    # The monthly close: early on the 1st (UTC), one task that fans out one task per billed party.
    "close-previous-month": {
        "task": "billing.tasks.close_previous_month",
        "schedule": crontab(day_of_month=1, hour=0, minute=30),
    },
    "clear-expired-sessions": {
        "task": "accounts.tasks.clear_expired_sessions",
        "schedule": crontab(hour=3, minute=17),
    },
}
