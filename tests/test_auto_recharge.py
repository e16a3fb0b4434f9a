"""Auto-recharge: a debit that crosses the threshold charges the default card once, through the
Celery task (eager here; a real worker in tests/test_celery_worker.py's style is not needed: the
claim is what makes it safe), at most N times in 24 hours, and a decline is recorded, never retried."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import AuditEvent
from billing import tasks
from billing.ledger import selectors as ledger_selectors
from billing.ledger import services as ledger
from billing.models import AutoRecharge, LedgerEntry, MonthlyUsage, Payment, Product
from billing.payments import services as payments
from tests.payments_support import DECLINED_ON_CHARGE, GOOD_CARD, add_card, give_credit, top_up_entries

pytestmark = pytest.mark.usefixtures("localstripe")


def _set_up(localstripe, account, user, *, number: str = GOOD_CARD, balance: str = "20.00") -> AutoRecharge:
    """A card, USD `balance`, and auto-recharge of USD 50.00 below USD 10.00."""
    add_card(localstripe, account, user, number)
    give_credit(account, balance)
    return payments.update_auto_recharge(
        account=account, enabled=True, threshold=Decimal("10.00"), amount=Decimal("50.00"), actor=Actor(user=user)
    )


def _spend(account, amount: str) -> None:
    ledger.post_entry(
        account=account,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        amount=-Decimal(amount),
        key=str(uuid.uuid4()),
        description="Spent",
        allow_overdraft=True,
        actor=Actor.platform_staff(),
    )


def _auto_payments(account):
    return Payment.objects.filter(account=account, kind=Payment.Kind.AUTO_RECHARGE).order_by("created_at", "id")


def _balance(account) -> Decimal:
    balance = ledger.balance_of(account).amount
    assert balance == ledger_selectors.ledger_sum(account)  # the cached balance is always the sum of its entries
    return balance


@pytest.mark.django_db
def test_crossing_the_threshold_charges_the_default_card_once(world, localstripe, django_capture_on_commit_callbacks):
    account, owner = world.standard, world.users["standard_owner"]
    _set_up(localstripe, account, owner)

    with django_capture_on_commit_callbacks(execute=True):
        _spend(account, "5.00")  # 20 -> 15: above the threshold, nothing to do
    assert not _auto_payments(account).exists()

    with django_capture_on_commit_callbacks(execute=True):
        _spend(account, "8.00")  # 15 -> 7: crossed
    payment = _auto_payments(account).get()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.amount == Decimal("50.00") and payment.card_label == "Visa •••• 4242"
    assert payment.created_by is None  # the platform charged it
    assert _balance(account) == Decimal("57.00")
    assert top_up_entries(account).get().idempotency_key == f"top_up:stripe:{payment.stripe_payment_intent_id}"
    event = AuditEvent.objects.get(change_type="auto_recharge.charged")
    assert event.user is None and event.change_made_by == AuditEvent.MadeBy.PLATFORM

    # A redelivered task for the same crossing claims nothing and charges nothing.
    debit = LedgerEntry.objects.filter(account=account, amount=Decimal("-8.00")).get()
    assert tasks.auto_recharge.apply(args=(account.pk, f"entry:{debit.pk}")).get() == "not due"
    assert _auto_payments(account).count() == 1


@pytest.mark.django_db
def test_a_usage_charge_that_crosses_the_threshold_triggers_it(world, localstripe, django_capture_on_commit_callbacks):
    account, owner = world.standard, world.users["standard_owner"]
    _set_up(localstripe, account, owner)
    month = timezone.now().date().replace(day=1)
    product = Product.objects.create(sku="sms.outbound.test", name="SMS", unit="message")
    MonthlyUsage.objects.create(
        account=account, product=product, month=month, quantity=Decimal("3000"), cost=Decimal("12.000000"), records=3
    )
    with django_capture_on_commit_callbacks(execute=True):
        ledger.post_usage_charges(account=account, month=month)  # 20 -> 8
    assert _auto_payments(account).get().status == Payment.Status.SUCCEEDED
    assert _balance(account) == Decimal("58.00")


@pytest.mark.django_db
def test_a_bulk_of_usage_charges_triggers_it_only_where_one_crossed(
    world, localstripe, django_capture_on_commit_callbacks
):
    """The close's batches post many parties' charges at once: each posting's debits are answered
    together, and only a balance taken from at or above its threshold to below it is recharged."""
    crossing, staying, below = world.standard, world.manager, world.other_manager
    month = timezone.now().date().replace(day=1)
    product = Product.objects.create(sku="sms.outbound.test", name="SMS", unit="message")
    for account, user, balance, cost in (
        (crossing, world.users["standard_owner"], "20.00", "12.000000"),  # 20 -> 8: crossed
        (staying, world.users["owner"], "20.00", "5.000000"),  # 20 -> 15: above it still
        (below, world.users["other_tenant"], "5.00", "3.000000"),  # 5 -> 2: already below before
    ):
        _set_up(localstripe, account, user, balance=balance)
        MonthlyUsage.objects.create(
            account=account, product=product, month=month, quantity=Decimal("1000"), cost=Decimal(cost), records=1
        )
    with django_capture_on_commit_callbacks(execute=True):
        assert ledger.post_own_usage_charges(accounts=[crossing, staying, below], month=month) == 3
    assert _auto_payments(crossing).get().status == Payment.Status.SUCCEEDED
    assert not _auto_payments(staying).exists() and not _auto_payments(below).exists()
    assert (_balance(crossing), _balance(staying), _balance(below)) == (
        Decimal("58.00"),
        Decimal("15.00"),
        Decimal("2.00"),
    )


@pytest.mark.django_db
def test_no_new_attempt_without_a_new_crossing_and_none_beyond_the_daily_maximum(
    world, localstripe, settings, django_capture_on_commit_callbacks
):
    settings.BILLING_AUTO_RECHARGE_MAX_PER_DAY = 2
    account, owner = world.standard, world.users["standard_owner"]
    _set_up(localstripe, account, owner)

    for expected in (1, 2):
        with django_capture_on_commit_callbacks(execute=True):
            _spend(account, str(_balance(account) - Decimal("9.00")))  # down to 9.00: crossed
        assert _auto_payments(account).count() == expected
        assert _balance(account) == Decimal("59.00")

    with django_capture_on_commit_callbacks(execute=True):
        _spend(account, "50.00")  # 59 -> 9: a third crossing in 24 hours
    assert _auto_payments(account).count() == 2
    assert _balance(account) == Decimal("9.00")
    with django_capture_on_commit_callbacks(execute=True):
        _spend(account, "1.00")  # still below: no crossing, no attempt
    assert _auto_payments(account).count() == 2

    page = _owner_page(world, account)
    assert "2 of 2" in page

    # A day later the cap has room again, for the next crossing.
    _auto_payments(account).update(created_at=timezone.now() - timedelta(hours=25))
    give_credit(account, "10.00")  # 8 -> 18
    with django_capture_on_commit_callbacks(execute=True):
        _spend(account, "10.00")  # 18 -> 8
    assert _auto_payments(account).count() == 3
    assert _balance(account) == Decimal("58.00")


def _owner_page(world, account) -> str:
    from django.test import Client

    client = Client()
    client.force_login(world.users["standard_owner"])
    response = client.get(reverse("auto_recharge", args=[account.public_id]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_a_declined_recharge_is_recorded_shown_and_not_retried(world, localstripe, django_capture_on_commit_callbacks):
    account, owner = world.standard, world.users["standard_owner"]
    _set_up(localstripe, account, owner, number=DECLINED_ON_CHARGE)

    with django_capture_on_commit_callbacks(execute=True):
        _spend(account, "15.00")  # 20 -> 5
    payment = _auto_payments(account).get()
    assert payment.status == Payment.Status.FAILED
    assert payment.failure_message == "Your card was declined."
    assert _balance(account) == Decimal("5.00")
    assert not top_up_entries(account).exists()
    assert AuditEvent.objects.filter(change_type="auto_recharge.failed", user=None).count() == 1

    # More usage while below the threshold is no new crossing; the task run again for the same
    # crossing finds its attempt made. Nothing is charged again.
    with django_capture_on_commit_callbacks(execute=True):
        _spend(account, "1.00")
    debit = LedgerEntry.objects.get(account=account, amount=Decimal("-15.00"))
    tasks.auto_recharge.apply(args=(account.pk, f"entry:{debit.pk}"))
    assert _auto_payments(account).count() == 1

    page = _owner_page(world, account)
    assert "The last auto-recharge (USD 50.00" in page and "failed: Your card was declined." in page
    history = _owner_history(world, account)
    assert "Auto-recharge" in history and "Your card was declined." in history


def _owner_history(world, account) -> str:
    from django.test import Client

    client = Client()
    client.force_login(world.users["standard_owner"])
    return client.get(reverse("payment_history", args=[account.public_id])).content.decode()


@pytest.mark.django_db
def test_settings_need_a_card_and_sane_amounts_and_are_audited(world, persona, localstripe):
    client = persona("billing")
    url = reverse("auto_recharge", args=[world.manager.public_id])
    no_card = client.post(url, {"enabled": "on", "threshold": "10.00", "amount": "50.00"})
    assert no_card.status_code == 422
    assert "Add a card first" in no_card.content.decode()
    add_card(localstripe, world.manager, world.users["owner"])
    for threshold, amount, message in (
        ("-1", "50", "The threshold is zero or more."),
        ("10", "0", "Recharge more than zero."),
        ("10", "10000.01", "A recharge is at most USD 10,000.00."),
        ("10.001", "50", "Use at most 2 decimal places"),
    ):
        response = client.post(url, {"enabled": "on", "threshold": threshold, "amount": amount})
        assert response.status_code == 422 and message in response.content.decode(), (threshold, amount)
    ok = client.post(url, {"enabled": "on", "threshold": "10.00", "amount": "50.00"})
    assert ok.status_code == 302
    row = AutoRecharge.objects.get(account=world.manager)
    assert (row.enabled, row.threshold, row.amount) == (True, Decimal("10.00"), Decimal("50.00"))
    event = AuditEvent.objects.get(change_type="auto_recharge.changed")
    assert event.user == world.users["billing"]
    assert {"field": "enabled", "from": False, "to": True} in event.changes
    assert persona("reporting").post(url, {"enabled": "", "threshold": "1", "amount": "1"}).status_code == 403


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_triggers_charge_once(world, localstripe):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency need PostgreSQL (run by .ci/run's second pass)")
    account, owner = world.standard, world.users["standard_owner"]
    _set_up(localstripe, account, owner)
    _spend(account, "15.00")  # 20 -> 5, committed; the workers below are the triggers
    debit = LedgerEntry.objects.get(account=account, amount=Decimal("-15.00"))
    # Eight workers at once: six redeliveries of the crossing's task, two with other trigger keys.
    triggers = [f"entry:{debit.pk}"] * 6 + ["entry:other-1", "entry:other-2"]
    barrier = threading.Barrier(len(triggers))
    errors: list[BaseException] = []

    def run(trigger: str) -> None:
        try:
            barrier.wait(timeout=20)
            tasks.auto_recharge.apply(args=(account.pk, trigger)).get()
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(t,)) for t in triggers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    payment = _auto_payments(account).get()
    assert payment.status == Payment.Status.SUCCEEDED
    assert top_up_entries(account).count() == 1
    assert _balance(account) == Decimal("55.00")
