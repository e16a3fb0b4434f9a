"""Invoice PDFs: the portal download (same access as the invoice page), the signed, time-limited
link the v2 API hands out (`action=link`), and hidden pricing in the PDF (quantities only).

The invoices are the ones of tests/test_invoice_pages.py (its fixtures and helpers are reused):
world.manager's March 2025 invoice, total USD 6.87 in three sections, and Canyon Lines, a
separately billed hidden-pricing managed account, total USD 24.66.
"""

# ruff: noqa: F811  (the fixtures canyon and manager_invoice are imported from test_invoice_pages)

from __future__ import annotations

import re
import time
import uuid
from io import BytesIO
from unittest import mock

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse
from pypdf import PdfReader

from accounts import services
from accounts.actor import Actor
from accounts.models import Account
from billing.invoices.builder import invoice_party
from billing.invoices.pdf import DOWNLOAD_MAX_AGE, DOWNLOAD_SALT, download_token, invoice_pdf
from billing.models import Invoice
from tests.test_invoice_pages import (  # noqa: F401
    MARCH,
    _canyon_clients,
    _manager_with_roll_ups,
    _owner,
    _secrets,
    canyon,
    detail_url,
    manager_invoice,
    text,
    usage,
)


def pdf_url(account: Account, invoice: Invoice) -> str:
    return reverse("invoice_pdf", args=[account.public_id, invoice.public_id])


def pdf_text(content: bytes) -> tuple[str, int]:
    """The PDF's text (whitespace collapsed) and its page count; pypdf must be able to read it."""
    assert content.startswith(b"%PDF-"), content[:20]
    reader = PdfReader(BytesIO(content))
    return re.sub(r"\s+", " ", "\n".join(page.extract_text() for page in reader.pages)), len(reader.pages)


