"""A manager bills its roll-up managed account, through the real pages in a real browser: sets a
markup, finds the reseller invoice the close issued, marks it paid after the confirmation step; the
managed account's owner then sees it paid, issued by the manager."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from billing.invoices import builder
from billing.invoices import services as invoice_services
from billing.models import Invoice, ResaleTerms
from billing.usage.services import ingest_usage
from tests.browser.test_billing_flow import sign_in
from tests.factories import account_with_owner

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def closed_month(transactional_db):
    """A manager with one roll-up managed account whose last month (1,000 minutes at USD 0.01) is
    closed, with the manager's markup at 20 % when it closed."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)  # flushed by earlier tests
    manager, manager_owner = account_with_owner(name="Harbor Reseller", manager_kind=True)
    managed, managed_owner = account_with_owner(name="Pier Calls", managed_kind=True, manager=manager)
    Account.objects.update(created_at=datetime(2020, 1, 1, tzinfo=UTC))
    month = (datetime.now(UTC).date().replace(day=1) - timedelta(days=1)).replace(day=1)
    at = datetime.combine(month + timedelta(days=3), time(9), UTC).isoformat()
    rows = [
        {"account": str(managed.public_id), "product": "voice.outbound", "quantity": "250", "started_at": at,
         "idempotency_key": f"pier-{n}"}
        for n in range(4)
    ]  # fmt: skip
    ingest_usage(submitter=manager, rows=rows, source="api", actor=Actor(user=manager_owner))
    invoice_services.set_resale_markup(manager=manager, markup_percent=Decimal("20"), actor=Actor(user=manager_owner))
    builder.invoice_party(account=manager, month=month)
    invoice = Invoice.objects.get(issuer=manager, bill_to=managed)
    assert invoice.total == Decimal("12.00")  # USD 10.00 at the platform's price, plus 20 %
    return manager, manager_owner, managed, managed_owner, invoice


def test_a_manager_sets_its_markup_and_marks_a_reseller_invoice_paid(page: Page, live_server, closed_month):
    manager, manager_owner, managed, managed_owner, invoice = closed_month
    sign_in(page, manager_owner.email)

    page.goto(reverse("invoice_list", args=[manager.public_id]))
    page.get_by_role("navigation").get_by_role("link", name="Reseller invoices").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Reseller invoices")
    markup = page.get_by_label("Markup over the platform's cost (%)")
    expect(markup).to_have_value("20.00")
    markup.fill("-5")
    page.get_by_role("button", name="Save markup").click()
    expect(page.locator("main")).to_contain_text("The markup cannot be negative.")
    page.get_by_label("Markup over the platform's cost (%)").fill("25")
    page.get_by_role("button", name="Save markup").click()
    expect(page.locator(".messages")).to_contain_text("Markup set to 25")
    assert ResaleTerms.objects.get(manager=manager).markup_percent == Decimal("25.00")

    page.get_by_role("link", name=invoice.number).click()
    expect(page.locator("main")).to_contain_text("Issued by Harbor Reseller")
    expect(page.locator("main")).to_contain_text("20.00 % over your cost")  # the markup of its close
    page.get_by_role("link", name="Mark paid…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Mark paid invoice {invoice.number}?")
    page.get_by_label("Note (optional)").fill("Bank transfer 7781")
    page.get_by_role("button", name="Mark paid").click()
    expect(page.locator(".messages")).to_contain_text(f"Invoice {invoice.number} is now paid.")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert AuditEvent.objects.get(change_type="invoice.marked_paid").user == manager_owner

    page.context.clear_cookies()
    sign_in(page, managed_owner.email)
    page.goto(reverse("invoice_list", args=[managed.public_id]))
    expect(page.locator("main")).to_contain_text("Pier Calls is billed by Harbor Reseller")
    page.get_by_role("link", name=invoice.number).click()
    expect(page.locator("main")).to_contain_text("Paid")
    expect(page.locator("main")).to_contain_text("USD 12.00")
    expect(page.locator("main")).not_to_contain_text("over your cost")
