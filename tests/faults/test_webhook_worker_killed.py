"""A Celery worker process killed (SIGKILL, as the OOM killer would) while webhook deliveries are
pending and some are in flight: after a restart every event is delivered, and none twice with a
new webhook-id (Standard Webhooks lets a receiver see the same id again; each event's delivery has
one id, so the receiver counts distinct ids).

It runs on what the suite runs on: SQLite and the file-system broker by default (the worker uses
the test's SQLite file and broker folders), PostgreSQL and Redis when DATABASE_URL and
CELERY_BROKER_URL say so. The events are recorded here, in the test process, as controls records
service blocks; their deliveries go to the broker after commit and the worker subprocess sends them
to a slow receiver on loopback (so that the kill finds requests under way). After the restart the
test sends the sweep as beat does every minute: it queues the deliveries whose task died with the
worker, and those a killed worker had claimed once their claim has expired."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from portal.celery import app
from tests import webhook_receiver
from tests.conftest import make_managed_accounts
from tests.faults.conftest import Processes, test_database_url, wait_for
from tests.test_webhook_deliveries import add_endpoint
from webhooks import tasks
from webhooks.models import WebhookDelivery

EVENTS = 120
WORKER_SETTINGS = "tests.faults.webhook_worker_settings"


class WorkerProcesses(Processes):
    """Workers on the database and broker this test runs on, with the shortened webhook timings."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["DJANGO_SETTINGS_MODULE"] = WORKER_SETTINGS
        if connection.vendor == "sqlite":
            # The test's SQLite file and its var/ (the file-system broker's folders are there).
            env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
            env["MC_VAR_DIR"] = str(settings.VAR_DIR)
        else:
            env["DATABASE_URL"] = test_database_url()
        return env


@pytest.fixture
def broker():
    """Tasks from this process go to the configured broker (not run eagerly), emptied first."""
    app.conf.task_always_eager = False
    app.control.purge()
    try:
        yield settings.CELERY_BROKER_URL
    finally:
        app.control.purge()
        app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER


def delivered() -> int:
    return WebhookDelivery.objects.filter(status=WebhookDelivery.Status.DELIVERED).count()


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_loses_no_event_and_sends_none_twice_with_a_new_id(world, owner_client, broker, tmp_path):
    if connection.vendor == "postgresql" and not broker.startswith("redis://"):
        pytest.skip("on PostgreSQL the fault runs with Redis: set CELERY_BROKER_URL=redis://...")
    receiver = webhook_receiver.start(delay=0.15)
    processes = WorkerProcesses(tmp_path, broker)
    try:
        add_endpoint(owner_client, world.manager, receiver.url, ["service.blocked"], managed=True)
        accounts = make_managed_accounts(world.manager, EVENTS)
        entries = [
            audit.Entry(account=a, change_type=audit.ChangeType.SERVICE_BLOCKED, resource=a, changes=[])
            for a in accounts
        ]
        audit.record_many(actor=Actor.platform_staff(), entries=entries)
        expected = set(WebhookDelivery.objects.values_list("public_id", flat=True))
        assert len(expected) == EVENTS

        first = processes.worker("first", concurrency=2)
        wait_for(lambda: len(receiver.requests) >= EVENTS // 4, timeout=120, what="a quarter sent", logs=processes.logs)
        processes.kill(first)
        killed_at = timezone.now()
        in_flight = WebhookDelivery.objects.filter(status="pending", claimed_until__gt=killed_at).count()
        pending = WebhookDelivery.objects.filter(status="pending").count()
        assert in_flight >= 1, "the kill found no request under way"
        assert pending > EVENTS // 2, "the kill came too late: most deliveries had gone"
        sent_before = len(receiver.requests)

        restarted_at = timezone.now()  # the killed worker is gone: every attempt from now is the new one's
        processes.worker("restarted", concurrency=2)

        def all_delivered() -> bool:
            tasks.sweep.delay()  # what beat sends every minute
            return delivered() == EVENTS

        wait_for(all_delivered, timeout=180, every=2, what="every delivery", logs=processes.logs)
        time.sleep(1)  # a late repeat would show here

        ids = receiver.ids()
        assert set(ids) == {f"msg_{u.hex}" for u in expected}  # every event, each with its own one id
        repeated = {i: n for i, n in ids.items() if n > 1}
        assert len(repeated) <= in_flight + 2, repeated  # only what a killed worker had under way
        for delivery in WebhookDelivery.objects.all():
            assert delivery.status == "delivered"
            assert delivery.claimed_until is None and delivery.next_attempt_at is None
        late = WebhookDelivery.objects.filter(last_attempt_at__gte=restarted_at)
        assert late.count() >= pending  # the restarted worker sent what the killed one had left
        print(
            f"\n{connection.vendor} + {broker.split('://')[0]}: {EVENTS} events, {sent_before} requests before "
            f"the kill, {pending} pending and {in_flight} in flight at it, {len(ids)} distinct webhook-ids "
            f"received, {len(repeated)} received twice with the same id"
        )
    finally:
        processes.kill_all()
        receiver.stop()
