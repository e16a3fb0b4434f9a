"""Alert e-mails (issue 13 item 3): spend limit at 80 % and at 100 %, service blocked and restored,
invoice issued, payment failed; derived from the audit log in the change's transaction, sent by one
Celery task after commit to the people who want them (a managed account's and its manager's), with
absolute links and no rate or cost; the notification settings page and its audit; the v2 API."""

from __future__ import annotations

import html
import itertools
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.audit_text import Reader, describe
from accounts.models import Account, ApiKey, AuditEvent, Role
from accounts.services import create_api_key
from billing.ledger import services as ledger
from billing.models import Payment
from billing.usage.services import ingest_usage
from controls.models import SpendLimit
from controls.services import check_accounts, set_spend_limit
from notifications.models import AlertChoice
from tests.factories import AccountFactory, MembershipFactory, UserFactory

KEYS = itertools.count()
JUNE = date(2025, 6, 1)


def text(response) -> str:
    return html.unescape(response.content.decode())


def usage(world, account: Account, records: int, *, at: datetime | None = None) -> None:
    """`records` batches of 1,000 outbound messages (USD 4.00 each at list price) through ingestion."""
    moment = at or timezone.now() - timedelta(minutes=1)
    rows = [
        {"account": str(account.public_id), "product": "sms.outbound", "quantity": "1000",
         "started_at": moment.isoformat(), "idempotency_key": f"n-{next(KEYS)}"}
        for _ in range(records)
    ]  # fmt: skip
    ingest_usage(submitter=world.manager, rows=rows, source="api", actor=Actor(user=world.users["owner"]))


def sent(subject_part: str) -> list[mail.EmailMessage]:
    return [m for m in mail.outbox if subject_part in m.subject]


def to(messages) -> list[str]:
    return sorted(address for m in messages for address in m.to)


@pytest.fixture
def credit(world):
    ledger.set_credit_limit(account=world.manager, limit=Decimal("10000.00"), actor=Actor.platform_staff())


def limit(world, account: Account, amount: str = "10.00", action: str = "block") -> SpendLimit:
    return set_spend_limit(
        account=account, set_by="manager", product=None, monthly_amount=Decimal(amount), daily_amount=None,
        action=action, actor=Actor(user=world.users["owner"]),
    )  # fmt: skip


def test_a_spend_limit_alerts_at_80_and_at_100_percent_once_each(world, credit, django_capture_on_commit_callbacks):
    limit(world, world.managed, "10.00")
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 2)  # USD 8.00: 80 %
    (neared,) = AuditEvent.objects.filter(account=world.managed, change_type="spend_limit.neared")
    assert {"field": "amount", "from": None, "to": "10.00"} in neared.changes
    assert "noted 80 % of a spend limit used" in str(describe(neared, Reader(log=world.manager, pages=world.manager)))
    # the manager's owner and admin (managed accounts' limits by default), its billing member, and the
    # roll-up account's own owner
    expected = sorted([world.users["owner"].email, world.users["admin"].email, world.users["billing"].email,
                       world.users["managed_owner"].email])  # fmt: skip
    assert to(sent("80 % of a spend limit used")) == expected
    with django_capture_on_commit_callbacks(execute=True):
        check_accounts(account_ids=[world.managed.pk])  # checked again: no second crossing
    assert AuditEvent.objects.filter(account=world.managed, change_type="spend_limit.neared").count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 1)  # USD 12.00: reached, blocked
    assert to(sent("spend limit reached")) == expected
    service = sorted(set(expected) - {world.users["billing"].email})  # billing members: money alerts only
    assert to(sent("service blocked")) == service
    (blocked,) = sent("service blocked")[:1]
    link = reverse("controls_managed_limit", args=[world.manager.public_id, world.managed.public_id])
    manager_copy = next(m for m in sent("service blocked") if m.to == [world.users["owner"].email])
    assert f"http://127.0.0.1:8000{link}" in manager_copy.body
    assert (
        "Spend limit reached" in manager_copy.body and "Acme Reseller, the manager of Alpine Voice" in manager_copy.body
    )
    assert AuditEvent.objects.filter(account=world.managed, change_type="spend_limit.neared").count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        limit(world, world.managed, "15.00")  # 80 % of the new amount: a new crossing, and the block lifts
    assert to(sent("service restored")) == service
    assert AuditEvent.objects.filter(account=world.managed, change_type="spend_limit.neared").count() == 2


def test_hidden_pricing_alerts_name_the_limit_but_no_spend_rate_or_cost(
    world, credit, django_capture_on_commit_callbacks
):
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)
    world.managed.refresh_from_db()
    limit(world, world.managed, "10.00")
    with django_capture_on_commit_callbacks(execute=True):
        usage(world, world.managed, 3)  # USD 12.00 spent
    mine = [m for m in mail.outbox if m.to == [world.users["managed_owner"].email]]
    assert {m.subject.split(": ", 1)[1] for m in mine} == {"spend limit reached", "service blocked"}
    for message in mine:
        assert "USD 10.00" in message.body  # its own limit
        assert "12.00" not in message.body and not re.search(r"\b(rate|cost|price)s?\b", message.body, re.I)


