"""The low-balance alert (issue 13 item 3): an account that pays its own usage sets a threshold;
the debit that takes its balance below it records `balance.low` once (under the lock, so two racing
debits give one event), a credit back above records `balance.recovered`; a banner shows on its pages
meanwhile, with the way to pay; the people who want it get an e-mail and its endpoints the
`balance.low` webhook (balance, threshold, currency: its own money, for hidden pricing too)."""

from __future__ import annotations

import html
import itertools
import json
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.actor import Actor
from accounts.audit_text import Reader, describe
from accounts.models import Account, AuditEvent, Role
from billing.ledger import services as ledger
from billing.usage.services import ingest_usage
from notifications.models import LowBalanceThreshold
from notifications.services import NotificationsError, set_low_balance_threshold
from tests import webhook_receiver
from tests.factories import MembershipFactory, UserFactory, account_with_owner
from webhooks.models import WebhookDelivery
from webhooks.services import create_endpoint

KEYS = itertools.count()


def text(response) -> str:
    return html.unescape(response.content.decode())


def top_up(account: Account, amount: str) -> None:
    ledger.post_entry(
        account=account, kind="top_up", amount=Decimal(amount), key=f"t-{next(KEYS)}", description="Top-up"
    )


def debit(account: Account, amount: str) -> None:
    ledger.post_entry(
        account=account, kind="adjustment", amount=-Decimal(amount), key=f"d-{next(KEYS)}", description="Debit",
        allow_overdraft=True,
    )  # fmt: skip


def low_events(account: Account, change_type: str = "balance.low") -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(account=account, change_type=change_type).order_by("id"))


def separate(world, name: str = "Cedar Call Centre", **kwargs) -> tuple[Account, object]:
    return account_with_owner(
        name=name, managed_kind=True, manager=world.manager, billing_mode=Account.BillingMode.SEPARATE, **kwargs
    )


def threshold_url(account: Account) -> str:
    return reverse("notification_low_balance", args=[account.public_id])


def test_the_owner_sets_a_threshold_on_the_page_and_the_crossing_is_recorded_once(
    world, persona, django_capture_on_commit_callbacks
):
    account = world.standard
    top_up(account, "50.00")
    client = persona("standard_owner")
    response = client.post(threshold_url(account), {"threshold_amount": "20", "enabled": "on"})
    assert response.status_code == 302
    assert "The low-balance alert is on, below USD 20.00." in text(client.get(response["Location"]))
    (changed,) = low_events(account, "low_balance_threshold.changed")
    assert changed.user == world.users["standard_owner"]

    with django_capture_on_commit_callbacks(execute=True):
        debit(account, "25.00")  # 25.00: still above
    assert low_events(account) == []
    with django_capture_on_commit_callbacks(execute=True):
        debit(account, "10.00")  # 15.00: below
    with django_capture_on_commit_callbacks(execute=True):
        debit(account, "1.00")  # 14.00: still below, no second event
    (low,) = low_events(account)
    assert {"field": "balance", "from": None, "to": "15.00"} in low.changes
    sentence = describe(low, Reader(log=account, pages=account))
    assert "fell to USD 15.00, below its alert threshold of USD 20.00" in html.unescape(str(sentence))
    (sent,) = [m for m in mail.outbox if "balance below" in m.subject]
    assert sent.to == [world.users["standard_owner"].email]
    assert "The balance of Solo Standard is USD 15.00, below its low-balance alert threshold of USD 20.00" in sent.body
    assert (
        f"http://testserver{reverse('top_up', args=[account.public_id])}" in sent.body or "/payments/new/" in sent.body
    )

    page = text(client.get(reverse("dashboard", args=[account.public_id])))
    assert "below its alert threshold of USD 20.00" in page and "Make a payment" in page

    top_up(account, "10.00")  # 24.00: back above
    (recovered,) = low_events(account, "balance.recovered")
    assert {"field": "balance", "from": None, "to": "24.00"} in recovered.changes
    assert "low-balance-banner" not in text(client.get(reverse("dashboard", args=[account.public_id])))
    debit(account, "5.00")  # 19.00: a new crossing
    assert len(low_events(account)) == 2


