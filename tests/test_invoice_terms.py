"""Invoices a customer can act on (issue 12 item 7): each finalized invoice keeps the issuer's and
the bill-to's billing profile as they were, an issue date and a due date (issue date + the issuer's
payment terms, 14 days by default), and a status the customer understands (due, overdue, paid,
void) from one rule, Invoice.payment_status, which the page, the list, the PDF and the API read.
The close records one INVOICE_FINALIZED audit event per invoice, which webhooks send as
`invoice.finalized`, with no priced detail for a hidden-pricing account.

The invoices are those of tests/test_invoice_pages.py (world.manager's March 2025 invoice, total
USD 6.87, and its reseller invoices to Alpine Voice and Blue Harbor)."""

# ruff: noqa: F811  (fixtures imported from test_invoice_pages)

from __future__ import annotations

import importlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import billing_profile as profiles
from accounts import services
from accounts.actor import Actor
from accounts.audit import ChangeType
from accounts.models import Account, AuditEvent
from billing.invoices import services as invoice_services
from billing.invoices.builder import invoice_parties, invoice_party
from billing.models import Invoice
from tests.test_invoice_pages import MARCH, _owner, detail_url, list_url, manager_invoice, text, usage  # noqa: F401
from tests.test_invoice_pdf import pdf_text, pdf_url
from webhooks.models import WebhookDelivery, WebhookEndpoint

ADDRESS = {
    "legal_name": "Acme Reseller GmbH",
    "address_line1": "Hauptstraße 5",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
    "tax_id": "DE123456789",
    "invoice_emails": ["ap@acme.example.com"],
}


def _profile(account: Account, **values: object) -> None:
    profiles.update_billing_profile(account=account, values=values, actor=Actor(user=_owner(account)))


def _today() -> date:
    return timezone.now().date()


# --- The rule -------------------------------------------------------------------------------------------


def test_the_status_rule_due_overdue_paid_void():
    invoice = Invoice(status=Invoice.Status.FINALIZED, due_date=date(2025, 4, 15))

    assert invoice.payment_status_on(date(2025, 4, 15)) == "due"  # on the due date it is still due
    assert invoice.payment_status_on(date(2025, 4, 16)) == "overdue"
    invoice.status = Invoice.Status.PAID
    assert invoice.payment_status_on(date(2025, 5, 1)) == "paid"
    invoice.status = Invoice.Status.VOID
    assert invoice.payment_status_on(date(2025, 5, 1)) == "void"
    assert Invoice(status=Invoice.Status.FINALIZED).payment_status_on(date(2030, 1, 1)) == "due"  # no due date


# --- Dates and snapshots ------------------------------------------------------------------------------


def test_a_platform_invoice_is_due_14_days_after_issue_and_keeps_both_profiles(world):
    _profile(world.manager, **ADDRESS)
    usage(world.manager, (world.manager, "sms.outbound", "7"))

    invoice = invoice_party(account=world.manager, month=MARCH)

    assert invoice.issue_date == invoice.finalized_at.astimezone(UTC).date() == _today()
    assert invoice.due_date == invoice.issue_date + timedelta(days=14)
    assert invoice.bill_to_details["name"] == "Acme Reseller GmbH"
    assert invoice.bill_to_details["tax_id"] == "DE123456789"
    assert invoice.issuer_details["name"] == profiles.platform_profile()["legal_name"]
    assert invoice.payment_status == "due"


def test_a_later_profile_edit_leaves_an_issued_invoice_as_it_was(world, persona):
    _profile(world.manager, **ADDRESS)
    usage(world.manager, (world.manager, "sms.outbound", "7"))
    invoice = invoice_party(account=world.manager, month=MARCH)

    _profile(world.manager, legal_name="Renamed Holding", city="Munich")

    invoice.refresh_from_db()
    assert invoice.bill_to_details["name"] == "Acme Reseller GmbH"
    page = text(persona("billing").get(detail_url(world.manager, invoice)))
    assert "Acme Reseller GmbH" in page and "10115 Berlin" in page and "Tax id DE123456789" in page
    assert "Renamed Holding" not in page and "Munich" not in page


def test_reseller_invoices_carry_the_managers_profile_and_payment_terms(world):
    _profile(world.manager, **ADDRESS, payment_terms_days=30)
    _profile(world.sibling, legal_name="Blue Harbor Ltd", city="Dublin")
    usage(world.manager, (world.managed, "voice.outbound", "250"), (world.sibling, "sms.outbound", "1001"))

    invoice_party(account=world.manager, month=MARCH)

    platform = Invoice.objects.platform().get(bill_to=world.manager, period=MARCH)
    assert platform.due_date == platform.issue_date + timedelta(days=14)  # the platform's terms
    resale = Invoice.objects.resale().get(bill_to=world.sibling, period=MARCH)
    assert resale.due_date == resale.issue_date + timedelta(days=30)
    assert resale.issuer_details["name"] == "Acme Reseller GmbH"
    assert resale.bill_to_details["name"] == "Blue Harbor Ltd" and resale.bill_to_details["city"] == "Dublin"
    alpine = Invoice.objects.resale().get(bill_to=world.managed, period=MARCH)
    assert alpine.bill_to_details["name"] == "Alpine Voice"  # no profile: its business name


def test_a_batch_close_stamps_every_invoice(world):
    _profile(world.standard, legal_name="Solo Standard LLC")
    usage(world.standard, (world.standard, "sms.outbound", "5"))
    other, _ = Account.objects.get_or_create(name="Second Standard", email="second@example.com")

    invoices = invoice_parties(accounts=[world.standard, other], month=MARCH)

    assert invoices[world.standard.pk].bill_to_details["name"] == "Solo Standard LLC"
    assert invoices[other.pk].bill_to_details["name"] == "Second Standard"
    for invoice in Invoice.objects.filter(pk__in=[i.pk for i in invoices.values()]):
        assert invoice.due_date == invoice.issue_date + timedelta(days=14)


