"""A customer's invoice page and PDF show no internal check (issue 12, items 1 and 7): no rounding
line at all, since each section's stored rounding is shown inside its largest lines
(billing.invoices.lines.shown_amounts), so the lines add up to the section subtotal the ledger
charged and the subtotals to the total; and the self-check that the sections add up is shown to
platform staff only.

The invoice is world.manager's March 2025 invoice of tests/test_invoice_pages.py: Blue Harbor's
stored lines 4.00 + 0.33 with a stored rounding line of 0.01 (its section charged 4.34), shown as
4.01 + 0.33; total 6.87. No markup: Blue Harbor's reseller invoice is its section at 0 %.
"""

# ruff: noqa: F811  (the fixture manager_invoice is imported from test_invoice_pages)

from __future__ import annotations

import re
from decimal import Decimal

from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Role, User
from billing.models import Invoice, InvoiceLine
from tests.test_invoice_pages import _owner, _sections, _usd, detail_url, manager_invoice, text  # noqa: F401
from tests.test_invoice_pdf import pdf_text, pdf_url


def _staff_client(account) -> Client:
    """A platform staff user who is a billing member of `account`."""
    user = User.objects.create(email="staff-billing@example.com", is_staff=True)
    Membership.objects.create(user=user, account=account, role=Role.BILLING)
    client = Client()
    client.force_login(user)
    return client


def _total(page: str) -> Decimal:
    return _usd(re.search(r'<div class="invoice-total"><span>Total</span><span>(.*?)</span>', page).group(1))


def test_the_customers_page_has_no_rounding_line_and_no_check(world, persona, manager_invoice):
    page = text(persona("billing").get(detail_url(world.manager, manager_invoice)))

    assert "Check" not in page and "Rounding" not in page
    sections = _sections(page)
    assert [(s["title"], s["subtotal"]) for s in sections] == [
        ("Acme Reseller", "USD 0.03"),
        ("Alpine Voice", "USD 2.50"),
        ("Blue Harbor", "USD 4.34"),  # what the ledger charged for it
    ]
    assert sections[2]["lines"] == [
        ("Outbound SMS (message)", "1,001", "USD 4.01"),
        ("Outbound voice (minute)", "33.3", "USD 0.33"),
    ]
    for section in sections:  # every subtotal is the sum of the lines it shows
        assert sum(_usd(amount) for _, _, amount in section["lines"]) == _usd(section["subtotal"])
    assert sum(_usd(s["subtotal"]) for s in sections) == _total(page) == Decimal("6.87")
    # The stored invoice is unchanged: the rounding line is still in Blue Harbor's section.
    stored = InvoiceLine.objects.filter(invoice=manager_invoice, product__isnull=True)
    assert [(line.account_id, line.amount) for line in stored] == [(world.sibling.pk, Decimal("0.01"))]
    sms = InvoiceLine.objects.get(invoice=manager_invoice, account=world.sibling, product__sku="sms.outbound")
    assert sms.amount == Decimal("4.00")


def test_the_customers_pdf_has_no_rounding_line_and_no_check(world, persona, manager_invoice):
    content, _ = pdf_text(persona("owner").get(pdf_url(world.manager, manager_invoice)).content)

    assert "Check" not in content and "Rounding" not in content
    assert "Outbound SMS (message) 1,001 USD 4.01" in content and "Outbound voice (minute) 33.3 USD 0.33" in content
    assert "Subtotal Blue Harbor USD 4.34" in content and "Total USD 6.87" in content


def test_blue_harbors_reseller_invoice_at_0_percent_shows_its_platform_section(world, persona, manager_invoice):
    """Issue 12, item 1: at 0 % markup the reseller invoice equals its platform section to the cent,
    as the manager and the managed account see them, and its lines add up to its total."""
    resale = Invoice.objects.get(issuer=world.manager, bill_to=world.sibling, period=manager_invoice.period)
    assert resale.markup_percent == Decimal("0.00")
    platform = _sections(text(persona("owner").get(detail_url(world.manager, manager_invoice))))[2]
    issued_url = reverse("issued_invoice_detail", args=[world.manager.public_id, resale.public_id])
    blue = Client()
    blue.force_login(_owner(world.sibling))

    for page in (text(persona("owner").get(issued_url)), text(blue.get(detail_url(world.sibling, resale)))):
        assert "Rounding" not in page and "Check" not in page
        [section] = _sections(page)
        assert section["title"] == platform["title"] == "Blue Harbor"
        assert section["lines"] == platform["lines"]  # line for line
        assert section["subtotal"] == platform["subtotal"] == "USD 4.34"
        assert sum(_usd(amount) for _, _, amount in section["lines"]) == _total(page) == Decimal("4.34")
    content, _ = pdf_text(blue.get(reverse("invoice_pdf", args=[world.sibling.public_id, resale.public_id])).content)
    assert "Rounding" not in content and "Check" not in content
    assert "Outbound SMS (message) 1,001 USD 4.01" in content and "Outbound voice (minute) 33.3 USD 0.33" in content
    assert "Subtotal Blue Harbor USD 4.34" in content and "Total USD 4.34" in content


def test_platform_staff_see_the_check_on_the_page(world, manager_invoice):
    page = text(_staff_client(world.manager).get(detail_url(world.manager, manager_invoice)))

    assert (
        "Check (platform staff only): the 3 sections, rounding included, add up to USD 6.87, the invoice total. ✓"
        in page
    )


def test_a_check_that_fails_is_shown_to_staff_and_never_to_the_customer(world, persona, manager_invoice):
    # A finalized invoice never changes; this edit only simulates a broken one to see the check fire.
    Invoice.objects.filter(pk=manager_invoice.pk).update(total=Decimal("6.88"))

    staff = text(_staff_client(world.manager).get(detail_url(world.manager, manager_invoice)))
    customer = text(persona("billing").get(detail_url(world.manager, manager_invoice)))
    content, _ = pdf_text(persona("billing").get(pdf_url(world.manager, manager_invoice)).content)

    assert (
        "Check failed (platform staff only): the 3 sections, rounding included, add up to USD 6.87, not USD 6.88"
        in staff
    )
    assert "Check" not in customer and "Check" not in content