def api_link(account: Account, invoice: Invoice) -> str:
    """The `download_url` of `invoice` through a fresh API key of `account`, as a path."""
    _, raw = services.create_api_key(account=account, name="PDF test", actor=Actor(user=_owner(account)))
    response = Client().get(f"/v2/invoices/{invoice.public_id}", {"action": "link"}, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200, response.content
    url = response.json()["data"]["download_url"]
    assert url.startswith("http://testserver/invoices/download/"), url
    return url.removeprefix("http://testserver")


def signing_clock(seconds_from_now: float):
    """django.core.signing's clock (and only its clock) moved by `seconds_from_now`."""
    fake = mock.Mock(time=mock.Mock(return_value=time.time() + seconds_from_now))
    return mock.patch("django.core.signing.time", fake)


# --- The portal download -------------------------------------------------------------------------------


def test_the_pdf_downloads_with_header_statement_sections_and_total(world, persona, manager_invoice):
    response = persona("billing").get(pdf_url(world.manager, manager_invoice))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{manager_invoice.number}.pdf"'
    assert manager_invoice.number.startswith("MC-")
    content, pages = pdf_text(response.content)
    assert pages == 1
    assert f"Invoice {manager_invoice.number}" in content
    assert "1 March 2025 – 31 March 2025 (UTC)" in content
    assert "Acme Reseller" in content and "Status Due" in content
    for label, amount in (
        ("Opening balance", "USD 10.00"),
        ("Credits (top-ups, transfers, adjustments)", "USD 100.00"),
        ("Usage charges", "USD 6.87"),
        ("Closing balance", "USD 103.13"),
    ):
        assert f"{label} {amount}" in content, label
    for title in ("Acme Reseller Own usage", "Alpine Voice Roll-up managed account", "Blue Harbor Roll-up managed"):
        assert title in content, title
    # Blue Harbor's stored rounding line (0.01) is in its largest line: no rounding line is printed.
    assert "Outbound SMS (message) 1,001 USD 4.01" in content
    assert "Outbound voice (minute) 33.3 USD 0.33" in content
    assert "Rounding" not in content
    assert "Subtotal Blue Harbor USD 4.34" in content and "Subtotal Alpine Voice USD 2.50" in content
    assert "Total USD 6.87" in content
    assert "Check" not in content  # the self-check is for platform staff, on the page


def test_a_check_that_fails_is_not_printed_in_the_customers_pdf(world, persona, manager_invoice):
    """Platform staff see it on the page (tests/test_invoice_shows_customers_no_internal_check.py)."""
    Invoice.objects.filter(pk=manager_invoice.pk).update(total="6.88")  # simulates a broken invoice

    content, _ = pdf_text(persona("owner").get(pdf_url(world.manager, manager_invoice)).content)

    assert "Check" not in content and "Total USD 6.88" in content


def test_the_invoice_page_links_to_its_pdf(world, persona, manager_invoice):
    page = text(persona("billing").get(detail_url(world.manager, manager_invoice)))

    assert f'href="{pdf_url(world.manager, manager_invoice)}" download>Download PDF</a>' in page


def test_an_invoice_without_usage_says_so(world, persona):
    empty = invoice_party(account=world.standard, month=MARCH)

    content, _ = pdf_text(persona("standard_owner").get(pdf_url(world.standard, empty)).content)

    assert "No usage in March 2025." in content and "Total USD 0.00" in content


# --- Hidden pricing ------------------------------------------------------------------------------------


def test_hidden_pricing_prints_quantities_but_no_line_amount_or_rate(world, canyon):
    for who, client in _canyon_clients(world, canyon).items():
        response = client.get(pdf_url(canyon, canyon.invoice))

        assert response.status_code == 200, who
        content, _ = pdf_text(response.content)
        assert "Outbound SMS (message) 2,987" in content and "Outbound voice (minute) 923.1" in content, who
        assert "Usage charges USD 24.66" in content and "Total USD 24.66" in content, who
        assert "Quantities only" in content and "Check" not in content, who
        assert "Amount" not in content and "Subtotal" not in content and "section subtotal" not in content, who
        assert not {s for s in _secrets() if s in content}, who


def test_the_same_pdf_prints_line_amounts_when_pricing_is_visible(world, canyon):
    """The control: the test above can fail."""
    Account.objects.filter(pk=canyon.pk).update(pricing_hidden=False)
    client = _canyon_clients(world, canyon)["canyon_owner"]

    content, _ = pdf_text(client.get(pdf_url(canyon, canyon.invoice)).content)

    assert {"12.34", "12.32"} <= {s for s in _secrets() if s in content}
    assert "Outbound voice (minute) 923.1 USD 12.34" in content and "Subtotal Canyon Lines USD 24.66" in content


def test_hidden_pricing_drops_the_rounding_line_from_the_pdf(world):
    sibling = world.sibling
    Account.objects.filter(pk=sibling.pk).update(billing_mode=Account.BillingMode.SEPARATE, pricing_hidden=True)
    sibling.refresh_from_db()
    usage(sibling, (sibling, "voice.outbound", "33.3"), (sibling, "sms.outbound", "1001"))
    invoice = invoice_party(account=sibling, month=MARCH)
    client = Client()
    client.force_login(_owner(sibling))

    content, _ = pdf_text(client.get(pdf_url(sibling, invoice)).content)

    assert "Outbound SMS (message) 1,001" in content and "Total USD 4.34" in content
    assert "Rounding" not in content
    assert not [amount for amount in ("4.00", "0.33", "0.01", "4.004", "0.333") if amount in content]


# --- Scale ---------------------------------------------------------------------------------------------


def test_a_managers_pdf_with_300_roll_up_sections_renders(db):
    large, client = _manager_with_roll_ups(300)

    started = time.perf_counter()
    response = client.get(pdf_url(large, large.invoice))
    seconds = time.perf_counter() - started

    assert response.status_code == 200
    content, pages = pdf_text(response.content)
    print(f"\n300 roll-up sections: {seconds:.2f} s, {pages} pages, {len(response.content):,} bytes")
    assert pages > 10
    assert "Roll-up 300-0000" in content and "Roll-up 300-0299" in content
    assert content.count("Roll-up managed account") == 300
    assert f"Total USD {large.invoice.total:,.2f}" in content and "Check" not in content
    assert seconds < 20, seconds


# --- Portal access --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"),
    [("owner", 200), ("admin", 200), ("billing", 200), ("reporting", 403), ("managed_owner", 404),
     ("standard_owner", 404), ("other_tenant", 404), ("manager_acting", 404)],
)  # fmt: skip
def test_who_may_download_a_managers_invoice(world, persona, manager_invoice, who, status):
    response = persona(who).get(pdf_url(world.manager, manager_invoice))

    assert response.status_code == status, who
    assert (response["Content-Type"] == "application/pdf") == (status == 200)


def test_another_accounts_invoice_is_not_found_and_anonymous_signs_in(world, persona, manager_invoice):
    foreign = invoice_party(account=world.other_manager, month=MARCH)
    client = persona("billing")

    assert client.get(pdf_url(world.manager, foreign)).status_code == 404
    assert client.get(reverse("invoice_pdf", args=[world.manager.public_id, uuid.uuid4()])).status_code == 404
    assert persona("managed_owner").get(pdf_url(world.managed, manager_invoice)).status_code == 404  # roll-up
    anonymous = Client().get(pdf_url(world.manager, manager_invoice))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("account_login"))


# --- The API's signed link -----------------------------------------------------------------------------


