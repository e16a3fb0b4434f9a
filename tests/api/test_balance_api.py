"""`GET /v2/balance` and the `balance` of `GET /v2/managed_accounts/{id}` through the official telnyx
SDK (strict response validation: every response must parse into the SDK's own models).

The money, posted through billing.ledger and usage ingestion (list prices, USD: voice.outbound
0.01/minute, sms.outbound 0.004/message, number.local 1.00/number-month), March 2025:

    world.standard (Solo Standard)   credit limit 50.00; top-up 100.00; voice 10 + sms 3 = 0.112 -> 0.11
                                     balance 99.89, available 149.89
    world.manager (Acme Reseller)    top-up 500.00; transfer 120.00 out to Canyon Lines;
                                     Alpine Voice's roll-up usage voice 250 = 2.50; own sms 7 = 0.028 -> 0.03
                                     balance 377.47, available 377.47
    Canyon Lines (separate, hidden   transfer 120.00 in; voice 30.5 = 0.305 -> 0.31 (half up)
      pricing, made here)            balance 119.69, available 119.69
    Drift Calls (standard)           credit limit 20.00; number.local 15 = 15.00
                                     balance -15.00, available 5.00
    world.managed (Alpine Voice)     roll-up: no balance of its own; its key gets 403 billed_to_manager
"""

from __future__ import annotations

import importlib
from datetime import date, timedelta
from decimal import Decimal

import pytest
import telnyx
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from telnyx.types import BalanceRetrieveResponse, ManagedAccountRetrieveResponse
from telnyx.types.managed_account_balance import ManagedAccountBalance

from accounts import services
from accounts.actor import Actor
from accounts.models import Account
from billing.ledger.selectors import ledger_sum
from billing.ledger.services import balance_of, post_entry, post_usage_charges, transfer_credit
from billing.models import Balance, LedgerEntry, Payment
from billing.payments import selectors as payment_selectors
from billing.payments import services as payments
from billing.usage.services import ingest_usage
from tests.api.conftest import assert_error, owner_of
from tests.factories import account_with_owner
from tests.payments_support import DECLINED_ON_CHARGE, add_card, confirmed_but_unsettled

MARCH = date(2025, 3, 1)


def _usage(submitter: Account, *rows: tuple[Account, str, str]) -> None:
    """Ingests (account, product, quantity) rows as `submitter` and posts the month's charges. The
    ingest already queues the charge task (eager in tests); posting again is idempotent, and makes
    the test independent of when that task ran."""
    records = [
        {
            "account": str(account.public_id),
            "product": product,
            "quantity": quantity,
            "started_at": f"2025-03-{n + 1:02d}T10:00:00Z",
            "idempotency_key": f"balance-test-{account.pk}-{n}",
        }
        for n, (account, product, quantity) in enumerate(rows)
    ]
    ingest_usage(submitter=submitter, rows=records, source="api", actor=Actor(user=owner_of(submitter)))
    for account in {account for account, _, _ in rows}:
        post_usage_charges(account=account, month=MARCH)


def _top_up(account: Account, amount: str, key: str) -> None:
    post_entry(account=account, kind=LedgerEntry.Kind.TOP_UP, amount=Decimal(amount), key=key, description="Top-up")


def _credit_limit(account: Account, limit: str) -> None:
    Balance.objects.filter(pk=balance_of(account).pk).update(credit_limit=Decimal(limit))