def test_a_threshold_set_above_the_balance_is_a_crossing_at_once(world):
    top_up(world.standard, "5.00")
    row = set_low_balance_threshold(
        account=world.standard, amount=Decimal("10.00"), enabled=True, actor=Actor(user=world.users["standard_owner"])
    )
    assert row.below
    assert len(low_events(world.standard)) == 1
    set_low_balance_threshold(
        account=world.standard, amount=Decimal("10.00"), enabled=False, actor=Actor(user=world.users["standard_owner"])
    )
    row.refresh_from_db()
    assert not row.below and low_events(world.standard, "balance.recovered") == []  # switched off: quietly


def test_roll_up_accounts_have_no_threshold_and_bad_input_is_refused(world, persona):
    with pytest.raises(NotificationsError, match="billed to its manager"):
        set_low_balance_threshold(account=world.managed, amount=Decimal("1.00"), enabled=True, actor=Actor(user=None))
    client = persona("managed_owner")
    assert client.post(threshold_url(world.managed), {"threshold_amount": "5"}).status_code == 404
    client = persona("standard_owner")
    for bad, message in (("abc", "Enter an amount such as 25.00."), ("1.001", "at most 2 decimal places"),
                         ("99999999999", "at most USD 10,000,000.00"), ("NaN", "Enter an amount")):  # fmt: skip
        response = client.post(threshold_url(world.standard), {"threshold_amount": bad, "enabled": "on"})
        assert response.status_code == 422 and message in text(response), bad
    assert not LowBalanceThreshold.objects.exists()


@pytest.mark.parametrize(
    "name, status",
    [("owner", 302), ("admin", 302), ("billing", 302), ("reporting", 403), ("other_tenant", 404), ("anonymous", 302)],
)
def test_who_may_set_the_managers_threshold(world, persona, name, status):
    response = persona(name).post(threshold_url(world.manager), {"threshold_amount": "5", "enabled": "on"})
    assert response.status_code == status
    assert LowBalanceThreshold.objects.filter(account=world.manager).exists() == (name in ("owner", "admin", "billing"))


def test_the_manager_acting_as_a_separately_billed_account_sets_its_threshold_audited_as_the_manager(world, persona):
    cedar, _ = separate(world)
    world.managed.billing_mode = Account.BillingMode.SEPARATE
    Account.objects.filter(pk=world.managed.pk).update(billing_mode=Account.BillingMode.SEPARATE)
    client = persona("manager_acting")
    response = client.post(threshold_url(world.managed), {"threshold_amount": "3.00", "enabled": "on"})
    assert response.status_code == 302
    (changed,) = low_events(world.managed, "low_balance_threshold.changed")
    assert changed.user == world.users["owner"] and changed.change_made_by == "account_manager"


def test_the_managers_people_hear_of_a_managed_accounts_low_balance_and_its_webhook_carries_the_money(
    world, django_capture_on_commit_callbacks
):
    cedar, cedar_owner = separate(world, pricing_hidden=True)
    receiver = webhook_receiver.start()
    try:
        create_endpoint(account=cedar, url=receiver.url, event_types=["balance.low"], actor=Actor(user=cedar_owner))
        top_up(cedar, "12.00")
        set_low_balance_threshold(account=cedar, amount=Decimal("10.00"), enabled=True, actor=Actor(user=cedar_owner))
        with django_capture_on_commit_callbacks(execute=True):
            debit(cedar, "4.50")
        (delivery,) = WebhookDelivery.objects.filter(event_type="balance.low")
        payload = delivery.data["payload"]
        assert (payload["balance"], payload["threshold"], payload["currency"]) == ("7.50", "10.00", "USD")
        deadline = timezone.now() + timedelta(seconds=10)
        while not receiver.requests and timezone.now() < deadline:
            threading.Event().wait(0.05)
        body = json.loads(receiver.requests[0].body)
        assert body["data"]["event_type"] == "balance.low" and body["data"]["payload"]["balance"] == "7.50"
    finally:
        receiver.stop()
    to = sorted(address for m in mail.outbox if "balance below" in m.subject for address in m.to)
    # the account's owner, and the manager's owner and billing member (their defaults for managed accounts)
    assert to == sorted([cedar_owner.email, world.users["owner"].email, world.users["billing"].email])
    for message in mail.outbox:
        assert "cost" not in message.body.lower() and "rate" not in message.body.lower().replace("separate", "")


