import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# One beat process runs this schedule; every entry starts a single small task.
app.conf.beat_schedule = {
    # Billing-mode changes take effect at 00:00 on the 1st (UTC), before the close; hourly that day again.
    "billing-mode-changes": {
        "task": "billing.tasks.apply_billing_mode_changes",
        "schedule": crontab(day_of_month=1, minute=0),
    },
    # The monthly close: early on the 1st (UTC), one task that fans out one task per billed party.
    "close-previous-month": {
        "task": "billing.tasks.close_previous_month",
        "schedule": crontab(day_of_month=1, hour=0, minute=30),
    },
    # Then hourly for the rest of the 1st: a re-run queues only the parties not done yet (a task lost
    # with a worker or a Redis restart) and changes nothing once the month is closed.
    "close-previous-month-sweep": {
        "task": "billing.tasks.close_previous_month",
        "schedule": crontab(day_of_month=1, hour="1-23", minute=30),
    },
    # Usage records are partitioned by month on PostgreSQL: the coming months' partitions made ahead.
    "usage-partitions-ahead": {
        "task": "billing.tasks.create_usage_partitions",
        "schedule": crontab(hour=0, minute=5),
    },
    # Spend-limit blocks end with their day or month (UTC): lifted and audited at the top of the hour.
    "controls-period-start": {
        "task": "controls.tasks.check_period_start",
        "schedule": crontab(minute=0),
    },
    # Webhook deliveries whose task was lost (a worker killed, the broker restarted) are queued again.
    "webhooks-sweep": {
        "task": "webhooks.tasks.sweep",
        "schedule": crontab(minute="*"),
    },
    "clear-expired-sessions": {
        "task": "accounts.tasks.clear_expired_sessions",
        "schedule": crontab(hour=3, minute=17),
    },
}