@pytest.fixture
def catalogue(transactional_db):
    """The products and list prices. A data migration loads them, but each transactional test (the
    live server's) flushes every table when it ends."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)


@pytest.fixture
def money(world, catalogue):
    """The ledger of the module docstring; returns the accounts made here by name."""
    actor = Actor(user=world.users["owner"])
    canyon = services.create_managed_account(
        manager=world.manager, name="Canyon Lines", owner_email="canyon@example.com", owner_password=None,
        billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False, pricing_hidden=True, actor=actor,
    )  # fmt: skip
    drift, _ = account_with_owner(name="Drift Calls")

    _credit_limit(world.standard, "50.00")
    _top_up(world.standard, "100.00", "standard-top-up")
    _top_up(world.standard, "100.00", "standard-top-up")  # delivered twice, credited once
    _usage(world.standard, (world.standard, "voice.outbound", "10"), (world.standard, "sms.outbound", "3"))

    _top_up(world.manager, "500.00", "manager-top-up")
    transfer_credit(manager=world.manager, managed=canyon, amount=Decimal("120.00"), key="to-canyon", actor=actor)
    _usage(
        world.manager,
        (world.managed, "voice.outbound", "250"),
        (world.manager, "sms.outbound", "7"),
        (canyon, "voice.outbound", "30.5"),
    )

    _credit_limit(drift, "20.00")
    _usage(drift, (drift, "number.local", "15"))

    for account in (world.standard, world.manager, canyon, drift):
        assert balance_of(account).amount == ledger_sum(account)  # the cache agrees with the entries
    return {"canyon": canyon, "drift": drift}


def _balance(client: telnyx.Telnyx):
    response = client.balance.retrieve()
    assert isinstance(response, BalanceRetrieveResponse)
    return response.data


def _amounts(data) -> tuple:
    return data.record_type, data.balance, data.credit_limit, data.available_credit, data.currency


# --- GET /balance -------------------------------------------------------------------------------------


def test_it_reads_a_standard_accounts_balance_with_its_credit_limit(world, money, make_key, sdk):
    data = _balance(sdk(make_key(world.standard)))

    assert _amounts(data) == ("balance", "99.89", "50.00", "149.89", "USD")
    assert data.pending == "0.00"


def test_it_reads_a_managers_balance_after_a_transfer_and_roll_up_charges(world, money, make_key, sdk):
    data = _balance(sdk(make_key(world.manager)))

    # 500.00 - 120.00 transferred - 2.50 (Alpine Voice, roll-up) - 0.03 (its own usage)
    assert _amounts(data) == ("balance", "377.47", "0.00", "377.47", "USD")
    assert data.pending == "0.00"


def test_it_reads_a_separate_managed_accounts_own_balance_even_with_hidden_pricing(world, money, make_key, sdk):
    data = _balance(sdk(make_key(money["canyon"])))

    # 120.00 transferred in - 0.305 rounded half up to 0.31
    assert _amounts(data) == ("balance", "119.69", "0.00", "119.69", "USD")


def test_pending_is_the_sum_of_the_payments_that_may_still_move_money(world, catalogue, localstripe, make_key, sdk):
    """Pending: a top-up Stripe has taken but whose news has not settled it (25.00) and one claimed a
    moment ago whose PaymentIntent is still being created (7.50). Not pending: one claimed longer
    than ABANDONED_AFTER ago with no PaymentIntent (never sent: nothing was charged), a declined
    one, a settled one (in the balance already), and another account's."""
    owner = owner_of(world.standard)
    card = add_card(localstripe, world.standard, owner)
    confirmed_but_unsettled(world.standard, owner, card, "25.00")
    _claim(world.standard, card, "7.50")
    abandoned = _claim(world.standard, card, "40.00")
    Payment.objects.filter(pk=abandoned.pk).update(
        created_at=timezone.now() - payments.ABANDONED_AFTER - timedelta(minutes=1)
    )
    declined = add_card(localstripe, world.standard, owner, DECLINED_ON_CHARGE)
    failed = payments.top_up(
        account=world.standard, amount=Decimal("9.00"), card=declined, key="d", actor=Actor(user=owner)
    )
    settled = payments.top_up(
        account=world.standard, amount=Decimal("10.00"), card=card, key="s", actor=Actor(user=owner)
    )
    other_owner = owner_of(world.other_manager)
    other_card = add_card(localstripe, world.other_manager, other_owner)
    confirmed_but_unsettled(world.other_manager, other_owner, other_card, "99.00")
    assert (failed.status, settled.status) == (Payment.Status.FAILED, Payment.Status.SUCCEEDED)

    data = _balance(sdk(make_key(world.standard)))

    assert _amounts(data) == ("balance", "10.00", "0.00", "10.00", "USD")
    assert data.pending == "32.50"
    assert payment_selectors.pending_payments_total(world.standard) == Decimal("32.50")
    assert _balance(sdk(make_key(world.other_manager))).pending == "99.00"


def _claim(account: Account, card, amount: str) -> Payment:
    payment, created = payments.claim_top_up(
        account=account, amount=Decimal(amount), card=card, key=amount, actor=Actor(user=owner_of(account))
    )
    assert created and payment.stripe_payment_intent_id is None
    return payment


def test_it_reads_a_negative_balance_inside_the_credit_limit(money, make_key, sdk):
    data = _balance(sdk(make_key(money["drift"])))

    assert _amounts(data) == ("balance", "-15.00", "20.00", "5.00", "USD")


