"""`service_status` on managed-account records (issue 13 item 5), read through the official telnyx
SDK: "active", or "blocked" with the reason, and back to "active" when the reason goes."""

import importlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Account
from billing.ledger import services as ledger
from billing.usage.services import ingest_usage
from controls.models import SpendLimit
from controls.services import set_spend_limit
from tests.factories import account_with_owner


@pytest.fixture
def catalogue(transactional_db):
    """The products and list prices: a data migration loads them, but each transactional test flushes them."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)


def _extra(record, name: str):
    return (record.model_extra or {})[name]


@pytest.mark.django_db(transaction=True)
def test_managed_account_records_carry_the_service_status_and_its_reason(world, make_key, sdk, catalogue):
    api = sdk(make_key(world.manager))
    owner = Actor(user=world.users["owner"])
    ledger.set_credit_limit(account=world.manager, limit=Decimal("1000.00"), actor=Actor.platform_staff())
    cedar, _ = account_with_owner(
        name="Cedar Call Centre", managed_kind=True, manager=world.manager, billing_mode=Account.BillingMode.SEPARATE
    )
    limit = set_spend_limit(
        account=world.managed, set_by=SpendLimit.SetBy.MANAGER, product=None, monthly_amount=Decimal("5.00"),
        daily_amount=None, action=SpendLimit.Action.BLOCK, actor=owner,
    )  # fmt: skip
    at = (timezone.now() - timedelta(minutes=1)).isoformat()
    rows = [
        {"account": str(a.public_id), "product": "sms.outbound", "quantity": "1000", "started_at": at,
         "idempotency_key": f"{a.pk}-{i}"}
        for a in (world.managed, cedar) for i in range(2)
    ]  # fmt: skip
    ingest_usage(submitter=world.manager, rows=rows, source="api", actor=owner)  # commits; checks after commit

    over = api.managed_accounts.retrieve(str(world.managed.public_id)).data
    broke = api.managed_accounts.retrieve(str(cedar.public_id)).data
    fine = api.managed_accounts.retrieve(str(world.sibling.public_id)).data
    assert (_extra(over, "service_status"), _extra(over, "service_blocked_reason")) == ("blocked", "spend_limit")
    assert (_extra(broke, "service_status"), _extra(broke, "service_blocked_reason")) == ("blocked", "credit_exhausted")
    assert (_extra(fine, "service_status"), _extra(fine, "service_blocked_reason")) == ("active", None)
    listed = {a.id: _extra(a, "service_status") for a in api.managed_accounts.list().data}
    assert listed[str(world.managed.public_id)] == "blocked"

    set_spend_limit(
        account=world.managed, set_by=limit.set_by, product=None, monthly_amount=Decimal("50.00"),
        daily_amount=None, action=limit.action, actor=owner,
    )  # fmt: skip
    ledger.post_entry(account=cedar, kind="top_up", amount=Decimal("25.00"), key="t", description="Top-up")
    for account in (world.managed, cedar):
        record = api.managed_accounts.retrieve(str(account.public_id)).data
        assert (_extra(record, "service_status"), _extra(record, "service_blocked_reason")) == ("active", None)