def test_a_failed_payment_alerts_the_accounts_billing_people_with_a_link_to_pay(
    world, django_capture_on_commit_callbacks
):
    payment = Payment.objects.create(
        account=world.standard, amount=Decimal("25.00"), kind=Payment.Kind.TOP_UP, idempotency_key="p-1"
    )
    billing = UserFactory(email="billing@solo.example.com")
    MembershipFactory(user=billing, account=world.standard, role=Role.BILLING)
    reporting = UserFactory(email="reports@solo.example.com")
    MembershipFactory(user=reporting, account=world.standard, role=Role.REPORTING)
    with django_capture_on_commit_callbacks(execute=True):
        audit.record(
            account=world.standard, actor=Actor(user=world.users["standard_owner"]),
            change_type=audit.ChangeType.TOP_UP_FAILED, resource=payment,
            changes=[{"field": "amount", "from": None, "to": "25.00"},
                     {"field": "failure", "from": None, "to": "Your card was declined."}],
        )  # fmt: skip
    (message,) = [m for m in sent("a payment failed") if m.to == [billing.email]]
    assert to(sent("a payment failed")) == sorted([billing.email, world.users["standard_owner"].email])
    assert "A top-up of USD 25.00 for Solo Standard failed: Your card was declined." in message.body
    assert f"http://127.0.0.1:8000{reverse('top_up', args=[world.standard.public_id])}" in message.body
    assert reverse("notification_settings", args=[world.standard.public_id]) in message.body


def test_the_e_mails_go_after_commit_from_one_task(world, credit, django_capture_on_commit_callbacks):
    limit(world, world.managed, "10.00")
    with django_capture_on_commit_callbacks(execute=False):
        usage(world, world.managed, 3)  # recorded; its check (after commit) left out here, and run below
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        check_accounts(account_ids=[world.managed.pk])
    assert AuditEvent.objects.filter(account=world.managed, change_type="service.blocked").exists()
    assert mail.outbox == []  # nothing before the commit
    (queued,) = [c for c in callbacks if "send_alert_emails" in repr(c.__code__.co_names)]
    queued()
    assert len(sent("service blocked")) == 3


def test_the_invoice_issued_alert_goes_to_billing_members_through_the_close(world, django_capture_on_commit_callbacks):
    Account.objects.update(created_at=datetime(2025, 1, 1, tzinfo=UTC))
    billing = UserFactory(email="accounts@solo.example.com")
    MembershipFactory(user=billing, account=world.standard, role=Role.BILLING)
    rows = [{"product": "sms.outbound", "quantity": "1000", "idempotency_key": "inv-1",
             "started_at": datetime(2025, 6, 12, 8, 0, tzinfo=UTC).isoformat()}]  # fmt: skip
    ingest_usage(submitter=world.standard, rows=rows, source="api", actor=Actor(user=world.users["standard_owner"]))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("close_month", month="2025-06", inline=True, stdout=StringIO())
    event = AuditEvent.objects.get(account=world.standard, change_type="invoice.finalized")
    alerts = sent("issued")
    assert to([m for m in alerts if "Solo Standard: invoice" in m.subject]) == [billing.email]
    (message,) = [m for m in alerts if m.to == [billing.email]]
    assert f"Invoice {event.resource_label} of Solo Standard is issued for 2025-06." in message.body
    assert reverse("invoice_detail", args=[world.standard.public_id, event.resource_id]) in message.body


# --- The settings page --------------------------------------------------------------------------------------


def settings_url(account: Account) -> str:
    return reverse("notification_settings", args=[account.public_id])


@pytest.mark.parametrize(
    "name, status",
    [("owner", 200), ("admin", 200), ("billing", 200), ("reporting", 200), ("other_tenant", 404),
     ("managed_owner", 404), ("anonymous", 302)],
)  # fmt: skip
def test_every_member_has_the_page_and_nobody_else(world, persona, name, status):
    assert persona(name).get(settings_url(world.manager)).status_code == status


def test_a_person_chooses_their_alerts_audited_and_only_theirs_change(world, persona):
    client = persona("admin")
    page = text(client.get(settings_url(world.manager)))
    assert "Managed accounts" in page and "Alerts that reach me" in page
    assert "Low-balance alert" in page and 'id="threshold-form"' in page  # admins move money
    response = client.post(settings_url(world.manager), {"email_balance_low": "on", "managed_service_blocked": "on"})
    assert response.status_code == 302
    choices = {c.alert: (c.email, c.managed_email) for c in AlertChoice.objects.filter(user=world.users["admin"])}
    assert choices["balance.low"] == (True, False) and choices["service.blocked"] == (False, True)
    assert not AlertChoice.objects.exclude(user=world.users["admin"]).exists()
    (event,) = AuditEvent.objects.filter(change_type="notification_settings.changed")
    assert event.user == world.users["admin"] and event.account == world.manager
    assert "changed their alert e-mails" in str(describe(event, Reader(log=world.manager, pages=world.manager)))
    again = client.post(settings_url(world.manager), {"email_balance_low": "on", "managed_service_blocked": "on"})
    assert again.status_code == 302
    assert AuditEvent.objects.filter(change_type="notification_settings.changed").count() == 1  # nothing changed


