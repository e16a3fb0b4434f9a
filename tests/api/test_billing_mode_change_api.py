"""PATCH /v2/managed_accounts/{id} with Telnyx's `rollup_billing`, through the official telnyx SDK:
the change is scheduled for the start of next UTC month (the record says so in
`billing_mode_change` while `rollup_billing` stays the mode in force), asking for the mode in force
cancels it, and going to roll-up with an unsettled balance is a 422 that changes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
import telnyx

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent, month_of
from billing.ledger import services as ledger
from billing.models import LedgerEntry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def manager_api(world, make_key, sdk) -> telnyx.Telnyx:
    return sdk(make_key(world.manager))


def test_rollup_billing_false_schedules_separate_billing_from_next_month(world, manager_api):
    start = services.next_month(month_of())

    answer = manager_api.managed_accounts.update(str(world.managed.public_id), extra_body={"rollup_billing": False})

    assert answer.data.rollup_billing is True  # in force until the month ends
    assert answer.data.to_dict()["billing_mode_change"] == {"rollup_billing": False, "effective_from": f"{start}"}
    managed = Account.objects.get(pk=world.managed.pk)
    assert (managed.billing_mode_next, managed.billing_mode_from) == (Account.BillingMode.SEPARATE, start)
    event = AuditEvent.objects.get(related_account=managed, change_type="billing_mode.change_scheduled")
    assert event.account_id == world.manager.pk

    again = manager_api.managed_accounts.update(str(world.managed.public_id), extra_body={"rollup_billing": True})

    assert again.data.rollup_billing is True and again.data.to_dict()["billing_mode_change"] is None
    assert Account.objects.get(pk=world.managed.pk).billing_mode_from is None
    assert AuditEvent.objects.filter(related_account=managed, change_type="billing_mode.change_cancelled").exists()


def test_going_to_rollup_with_credit_on_its_own_balance_is_a_422_that_changes_nothing(world, manager_api):
    cedar = services.create_managed_account(
        manager=world.manager, name="Cedar Separate", owner_email="cedar@customers.example.com",
        owner_password=None, billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False,
        pricing_hidden=False, actor=Actor(user=world.users["owner"]),
    )  # fmt: skip
    ledger.post_entry(
        account=cedar, kind=LedgerEntry.Kind.TOP_UP, amount=Decimal("7.00"), key="c-1", description="Top-up"
    )

    with pytest.raises(telnyx.UnprocessableEntityError) as refused:
        manager_api.managed_accounts.update(
            str(cedar.public_id), extra_body={"rollup_billing": True, "pricing_hidden": True}
        )

    (error,) = refused.value.body["errors"]
    assert "Cedar Separate holds USD 7.00 of credit on its own balance" in error["detail"]
    cedar = Account.objects.get(pk=cedar.pk)
    assert cedar.billing_mode_from is None and cedar.pricing_hidden is False  # the whole PATCH refused
    record = manager_api.managed_accounts.retrieve(str(cedar.public_id))
    assert record.data.rollup_billing is False
