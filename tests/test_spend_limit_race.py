"""Two usage batches crossing one account's spend limit at the same moment, on PostgreSQL: the
crossing is acted on once (one `spend_limit.reached`, one `service.blocked`), whichever commits
first, and the usage of both is recorded."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Account, AuditEvent, ServiceBlock
from billing.ledger import services as ledger
from billing.models import UsageRecord
from billing.usage.services import ingest_usage
from controls.models import SpendLimit
from controls.services import check_accounts
from tests.concurrency import together
from tests.factories import account_with_owner

pytestmark = pytest.mark.postgres


def _setup():
    manager, owner = account_with_owner(name="Race Reseller", manager_kind=True)
    ledger.set_credit_limit(account=manager, limit=Decimal("10000.00"), actor=Actor.platform_staff())
    managed, _ = account_with_owner(name="Racing Voice", managed_kind=True, manager=manager)
    SpendLimit.objects.create(account=managed, set_by="manager", monthly_amount=Decimal("10.00"))
    return manager, owner, managed


def _events(managed: Account, change_type: str) -> int:
    return AuditEvent.objects.filter(account=managed, change_type=change_type).count()


@pytest.mark.django_db(transaction=True)
def test_two_batches_crossing_a_limit_at_once_block_once(catalogue):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency need PostgreSQL (run by .ci/run's second pass)")
    for round_no in range(3):
        _race_two_batches(round_no)


def _race_two_batches(round_no: int) -> None:
    manager, owner, managed = _setup()
    at = (timezone.now() - timedelta(minutes=1)).isoformat()

    def batch(n: int) -> None:
        rows = [
            {"account": str(managed.public_id), "product": "sms.outbound", "quantity": "1000",
             "started_at": at, "idempotency_key": f"race-{round_no}-{n}-{i}"}
            for i in range(3)
        ]  # fmt: skip
        # Each commits, then (eager Celery, as a worker would) checks the limit after commit.
        ingest_usage(submitter=manager, rows=rows, source="api", actor=Actor(user=owner))

    assert together(batch) == []
    assert UsageRecord.objects.filter(account=managed).count() == 6  # both batches recorded
    assert Account.objects.get(pk=managed.pk).service_blocked_reason == ServiceBlock.SPEND_LIMIT
    assert _events(managed, "spend_limit.reached") == 1
    assert _events(managed, "service.blocked") == 1


@pytest.mark.django_db(transaction=True)
def test_two_checks_of_one_crossing_at_once_act_on_it_once(catalogue):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency need PostgreSQL (run by .ci/run's second pass)")
    manager, owner, managed = _setup()
    at = (timezone.now() - timedelta(minutes=1)).isoformat()
    rows = [
        {"account": str(managed.public_id), "product": "sms.outbound", "quantity": "1000", "started_at": at,
         "idempotency_key": f"k-{i}"}
        for i in range(3)
    ]  # fmt: skip
    SpendLimit.objects.filter(account=managed).update(monthly_amount=Decimal("100.00"))
    ingest_usage(submitter=manager, rows=rows, source="api", actor=Actor(user=owner))
    SpendLimit.objects.filter(account=managed).update(monthly_amount=Decimal("10.00"))  # crossed, not yet seen
    results: list = []
    assert together(lambda n: results.append(check_accounts(account_ids=[managed.pk])), count=4) == []
    assert sorted(r.blocked for r in results) == [0, 0, 0, 1]
    assert _events(managed, "spend_limit.reached") == 1
    assert _events(managed, "service.blocked") == 1