def test_it_reads_zeros_for_an_account_with_no_ledger_entries(world, make_key, sdk):
    assert not Balance.objects.filter(account=world.other_manager).exists()

    data = _balance(sdk(make_key(world.other_manager)))

    assert _amounts(data) == ("balance", "0.00", "0.00", "0.00", "USD")
    assert data.pending == "0.00"
    assert not Balance.objects.filter(account=world.other_manager).exists()  # a read creates nothing


def test_it_refuses_a_roll_up_managed_accounts_key_with_billed_to_manager(world, money, make_key, sdk, raw_api):
    raw = make_key(world.managed)

    with pytest.raises(telnyx.PermissionDeniedError) as refused:
        sdk(raw).balance.retrieve()
    assert refused.value.status_code == 403

    response = raw_api(raw).get("balance")
    first = assert_error(response, 403)
    assert first["code"] == "billed_to_manager"
    assert "billed to its manager" in first["detail"]
    assert b"377.47" not in response.content  # never the manager's money
    assert not Balance.objects.filter(account=world.managed).exists()


def test_it_answers_401_without_a_valid_key_and_405_to_other_methods(world, make_key, raw_api):
    assert_error(raw_api(None).get("balance"), 401)
    assert_error(raw_api("KEYnot-a-real-key").get("balance"), 401)

    refused = raw_api(make_key(world.standard)).post("balance", {})
    assert_error(refused, 405)
    assert refused["Allow"] == "GET"


# --- GET /managed_accounts/{id}: balance ------------------------------------------------------------


def test_retrieve_carries_a_separate_accounts_balance(world, money, make_key, sdk):
    response = sdk(make_key(world.manager)).managed_accounts.retrieve(str(money["canyon"].public_id))

    assert isinstance(response, ManagedAccountRetrieveResponse)
    assert response.data.rollup_billing is False
    balance = response.data.balance
    assert isinstance(balance, ManagedAccountBalance)
    assert _amounts(balance) == ("balance", "119.69", "0.00", "119.69", "USD")


def test_retrieve_omits_the_balance_of_a_roll_up_account(world, money, make_key, sdk, raw_api):
    raw = make_key(world.manager)

    response = sdk(raw).managed_accounts.retrieve(str(world.managed.public_id))

    assert response.data.rollup_billing is True
    assert response.data.balance is None
    assert "balance" not in raw_api(raw).get(f"managed_accounts/{world.managed.public_id}").json()["data"]


def test_retrieve_shows_zeros_for_a_separate_account_with_no_entries_yet(world, make_key, sdk):
    fresh = services.create_managed_account(
        manager=world.manager, name="Fresh Start", owner_email="fresh@example.com", owner_password=None,
        billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False, pricing_hidden=False,
        actor=Actor(user=world.users["owner"]),
    )  # fmt: skip
    assert not Balance.objects.filter(account=fresh).exists()

    balance = sdk(make_key(world.manager)).managed_accounts.retrieve(str(fresh.public_id)).data.balance

    assert _amounts(balance) == ("balance", "0.00", "0.00", "0.00", "USD")
    assert not Balance.objects.filter(account=fresh).exists()  # a read creates nothing


def test_the_balance_costs_no_extra_query(world, money, make_key, raw_api):
    api = raw_api(make_key(world.manager))
    api.get(f"managed_accounts/{world.managed.public_id}")  # the key's last-used write happens here

    counts = []
    for account in (money["canyon"], world.managed):
        with CaptureQueriesContext(connection) as queries:
            assert api.get(f"managed_accounts/{account.public_id}").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_list_and_update_responses_carry_no_balance(world, money, make_key, raw_api):
    api = raw_api(make_key(world.manager))

    listed = api.get("managed_accounts").json()["data"]
    updated = api.patch(f"managed_accounts/{money['canyon'].public_id}", {"organization_name": "Canyon Lines 2"})

    assert listed and all("balance" not in record for record in listed)
    assert updated.status_code == 200 and "balance" not in updated.json()["data"]


def test_another_tenants_key_cannot_see_the_balance(world, money, make_key, sdk, raw_api):
    canyon_id = str(money["canyon"].public_id)
    for outsider in (world.other_manager, world.other_managed, money["canyon"], world.managed):
        raw = make_key(outsider)
        with pytest.raises(telnyx.NotFoundError):
            sdk(raw).managed_accounts.retrieve(canyon_id)
        response = raw_api(raw).get(f"managed_accounts/{canyon_id}")
        assert_error(response, 404)
        assert b"119.69" not in response.content
