"""Webhook deliveries per second through a real Celery worker to a receiver on loopback.

`./dev bench -k webhook_throughput`, or this file with `-m slow`; BENCH_WEBHOOKS says how many
(10,000 by default, the issue's figure; BENCH_WEBHOOKS=1000 for a quick run). The
events are service blocks of that many managed accounts recorded in one batch, as controls records
them; each goes to the manager's endpoint, and the receiver counts every webhook-id: none may be
missing or come twice."""

import os
import time

import pytest

from accounts import audit
from accounts.actor import Actor
from tests import webhook_receiver
from tests.conftest import make_managed_accounts
from tests.test_webhook_deliveries import add_endpoint
from webhooks.models import WebhookDelivery

COUNT = int(os.environ.get("BENCH_WEBHOOKS", "10000"))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_deliveries_per_second_through_a_real_worker(world, owner_client, real_worker):
    receiver = webhook_receiver.start()
    try:
        add_endpoint(owner_client, world.manager, receiver.url, ["service.blocked"], managed=True)
        accounts = make_managed_accounts(world.manager, COUNT)
        entries = [
            audit.Entry(account=a, change_type=audit.ChangeType.SERVICE_BLOCKED, resource=a, changes=[])
            for a in accounts
        ]
        started = time.monotonic()
        audit.record_many(actor=Actor.platform_staff(), entries=entries)
        deadline = started + 600
        while len(receiver.requests) < COUNT and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        ids = receiver.ids()
        assert len(ids) == COUNT and set(ids.values()) == {1}  # none lost, none twice
        time.sleep(1)  # the last rows' status is written just after the answer
        assert WebhookDelivery.objects.filter(status="delivered").count() == COUNT
        print(f"\nwebhooks: {COUNT} deliveries in {elapsed:.1f} s, {COUNT / elapsed:.0f} per second (one solo worker)")
    finally:
        receiver.stop()