def test_reporting_members_see_no_threshold_form_and_roll_up_accounts_no_threshold(world, persona):
    page = text(persona("reporting").get(settings_url(world.manager)))
    assert 'id="threshold-form"' not in page and 'id="choices-form"' in page
    page = text(persona("managed_owner").get(settings_url(world.managed)))
    assert "Low-balance alert" not in page and "Managed accounts" not in page


def test_a_manager_acting_as_an_account_cannot_change_its_owners_choices(world, persona):
    client = persona("manager_acting")
    page = text(client.get(settings_url(world.managed)))
    assert "These are the account owner's own choices" in page and 'id="choices-form"' not in page
    assert client.post(settings_url(world.managed), {"email_balance_low": "on"}).status_code == 403
    assert not AlertChoice.objects.exists()


def test_the_navigation_offers_the_page(world, persona):
    page = text(persona("reporting").get(reverse("dashboard", args=[world.manager.public_id])))
    assert f'href="{settings_url(world.manager)}"' in page


# --- The v2 API --------------------------------------------------------------------------------------------


def api_key(account: Account, user) -> str:
    _, secret = create_api_key(account=account, name="alerts", actor=Actor(user=user))
    return secret


def call(client, method: str, path: str, key: str, body: dict | None = None, **headers):
    kwargs = {"HTTP_AUTHORIZATION": f"Bearer {key}", **{f"HTTP_{k.upper()}": v for k, v in headers.items()}}
    if body is not None:
        return getattr(client, method)(f"/v2/{path}", data=json.dumps(body), content_type="application/json", **kwargs)
    return getattr(client, method)(f"/v2/{path}", **kwargs)


def test_the_key_creators_alert_choices_by_api(world, client):
    key = api_key(world.manager, world.users["owner"])
    listed = call(client, "get", "notification_settings", key).json()
    assert listed["meta"]["total_results"] == 7
    low = next(r for r in listed["data"] if r["id"] == "balance.low")
    assert low["record_type"] == "notification_setting" and low["status"] == "enabled"
    assert low["channel_destination"] == world.users["owner"].email and low["managed_accounts"] is True
    assert low["associated_record_type_value"] == str(world.manager.public_id)

    changed = call(
        client, "patch", "notification_settings/balance.low", key, {"status": "disabled", "managed_accounts": False}
    )
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["data"]["status"], changed.json()["data"]["managed_accounts"]) == ("disabled", False)
    assert AlertChoice.objects.get(user=world.users["owner"], alert="balance.low").email is False
    event = AuditEvent.objects.get(change_type="notification_settings.changed")
    assert event.user == world.users["owner"]

    bad = call(client, "patch", "notification_settings/balance.low", key, {"status": "maybe"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["source"]["pointer"] == "/status"
    assert call(client, "get", "notification_settings/nope", key).status_code == 404
    assert call(client, "patch", "notification_settings/balance.low", key, {"colour": "red"}).status_code == 422


def test_the_low_balance_threshold_by_api_for_an_account_and_a_managed_account(world, client):
    key = api_key(world.manager, world.users["owner"])
    empty = call(client, "get", "low_balance_threshold", key).json()["data"]
    assert empty["enabled"] is False and empty["threshold_amount"] is None
    made = call(client, "patch", "low_balance_threshold", key, {"threshold_amount": "50.00", "enabled": True})
    assert made.status_code == 200, made.json()
    data = made.json()["data"]
    assert (data["threshold_amount"], data["enabled"], data["below"], data["currency"]) == ("50.00", True, True, "USD")
    assert AuditEvent.objects.filter(account=world.manager, change_type="balance.low").count() == 1

    bad = call(client, "patch", "low_balance_threshold", key, {"threshold_amount": "1.001"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["source"]["pointer"] == "/threshold_amount"
    roll_up = call(client, "get", "low_balance_threshold", key, x_managed_account_id=str(world.managed.public_id))
    assert roll_up.status_code == 404
    cedar = AccountFactory(
        name="Cedar", managed_kind=True, manager=world.manager, billing_mode=Account.BillingMode.SEPARATE
    )
    MembershipFactory(user=UserFactory(email="cedar@example.com"), account=cedar, role=Role.OWNER)
    acting = call(client, "patch", "low_balance_threshold", key, {"threshold_amount": "5.00"},
                  x_managed_account_id=str(cedar.public_id))  # fmt: skip
    assert acting.status_code == 200 and acting.json()["data"]["account_id"] == str(cedar.public_id)
    event = AuditEvent.objects.get(account=cedar, change_type="low_balance_threshold.changed")
    assert event.change_made_by == "account_manager"
    other = api_key(world.other_manager, world.users["other_tenant"])
    assert call(
        client, "get", "low_balance_threshold", other, x_managed_account_id=str(cedar.public_id)
    ).status_code in (403, 404)
    assert ApiKey.objects.count() == 2
