"""A hidden-pricing roll-up account's reseller invoice (issue 12, item 4): it owes its manager money,
so it sees the invoice the manager issued to it the way a separately billed hidden-pricing account
sees its platform invoice: the total owed and the quantities per product, no unit rate, no per-line
amount, never the manager's markup, and never the manager's free-text note on it (`status_note`,
written when the manager marks it paid or void). On every surface: the invoice list, the page, the
PDF, the v2 API (list, detail, download link) and the audit log (page and API); no e-mail carries
the note either.

March 2025, world.manager's negotiated rates (voice.outbound 0.013370, sms.outbound 0.004125 a unit)
and a 12.50 % markup; world.managed (Alpine Voice, roll-up, pricing hidden) used voice 923.1 minutes
and sms 2987 messages. The amounts are read from the invoice rows, not recomputed here: how a
reseller invoice rounds is billing.invoices.resale's business, what the account is shown is ours.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from io import BytesIO

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from pypdf import PdfReader

from accounts.actor import Actor
from accounts.models import Account, Membership, Role
from accounts.services import create_api_key
from billing.invoices import services as invoice_services
from billing.invoices.builder import invoice_party
from billing.models import Invoice, Product, Rate
from billing.usage.services import ingest_usage

MARCH = date(2025, 3, 1)
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)
VOICE_RATE, SMS_RATE = Decimal("0.013370"), Decimal("0.004125")
MARKUP = Decimal("12.50")
SECRET_NOTE = "Wire 4711, my cost sheet says 0.0031"
WHO = ("managed_owner", "manager_acting")


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _money(amount: Decimal) -> set[str]:
    return {f"{amount:,.2f}", f"{amount:.2f}"}


@pytest.fixture
def resale(world) -> Invoice:
    """world.managed's March reseller invoice, hidden pricing, marked paid with the manager's note."""
    Account.objects.update(created_at=LONG_AGO)
    for sku, price in (("voice.outbound", VOICE_RATE), ("sms.outbound", SMS_RATE)):
        Rate.objects.create(
            product=Product.objects.get(sku=sku), account=world.manager, unit_price=price, effective_from=LONG_AGO
        )
    owner = Actor(user=world.users["owner"])
    invoice_services.set_resale_markup(manager=world.manager, markup_percent=MARKUP, actor=owner)
    rows = [
        {"account": str(world.managed.public_id), "product": sku, "quantity": quantity,
         "started_at": f"2025-03-0{n + 3}T10:00:00Z", "idempotency_key": f"hidden-resale-{n}"}
        for n, (sku, quantity) in enumerate((("voice.outbound", "923.1"), ("sms.outbound", "2987")))
    ]  # fmt: skip
    ingest_usage(submitter=world.manager, rows=rows, source="api", actor=owner)
    invoice_party(account=world.manager, month=MARCH)
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)
    world.managed.refresh_from_db()
    invoice = Invoice.objects.get(issuer=world.manager, bill_to=world.managed, period=MARCH)
    return invoice_services.mark_invoice_paid(invoice=invoice, note=SECRET_NOTE, actor=owner)


def _secrets(world, invoice: Invoice) -> set[str]:
    """What the account may not see: the note, the markup, every rate (the manager's cost and the
    resale rate), every per-line amount of its invoice and of its section on the manager's invoice."""
    found = {SECRET_NOTE, "0.0031", "12.50 %", "12.5 %", "Markup", "markup_percent", "0.013370", "0.01337", "0.004125"}
    factor = 1 + MARKUP / 100
    found |= {str((VOICE_RATE * factor).normalize()), str((SMS_RATE * factor).normalize())}
    platform = Invoice.objects.get(issuer=None, bill_to=world.manager, period=MARCH)
    for line in [*invoice.lines.all(), *platform.lines.filter(account=world.managed)]:
        found |= _money(line.amount)
    found -= _money(invoice.total)  # a single-line invoice's line is its total; this one has two lines
    return found


def _leaked(world, invoice: Invoice, body: str) -> set[str]:
    return {secret for secret in _secrets(world, invoice) if secret in body}


def _key(account: Account) -> str:
    owner = Membership.objects.get(account=account, role=Role.OWNER).user
    _, raw = create_api_key(account=account, name="Hidden resale", actor=Actor(user=owner))
    return raw


def _api(raw: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}", raise_request_exception=False)


def _pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-"), content[:20]
    return _squash("\n".join(page.extract_text() for page in PdfReader(BytesIO(content)).pages))


def test_the_scenario_has_two_priced_lines_a_markup_and_a_note(world, resale):
    assert resale.status == Invoice.Status.PAID and resale.status_note == SECRET_NOTE
    assert resale.markup_percent == MARKUP
    amounts = [line.amount for line in resale.lines.exclude(product=None)]
    assert len(amounts) == 2 and len(set(amounts)) == 2 and resale.total not in amounts


# --- The pages --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", WHO)
def test_the_invoice_list_shows_the_reseller_invoice_and_its_total(world, persona, resale, who):
    page = _squash(persona(who).get(reverse("invoice_list", args=[world.managed.public_id])).content.decode())

    detail = reverse("invoice_detail", args=[world.managed.public_id, resale.public_id])
    assert f'href="{detail}">{resale.number}</a>' in page
    assert f"USD {resale.total:,.2f}" in page and "Paid" in page
    assert "Acme Reseller's invoices to Alpine Voice are listed below" in page
    assert not _leaked(world, resale, page)