def test_usage_charges_cross_the_threshold_once_per_batch_set_based(world, django_capture_on_commit_callbacks):
    cedar, owner = separate(world)
    top_up(cedar, "20.00")
    set_low_balance_threshold(account=cedar, amount=Decimal("10.00"), enabled=True, actor=Actor(user=owner))
    at = (timezone.now() - timedelta(minutes=1)).isoformat()
    rows = [
        {"account": str(cedar.public_id), "product": "sms.outbound", "quantity": "1000", "started_at": at,
         "idempotency_key": f"u-{next(KEYS)}"}
        for _ in range(3)
    ]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        ingest_usage(submitter=world.manager, rows=rows, source="api", actor=Actor(user=world.users["owner"]))
    assert ledger.balance_of(cedar).amount == Decimal("8.00")  # USD 12.00 of messages
    (low,) = low_events(cedar)
    assert low.related_account == world.manager


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_debits_racing_past_the_threshold_record_one_crossing():
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency need PostgreSQL (run by .ci/run's second pass)")
    for round_no in range(4):
        account, owner = account_with_owner(name=f"Racing Standard {round_no}")
        top_up(account, "30.00")
        set_low_balance_threshold(account=account, amount=Decimal("20.00"), enabled=True, actor=Actor(user=owner))
        barrier = threading.Barrier(2)
        failures: list[BaseException] = []

        def run(n: int, barrier: threading.Barrier = barrier, account=account, failures=failures) -> None:
            try:
                barrier.wait(timeout=10)
                debit(account, "6.00")
            except BaseException as failure:  # reported below, not lost in the thread
                failures.append(failure)
            finally:
                connection.close()

        threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert failures == []
        assert ledger.balance_of(account).amount == Decimal("18.00")
        assert len(low_events(account)) == 1, round_no
        assert LowBalanceThreshold.objects.get(account=account).below


def test_the_banner_shows_to_those_who_see_billing_only(world, persona):
    top_up(world.manager, "5.00")
    set_low_balance_threshold(
        account=world.manager, amount=Decimal("10.00"), enabled=True, actor=Actor(user=world.users["owner"])
    )
    dashboard = reverse("dashboard", args=[world.manager.public_id])
    assert "Make a payment" in text(persona("owner").get(dashboard))
    billing = text(persona("billing").get(dashboard))
    assert "low-balance-banner" in billing
    assert "low-balance-banner" not in text(persona("reporting").get(dashboard))
    assert "low-balance-banner" not in text(
        persona("managed_owner").get(reverse("dashboard", args=[world.managed.public_id]))
    )


def test_a_member_who_turned_the_alert_off_gets_no_email(world, persona, django_capture_on_commit_callbacks):
    extra = UserFactory(email="second-billing@solo.example.com")
    MembershipFactory(user=extra, account=world.standard, role=Role.BILLING)
    client = persona("standard_owner")
    url = reverse("notification_settings", args=[world.standard.public_id])
    page = text(client.get(url))
    assert "Balance below the low-balance threshold" in page
    response = client.post(url, {"email_invoice_issued": "on"})  # every other alert off
    assert response.status_code == 302
    top_up(world.standard, "5.00")
    with django_capture_on_commit_callbacks(execute=True):
        set_low_balance_threshold(
            account=world.standard, amount=Decimal("10.00"), enabled=True, actor=Actor(user=extra)
        )
    (sent,) = [m for m in mail.outbox if "balance below" in m.subject]
    assert sent.to == [extra.email]  # the billing member's default; the owner chose otherwise