def test_invoices_finalized_before_the_migration_get_due_dates_from_finalized_at(world):
    usage(world.manager, (world.manager, "sms.outbound", "7"))
    invoice = invoice_party(account=world.manager, month=MARCH)
    finalized = datetime(2025, 4, 1, 2, 30, tzinfo=UTC)
    Invoice.objects.filter(pk=invoice.pk).update(issue_date=None, due_date=None, finalized_at=finalized)

    importlib.import_module("billing.migrations.0014_invoice_terms").derive_dates(apps, None)

    invoice.refresh_from_db()
    assert (invoice.issue_date, invoice.due_date) == (date(2025, 4, 1), date(2025, 4, 15))


# --- Where the status shows ---------------------------------------------------------------------------


def test_page_list_pdf_and_api_show_due_then_overdue_then_paid(world, persona, manager_invoice):
    client = persona("billing")
    issue, due = manager_invoice.issue_date, manager_invoice.due_date

    page = text(client.get(detail_url(world.manager, manager_invoice)))
    assert (
        f"<dt>Due date</dt><dd>{due:%-d %B %Y}</dd>" in page
        and f"<dt>Issue date</dt><dd>{issue:%-d %B %Y}</dd>" in page
    )
    assert 'invoice-due">Due</span>' in page
    assert "Issued by" in page and "Bill to" in page

    Invoice.objects.filter(pk=manager_invoice.pk).update(due_date=_today() - timedelta(days=1))
    assert 'invoice-overdue">Overdue</span>' in text(client.get(detail_url(world.manager, manager_invoice)))
    assert 'invoice-overdue">Overdue</span>' in text(client.get(list_url(world.manager)))
    content, _ = pdf_text(client.get(pdf_url(world.manager, manager_invoice)).content)
    assert "Overdue" in content and "Due date" in content and "Bill to" in content
    record = _api(world.manager, f"/v2/invoices/{manager_invoice.public_id}")
    assert record["payment_status"] == "overdue" and record["status"] == "finalized"  # the state stays
    assert record["due_date"] == (_today() - timedelta(days=1)).isoformat()

    invoice_services.mark_invoice_paid(invoice=manager_invoice, note="Wire", actor=Actor.platform_staff())
    assert 'invoice-paid">Paid</span>' in text(client.get(list_url(world.manager)))
    assert _api(world.manager, f"/v2/invoices/{manager_invoice.public_id}")["payment_status"] == "paid"


def _api(account: Account, path: str) -> dict:
    _, raw = services.create_api_key(account=account, name="terms", actor=Actor(user=_owner(account)))
    response = Client().get(path, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200, response.content
    return response.json()["data"]


# --- The audit event and the webhook ------------------------------------------------------------------


def test_every_finalized_invoice_is_audited_on_its_bill_to(world, manager_invoice):
    events = AuditEvent.objects.filter(change_type=ChangeType.INVOICE_FINALIZED)

    assert sorted(e.account_id for e in events) == sorted([world.manager.pk, world.managed.pk, world.sibling.pk])
    platform = events.get(account=world.manager)
    assert platform.resource_id == str(manager_invoice.public_id)
    assert platform.change_made_by == AuditEvent.MadeBy.PLATFORM
    facts = {c["field"]: c["to"] for c in platform.changes}
    assert facts == {
        "number": manager_invoice.number,
        "period": "2025-03",
        "total": "6.87",
        "currency": "USD",
        "due_date": manager_invoice.due_date.isoformat(),
        "status": "due",
    }


def test_the_webhook_is_sent_with_no_priced_detail_to_a_hidden_pricing_account(world):
    Account.objects.filter(pk=world.sibling.pk).update(pricing_hidden=True)
    endpoint = WebhookEndpoint.objects.create(
        account=world.sibling, url="https://hooks.example.com/in", event_types=["invoice.finalized"], secret="s"
    )
    manager_hook = WebhookEndpoint.objects.create(
        account=world.manager, url="https://hooks.example.com/m", event_types=["invoice.finalized"], secret="s",
        include_managed_accounts=True,
    )  # fmt: skip
    usage(world.manager, (world.sibling, "voice.outbound", "33.3"), (world.sibling, "sms.outbound", "1001"))

    invoice_party(account=world.manager, month=MARCH)

    [delivery] = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert delivery.event_type == "invoice.finalized"
    payload = delivery.data["payload"]
    resale = Invoice.objects.resale().get(bill_to=world.sibling)
    assert payload["resource_id"] == str(resale.public_id)
    assert {c["field"] for c in payload["changes"]} == {"number", "period", "total", "currency", "due_date", "status"}
    assert {c["field"]: c["to"] for c in payload["changes"]}["total"] == str(resale.total) == "4.34"
    # The manager's own invoice and its reseller invoices reach its endpoint too.
    assert WebhookDelivery.objects.filter(endpoint=manager_hook).count() == 2
    assert Decimal(str(resale.markup_percent)) == Decimal("0.00")
    for text_ in (str(delivery.data),):
        assert "markup" not in text_ and "0.004" not in text_ and "rate" not in text_


@pytest.mark.parametrize("reader", ["owner", "managed_owner"])
def test_the_audit_log_says_it_in_words(world, persona, manager_invoice, reader):
    account = world.manager if reader == "owner" else world.managed
    page = text(persona(reader).get(reverse("audit_log", args=[account.public_id])))

    assert "Mission Control issued" in page and "for 2025-03" in page