def test_the_api_link_downloads_the_pdf_without_a_session(world, manager_invoice):
    path = api_link(world.manager, manager_invoice)

    response = Client().get(path)  # no session, no key

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{manager_invoice.number}.pdf"'
    content, _ = pdf_text(response.content)
    assert manager_invoice.number in content and "Total USD 6.87" in content
    assert "Subtotal Blue Harbor USD 4.34" in content  # the manager sees its pricing
    assert Client().post(path).status_code == 405


def test_the_api_link_of_a_hidden_pricing_account_prints_no_line_amount(world, canyon):
    content, _ = pdf_text(Client().get(api_link(canyon, canyon.invoice)).content)

    assert "Outbound voice (minute) 923.1" in content and "Total USD 24.66" in content
    assert not {s for s in _secrets() if s in content}


def test_a_tampered_link_is_not_found(world, manager_invoice):
    path = api_link(world.manager, manager_invoice)
    token = path.split("/")[-2]
    value, _, signature = token.rpartition(":")
    other = invoice_party(account=world.manager, month=MARCH.replace(month=2))

    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    tampered = [
        f"{value}:{flipped}",  # the signature changed
        f"{value.replace(str(manager_invoice.public_id), str(other.public_id))}:{signature}",  # another invoice
        f"{value.replace(str(world.manager.public_id), str(world.other_manager.public_id))}:{signature}",
        value,  # no signature
        "not-a-token",
        signing.TimestampSigner(salt="another-salt").sign(value.rpartition(":")[0]),  # signed for something else
    ]
    for token in tampered:
        assert Client().get(reverse("invoice_download", args=[token])).status_code == 404, token
    assert Client().get(path).status_code == 200  # the genuine one still works


def test_a_link_expires_after_15_minutes(world, manager_invoice):
    path = api_link(world.manager, manager_invoice)

    with signing_clock(DOWNLOAD_MAX_AGE - 60):
        assert Client().get(path).status_code == 200
    with signing_clock(DOWNLOAD_MAX_AGE + 1):
        assert Client().get(path).status_code == 404


def test_a_link_signed_16_minutes_ago_is_refused(world, manager_invoice):
    with signing_clock(-16 * 60):
        old = download_token(manager_invoice, world.manager)
    with signing_clock(-14 * 60):
        recent = download_token(manager_invoice, world.manager)
    # the same value, signed by hand with TimestampSigner in the past
    with signing_clock(-DOWNLOAD_MAX_AGE - 5):
        by_hand = signing.TimestampSigner(salt=DOWNLOAD_SALT).sign(
            f"{world.manager.public_id}.{manager_invoice.public_id}"
        )

    assert Client().get(reverse("invoice_download", args=[old])).status_code == 404
    assert Client().get(reverse("invoice_download", args=[by_hand])).status_code == 404
    assert Client().get(reverse("invoice_download", args=[recent])).status_code == 200


def test_one_accounts_link_cannot_fetch_another_accounts_invoice(world, canyon, manager_invoice):
    foreign = invoice_party(account=world.other_manager, month=MARCH)
    # Validly signed, but naming an account that does not see the invoice: the invoice's own
    # payer only (a roll-up account does not see its manager's invoice; a manager does not see a
    # separately billed managed account's invoice; another tenant sees neither).
    for account, invoice in (
        (world.other_manager, manager_invoice),
        (world.managed, manager_invoice),
        (canyon, manager_invoice),
        (world.manager, canyon.invoice),
        (world.manager, foreign),
    ):
        token = download_token(invoice, account)
        assert Client().get(reverse("invoice_download", args=[token])).status_code == 404, (account.name, invoice)
    # The API hands no link for them either.
    _, raw = services.create_api_key(account=canyon, name="x", actor=Actor(user=_owner(canyon)))
    response = Client().get(
        f"/v2/invoices/{manager_invoice.public_id}", {"action": "link"}, HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert response.status_code == 404


def test_a_link_stops_working_when_its_account_is_disabled(world, manager_invoice):
    path = api_link(world.manager, manager_invoice)
    Account.objects.filter(pk=world.manager.pk).update(status=Account.Status.DISABLED)

    assert Client().get(path).status_code == 404


def test_pricing_is_the_callers_decision(world, manager_invoice):
    """Called directly: pricing is the caller's decision, not the invoice's."""
    priced, _ = pdf_text(invoice_pdf(manager_invoice, pricing=True))
    hidden, _ = pdf_text(invoice_pdf(manager_invoice, pricing=False))

    assert "USD 4.01" in priced and "USD 4.01" not in hidden  # Blue Harbor's SMS line, as shown
    assert "Total USD 6.87" in priced and "Total USD 6.87" in hidden