@pytest.mark.parametrize("who", WHO)
def test_the_invoice_page_shows_the_total_and_quantities_but_no_amount_rate_markup_or_note(world, persona, resale, who):
    response = persona(who).get(reverse("invoice_detail", args=[world.managed.public_id, resale.public_id]))

    assert response.status_code == 200
    page = _squash(response.content.decode())
    assert f'<div class="invoice-total"><span>Total</span><span>USD {resale.total:,.2f}</span>' in page
    assert f'<th scope="row">Usage charges</th><td class="num">USD {resale.total:,.2f}</td>' in page
    assert "Quantities only" in page and "923.1" in page and "2,987" in page
    assert "Amount</th>" not in page and "Subtotal" not in page
    assert "Issued by Acme Reseller" in page and "Paid" in page
    assert not _leaked(world, resale, page)


@pytest.mark.parametrize("who", WHO)
def test_the_pdf_prints_the_total_and_quantities_but_no_amount_rate_markup_or_note(world, persona, resale, who):
    response = persona(who).get(reverse("invoice_pdf", args=[world.managed.public_id, resale.public_id]))

    assert response.status_code == 200
    content = _pdf_text(response.content)
    assert f"Total USD {resale.total:,.2f}" in content
    assert "Outbound voice (minute) 923.1" in content and "Outbound SMS (message) 2,987" in content
    assert "Quantities only" in content and "Product Quantity Amount" not in content and "Subtotal" not in content
    assert "Product Quantity Outbound SMS" in content  # the lines' head has no Amount column
    assert not _leaked(world, resale, content)


def test_the_manager_still_sees_its_amounts_markup_and_note(world, persona, resale):
    """The control: the secrets are on the manager's own view of the same invoice."""
    client = persona("owner")
    page = client.get(reverse("issued_invoice_detail", args=[world.manager.public_id, resale.public_id]))
    pdf = client.get(reverse("issued_invoice_pdf", args=[world.manager.public_id, resale.public_id]))

    shown = _squash(page.content.decode())
    assert SECRET_NOTE in shown and "12.50 %" in shown
    assert len(_leaked(world, resale, shown)) > 3
    assert len(_leaked(world, resale, _pdf_text(pdf.content))) > 1


def test_a_roll_up_account_with_pricing_visible_sees_the_line_amounts(world, persona, resale):
    """The control of the amounts: the same invoice, pricing visible, is priced per line."""
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=False)

    page = persona("managed_owner").get(reverse("invoice_detail", args=[world.managed.public_id, resale.public_id]))

    amounts = {f"{line.amount:,.2f}" for line in resale.lines.exclude(product=None)}
    assert all(amount in page.content.decode() for amount in amounts)


# --- The v2 API -------------------------------------------------------------------------------------------


def test_the_api_lists_and_retrieves_it_with_its_total_and_nothing_priced_per_line(world, resale):
    api = _api(_key(world.managed))

    listed = api.get("/v2/invoices")
    one = api.get(f"/v2/invoices/{resale.public_id}", {"action": "link"})

    assert listed.status_code == one.status_code == 200
    records = listed.json()["data"]
    assert [r["invoice_id"] for r in records] == [str(resale.public_id)]
    record = one.json()["data"]
    assert record["total"] == f"{resale.total:.2f}" and record["paid"] is True
    assert record["issued_by"] == str(world.manager.public_id)
    assert not [field for field in record if "markup" in field or "note" in field or "line" in field]
    for body in (listed.content.decode(), one.content.decode()):
        assert not _leaked(world, resale, body)

    download = Client().get("/" + record["download_url"].split("/", 3)[3])
    assert download.status_code == 200
    content = _pdf_text(download.content)
    assert f"Total USD {resale.total:,.2f}" in content and "923.1" in content
    assert not _leaked(world, resale, content)


# --- The audit log ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", WHO)
def test_the_log_page_shows_the_invoice_was_paid_but_not_the_managers_note(world, persona, resale, who):
    response = persona(who).get(reverse("audit_log", args=[world.managed.public_id]))

    assert response.status_code == 200
    events = [row.record for row in response.context["table"].page.object_list]
    paid = [e for e in events if e.change_type == "invoice.marked_paid"]
    assert len(paid) == 1 and paid[0].resource_id == str(resale.public_id)
    assert paid[0].changes == [{"field": "status", "from": "finalized", "to": "paid"}]
    assert SECRET_NOTE not in response.content.decode()


def test_the_audit_api_shows_the_invoice_was_paid_but_not_the_managers_note(world, resale):
    body = _api(_key(world.managed)).get("/v2/audit_events", {"page[size]": 250}).json()

    paid = [e for e in body["data"] if e["change_type"] == "invoice.marked_paid"]
    assert len(paid) == 1 and paid[0]["resource_id"] == str(resale.public_id)
    assert paid[0]["changes"] == [{"field": "status", "from": "finalized", "to": "paid"}]
    assert SECRET_NOTE not in json.dumps(body)


def test_the_manager_keeps_its_note_in_its_own_log(world, persona, resale):
    page = persona("owner").get(reverse("audit_log", args=[world.manager.public_id])).content.decode()
    body = _api(_key(world.manager)).get("/v2/audit_events", {"page[size]": 250}).content.decode()

    assert SECRET_NOTE in page and SECRET_NOTE in body


def test_no_e_mail_carries_the_note(world, resale, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invoice_services.void_invoice(
            invoice=Invoice.objects.get(issuer=world.manager, bill_to=world.sibling),
            reason=SECRET_NOTE,
            actor=Actor(user=world.users["owner"]),
        )

    assert not [m for m in mail.outbox if SECRET_NOTE in m.body or SECRET_NOTE in m.subject]
