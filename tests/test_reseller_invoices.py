"""Reseller invoices (DESIGN section 5): a manager's invoices to its roll-up managed accounts, issued
by the monthly close with the manager's own platform invoice, at the rated cost plus the manager's
markup, numbered gap-free per manager, and marked paid (or void) by the manager; the states move
finalized -> paid | void only. Expected amounts are computed here from the raw usage records."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Membership, Role
from billing.invoices import services as invoice_services
from billing.invoices.builder import invoice_party
from billing.invoices.services import InvoiceStateError
from billing.models import Invoice, InvoiceLine, InvoiceSequence, ResaleTerms, UsageRecord
from billing.usage.services import ingest_usage
from tests.conftest import make_managed_accounts
from tests.test_invoice_pages import _sections, _usd

MARCH, APRIL = date(2025, 3, 1), date(2025, 4, 1)
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


def usage(submitter: Account, *rows: tuple[Account, str, str], month: date = MARCH) -> None:
    records = [
        {
            "account": str(account.public_id),
            "product": product,
            "quantity": quantity,
            "started_at": f"{month:%Y-%m}-{n % 28 + 1:02d}T10:00:00Z",
            "idempotency_key": f"resale-{account.pk}-{product}-{n}-{month:%Y%m}",
        }
        for n, (account, product, quantity) in enumerate(rows)
    ]
    owner = Membership.objects.filter(account=submitter, role=Role.OWNER).first()
    ingest_usage(submitter=submitter, rows=records, source="api", actor=Actor(user=owner.user))


def expected_lines(account: Account, month: date, markup: Decimal) -> dict[str | None, Decimal]:
    """Per product: the raw records' exact cost, plus the markup, rounded to cents half up once; and
    under None the rounding line to the invoice's total, the account's exact cost rounded to cents,
    plus the markup, rounded again (if the lines do not add up to it)."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    exact: dict[str, Decimal] = {}
    for sku, cost in UsageRecord.objects.filter(account=account, started_at__gte=start, started_at__lt=end).values_list(
        "product__sku", "cost"
    ):
        exact[sku] = exact.get(sku, Decimal(0)) + cost
    factor = 1 + markup / 100
    lines: dict[str | None, Decimal] = {sku: cents(cost * factor) for sku, cost in exact.items()}
    rounding = cents(cents(sum(exact.values(), Decimal(0))) * factor) - sum(lines.values())
    return {**lines, None: rounding} if rounding else lines


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def lines_of(invoice: Invoice) -> dict[str | None, Decimal]:
    return dict(invoice.lines.values_list("product__sku", "amount"))


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def march(world):
    """world.manager has two roll-up accounts (Alpine, Blue) and one separate (Cedar); March usage on all."""
    cedar = make_managed_accounts(world.manager, 1)[0]
    Account.objects.filter(pk=cedar.pk).update(billing_mode=Account.BillingMode.SEPARATE, status="enabled")
    Account.objects.update(created_at=LONG_AGO)
    usage(
        world.manager,
        (world.manager, "sms.outbound", "7"),
        (world.managed, "voice.outbound", "250.5"),
        (world.managed, "sms.outbound", "3"),
        (world.sibling, "voice.outbound", "33.3"),
        (world.sibling, "sms.outbound", "1001"),
    )
    usage(world.manager, (Account.objects.get(pk=cedar.pk), "voice.outbound", "10"))
    return world


# --- The close issues them ---------------------------------------------------------------------------


def test_the_close_issues_one_reseller_invoice_per_roll_up_account_at_cost_plus_markup(march):
    world = march
    invoice_services.set_resale_markup(
        manager=world.manager, markup_percent=Decimal("17.50"), actor=Actor(user=world.users["owner"])
    )

    platform = invoice_party(account=world.manager, month=MARCH)

    resale = {i.bill_to_id: i for i in Invoice.objects.filter(issuer=world.manager, period=MARCH)}
    assert set(resale) == {world.managed.pk, world.sibling.pk}  # roll-up only; the separate one pays the platform
    for account in (world.managed, world.sibling):
        invoice = resale[account.pk]
        expected = expected_lines(account, MARCH, Decimal("17.50"))
        assert lines_of(invoice) == expected
        assert invoice.total == invoice.charges == sum(expected.values())
        assert invoice.status == Invoice.Status.FINALIZED and invoice.finalized_at is not None
        assert invoice.markup_percent == Decimal("17.50")
    # 250.5 minutes at 0.01 = 2.505, +17.5 % = 2.943375 -> 2.94; 3 messages at 0.004 = 0.012 -> 0.0141 -> 0.01;
    # the invoice: 2.517 -> 2.52 at the platform, +17.5 % = 2.961 -> 2.96, so a rounding line of 0.01.
    assert lines_of(resale[world.managed.pk]) == {
        "voice.outbound": Decimal("2.94"),
        "sms.outbound": Decimal("0.01"),
        None: Decimal("0.01"),
    }
    assert resale[world.managed.pk].total == Decimal("2.96")
    # Numbered in the manager's own sequence, by account name; the platform's sequence is untouched by them.
    assert [resale[world.managed.pk].number, resale[world.sibling.pk].number] == ["R-0000001", "R-0000002"]
    assert InvoiceSequence.objects.get(issuer_key=f"account:{world.manager.pk}").last_number == 2
    assert platform.number == "MC-0000001"
    # The platform invoice still charges the manager the platform's price.
    assert platform.lines.filter(account=world.managed).values_list("amount", flat=True).first() is not None


def test_a_second_close_issues_nothing_and_the_unique_constraint_refuses_a_duplicate(march):
    world = march
    invoice_party(account=world.manager, month=MARCH)
    before = sorted(Invoice.objects.values_list("pk", "number", "total"))
    lines = InvoiceLine.objects.count()

    invoice_party(account=world.manager, month=MARCH)

    assert sorted(Invoice.objects.values_list("pk", "number", "total")) == before
    assert InvoiceLine.objects.count() == lines
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(issuer=world.manager, bill_to=world.managed, period=MARCH)


def test_each_manager_numbers_its_own_invoices_and_months_continue_the_sequence(march):
    world = march
    Account.objects.filter(pk=world.other_managed.pk).update(created_at=LONG_AGO)
    invoice_party(account=world.other_manager, month=MARCH)
    invoice_party(account=world.manager, month=MARCH)
    usage(world.manager, (world.managed, "voice.outbound", "1"), month=APRIL)
    invoice_party(account=world.manager, month=APRIL)

    numbers = dict(Invoice.objects.filter(issuer__isnull=False).values_list("bill_to__name", "period"))
    assert numbers  # sanity
    ours = list(Invoice.objects.filter(issuer=world.manager).order_by("number").values_list("number", flat=True))
    assert ours == ["R-0000001", "R-0000002", "R-0000003", "R-0000004"]
    assert list(Invoice.objects.filter(issuer=world.other_manager).values_list("number", flat=True)) == ["R-0000001"]


def test_a_renamed_account_keeps_its_old_name_on_issued_invoices(march, persona):
    world = march
    invoice_party(account=world.manager, month=MARCH)
    Account.objects.filter(pk=world.managed.pk).update(name="Alpine Renamed")
    platform = Invoice.objects.get(issuer__isnull=True, bill_to=world.manager, period=MARCH)

    page = text(persona("owner").get(reverse("invoice_detail", args=[world.manager.public_id, platform.public_id])))

    assert "Alpine Voice" in page and "Alpine Renamed" not in page


# --- The manager's pages ------------------------------------------------------------------------------


def resale_url(world) -> str:
    return reverse("resale_invoices", args=[world.manager.public_id])


def test_the_manager_sets_a_markup_and_bad_input_keeps_what_was_typed(march, persona):
    world = march
    client = persona("billing")
    for typed, message in [
        ("-1", "cannot be negative"),
        ("1000.01", "at most 1,000"),
        ("12.345", "at most two decimals"),
        ("twelve", "as a number"),
        ("", "Enter a markup"),
    ]:
        response = client.post(resale_url(world), {"markup_percent": typed})
        assert response.status_code == 422, typed
        assert message in text(response), typed
        assert f'value="{typed}"' in text(response) or typed == ""
    assert not ResaleTerms.objects.exists()

    response = client.post(resale_url(world), {"markup_percent": "12.5"})

    assert response.status_code == 302
    assert ResaleTerms.objects.get(manager=world.manager).markup_percent == Decimal("12.50")
    event = AuditEvent.objects.get(account=world.manager, change_type="resale_markup.changed")
    assert event.user == world.users[Role.BILLING]
    assert event.changes == [{"field": "markup_percent", "from": "0.00", "to": "12.50"}]


def test_the_list_filters_by_status_and_account_and_is_paginated_with_constant_queries(world, persona):
    Account.objects.update(created_at=LONG_AGO)
    client = persona("owner")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(resale_url(world)).status_code == 200
        return len(captured)

    invoice_party(account=world.manager, month=MARCH)
    few = queries()
    many = make_managed_accounts(world.manager, 60)
    Account.objects.filter(pk__in=[a.pk for a in many]).update(
        billing_mode=Account.BillingMode.ROLLUP, status="enabled", created_at=LONG_AGO
    )
    invoice_party(account=world.manager, month=APRIL)

    assert queries() == few
    page = text(client.get(resale_url(world)))
    assert "Page 1 of" in page or "page=2" in page
    sibling_only = text(client.get(resale_url(world), {"account": str(world.sibling.public_id)}))
    assert sibling_only.count("R-00") == 2  # March and April, Blue Harbor only
    paid = Invoice.objects.filter(issuer=world.manager, bill_to=world.sibling, period=MARCH).get()
    invoice_services.mark_invoice_paid(invoice=paid, note="", actor=Actor(user=world.users["owner"]))
    only_paid = text(client.get(resale_url(world), {"status": "paid"}))
    assert paid.number in only_paid and only_paid.count("R-00") == 1


def test_a_manager_without_roll_up_accounts_is_told_what_to_do(world, persona):
    Account.objects.filter(manager=world.manager).update(billing_mode=Account.BillingMode.SEPARATE)
    page = text(persona("owner").get(resale_url(world)))
    assert "You have no roll-up managed accounts" in page


def test_marking_paid_asks_first_then_changes_once_and_is_audited_on_both_accounts(march, persona):
    world = march
    invoice_party(account=world.manager, month=MARCH)
    invoice = Invoice.objects.get(issuer=world.manager, bill_to=world.managed)
    url = reverse("issued_invoice_status", args=[world.manager.public_id, invoice.public_id, "paid"])
    client = persona("owner")

    confirm = client.get(url)
    assert confirm.status_code == 200 and "Mark paid invoice R-0000001?" in text(confirm)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.FINALIZED  # a GET changes nothing

    done = client.post(url, {"note": "Wire 4711"})
    assert done.status_code == 302
    invoice.refresh_from_db()
    assert (invoice.status, invoice.status_note) == (Invoice.Status.PAID, "Wire 4711") and invoice.paid_at
    event = AuditEvent.objects.get(change_type="invoice.marked_paid")
    assert (event.account, event.related_account, event.user) == (world.manager, world.managed, world.users["owner"])

    again = client.post(url, {"note": "twice"})
    assert again.status_code == 409 and "is paid: it cannot be marked paid" in text(again)
    void = client.post(
        reverse("issued_invoice_status", args=[world.manager.public_id, invoice.public_id, "void"]), {"reason": "x"}
    )
    assert void.status_code == 409
    invoice.refresh_from_db()
    assert (
        invoice.status == Invoice.Status.PAID
        and AuditEvent.objects.filter(change_type__in=["invoice.marked_paid", "invoice.voided"]).count() == 1
    )
    # The managed account sees it paid, from its own invoices.
    page = text(
        persona("managed_owner").get(reverse("invoice_detail", args=[world.managed.public_id, invoice.public_id]))
    )
    assert "Paid" in page and "Issued by Acme Reseller" in page and 'Amount due</th><td class="num">USD 0.00' in page


def test_voiding_needs_a_reason_and_an_unknown_action_is_not_found(march, persona):
    world = march
    invoice_party(account=world.manager, month=MARCH)
    invoice = Invoice.objects.get(issuer=world.manager, bill_to=world.sibling)
    client = persona("admin")
    void_url = reverse("issued_invoice_status", args=[world.manager.public_id, invoice.public_id, "void"])

    refused = client.post(void_url, {"reason": "  "})
    assert refused.status_code == 422 and "Give the reason" in text(refused)
    assert (
        client.get(
            reverse("issued_invoice_status", args=[world.manager.public_id, invoice.public_id, "refund"])
        ).status_code
        == 404
    )

    assert client.post(void_url, {"reason": "Duplicate of a manual invoice"}).status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.VOID and invoice.voided_at and invoice.status_note.startswith("Duplicate")


def test_the_state_rules_hold_in_the_service_too(march):
    world = march
    invoice_party(account=world.manager, month=MARCH)
    invoice = Invoice.objects.get(issuer=world.manager, bill_to=world.managed)
    actor = Actor(user=world.users["owner"])
    with pytest.raises(InvoiceStateError, match="reason"):
        invoice_services.void_invoice(invoice=invoice, reason="", actor=actor)
    invoice_services.void_invoice(invoice=invoice, reason="Wrong month", actor=actor)
    with pytest.raises(InvoiceStateError, match="is void"):
        invoice_services.mark_invoice_paid(invoice=invoice, note="", actor=actor)


def test_the_issued_invoice_page_and_pdf_show_the_issuer_the_markup_and_the_actions(march, persona):
    world = march
    invoice_services.set_resale_markup(
        manager=world.manager, markup_percent=Decimal("10"), actor=Actor(user=world.users["owner"])
    )
    invoice_party(account=world.manager, month=MARCH)
    invoice = Invoice.objects.get(issuer=world.manager, bill_to=world.sibling)
    client = persona("owner")

    page = text(client.get(reverse("issued_invoice_detail", args=[world.manager.public_id, invoice.public_id])))
    pdf = client.get(reverse("issued_invoice_pdf", args=[world.manager.public_id, invoice.public_id]))

    assert "Issued by Acme Reseller" in page and "10.00 % over your cost" in page
    assert "Mark paid…" in page and "Void…" in page and "Blue Harbor" in page
    assert "Check" not in page  # the self-check is for platform staff only
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")


def test_the_managed_account_never_sees_the_markup_or_another_accounts_invoice(march, persona):
    world = march
    invoice_party(account=world.manager, month=MARCH)
    own = Invoice.objects.get(issuer=world.manager, bill_to=world.managed)
    sibling = Invoice.objects.get(issuer=world.manager, bill_to=world.sibling)
    client = persona("managed_owner")

    page = text(client.get(reverse("invoice_detail", args=[world.managed.public_id, own.public_id])))
    assert "over your cost" not in page and "Mark paid" not in page
    assert client.get(reverse("invoice_detail", args=[world.managed.public_id, sibling.public_id])).status_code == 404
    assert (
        client.get(reverse("issued_invoice_detail", args=[world.manager.public_id, own.public_id])).status_code == 404
    )


# --- Reconciliation with the platform section ----------------------------------------------------------


def section_and_resale(manager: Account, account: Account, month: date = MARCH) -> tuple[list, Decimal, list, Decimal]:
    """(lines, total) of the account's section on the manager's platform invoice, and of its reseller
    invoice: lines as (description, amount) in position order."""
    platform = Invoice.objects.platform().get(bill_to=manager, period=month)
    section = list(platform.lines.filter(account=account).order_by("position").values_list("description", "amount"))
    resale = Invoice.objects.get(issuer=manager, bill_to=account, period=month)
    lines = list(resale.lines.order_by("position").values_list("description", "amount"))
    return section, sum((a for _, a in section), Decimal("0.00")), lines, resale.total


@pytest.fixture
def half_cents(world):
    """Sections whose lines round apart from their total. Alpine: 250.5 minutes at 0.01 = 2.505,
    1,001.25 messages at 0.004 = 4.005 and 301 MMS at 0.005 = 1.505: lines 2.51 + 4.01 + 1.51 = 8.03,
    the section 8.015 -> 8.02. Blue: 0.004 + 0.0035 = 0.0075: lines 0.00 + 0.00, the section 0.01."""
    Account.objects.update(created_at=LONG_AGO)
    usage(
        world.manager,
        (world.managed, "voice.outbound", "250.5"),
        (world.managed, "sms.outbound", "1001.25"),
        (world.managed, "mms.inbound", "301"),
        (world.sibling, "sms.outbound", "1"),
        (world.sibling, "voice.inbound", "1"),
    )
    return world


def test_at_no_markup_each_reseller_invoice_is_its_platform_section_to_the_cent(half_cents):
    world = half_cents
    invoice_party(account=world.manager, month=MARCH)

    alpine = section_and_resale(world.manager, world.managed)
    blue = section_and_resale(world.manager, world.sibling)

    assert alpine[1] == alpine[3] == Decimal("8.02") and alpine[2] == alpine[0]
    assert alpine[2][-1] == ("Rounding to the section total", Decimal("-0.01"))
    assert blue[1] == blue[3] == Decimal("0.01") and blue[2] == blue[0]
    assert blue[2][-1] == ("Rounding to the section total", Decimal("0.01"))


def test_a_markup_is_applied_once_to_the_section_total_and_rounded_once(half_cents):
    world = half_cents
    invoice_services.set_resale_markup(
        manager=world.manager, markup_percent=Decimal("10"), actor=Actor(user=world.users["owner"])
    )
    invoice_party(account=world.manager, month=MARCH)

    _, alpine_section, alpine, alpine_total = section_and_resale(world.manager, world.managed)
    _, blue_section, blue, blue_total = section_and_resale(world.manager, world.sibling)

    # 8.02 x 1.10 = 8.822 -> 8.82; the lines (by SKU) at the markup 1.6555, 4.4055, 2.7555 -> 8.83.
    assert (alpine_section, alpine_total) == (Decimal("8.02"), Decimal("8.82"))
    assert [amount for _, amount in alpine] == [Decimal("1.66"), Decimal("4.41"), Decimal("2.76"), Decimal("-0.01")]
    # 0.01 x 1.10 = 0.011 -> 0.01; the lines 0.0044 and 0.00385 -> 0.00 + 0.00.
    assert (blue_section, blue_total) == (Decimal("0.01"), Decimal("0.01"))
    assert [amount for _, amount in blue] == [Decimal("0.00"), Decimal("0.00"), Decimal("0.01")]
    for lines, total in ((alpine, alpine_total), (blue, blue_total)):
        assert sum(amount for _, amount in lines) == total
        assert [description for description, _ in lines].count("Rounding to the section total") == 1
    charges = Invoice.objects.filter(issuer=world.manager).values_list("charges", "total")
    assert sorted(charges) == [(blue_total, blue_total), (alpine_total, alpine_total)]


def test_the_pages_show_each_reseller_invoice_as_its_platform_section_with_no_rounding_line(half_cents, persona):
    """The stored rounding lines (Alpine -0.01, Blue +0.01) are shown inside the largest lines
    (billing.invoices.lines.shown_amounts): at 0 % the manager and the managed account see the
    reseller invoice line for line as the platform section, adding up to its total."""
    world = half_cents
    platform = invoice_party(account=world.manager, month=MARCH)
    platform_sections = {s["title"]: s for s in _sections(text(persona("owner").get(_detail(world.manager, platform))))}
    alpine = Invoice.objects.get(issuer=world.manager, bill_to=world.managed)
    blue = Invoice.objects.get(issuer=world.manager, bill_to=world.sibling)

    # Alpine's lines by SKU, stored 1.51 + 4.01 + 2.51 and -0.01: the cent comes off the 4.01.
    assert platform_sections["Alpine Voice"]["lines"] == [
        ("Inbound MMS (message)", "301", "USD 1.51"),
        ("Outbound SMS (message)", "1,001.25", "USD 4.00"),
        ("Outbound voice (minute)", "250.5", "USD 2.51"),
    ]
    pages = [
        (alpine, text(persona("owner").get(_issued(world.manager, alpine)))),
        (alpine, text(persona("managed_owner").get(_detail(world.managed, alpine)))),
        (blue, text(persona("owner").get(_issued(world.manager, blue)))),
    ]
    for invoice, page in pages:
        assert "Rounding" not in page
        [section] = _sections(page)
        assert section["lines"] == platform_sections[section["title"]]["lines"]
        assert section["subtotal"] == platform_sections[section["title"]]["subtotal"]
        assert sum(_usd(amount) for _, _, amount in section["lines"]) == _usd(section["subtotal"]) == invoice.total
    assert [_usd(s["subtotal"]) for s in platform_sections.values()] == [Decimal("8.02"), Decimal("0.01")]


def test_at_a_markup_the_lines_shown_add_up_to_the_reseller_invoice_total(half_cents, persona):
    world = half_cents
    invoice_services.set_resale_markup(
        manager=world.manager, markup_percent=Decimal("10"), actor=Actor(user=world.users["owner"])
    )
    invoice_party(account=world.manager, month=MARCH)
    alpine = Invoice.objects.get(issuer=world.manager, bill_to=world.managed)

    page = text(persona("managed_owner").get(_detail(world.managed, alpine)))

    # Stored 1.66 + 4.41 + 2.76 and a rounding line of -0.01 for a total of 8.82.
    [section] = _sections(page)
    assert [amount for _, _, amount in section["lines"]] == ["USD 1.66", "USD 4.40", "USD 2.76"]
    assert section["subtotal"] == "USD 8.82" and alpine.total == Decimal("8.82")
    assert "Rounding" not in page and "over your cost" not in page


def _detail(account: Account, invoice: Invoice) -> str:
    return reverse("invoice_detail", args=[account.public_id, invoice.public_id])


def _issued(manager: Account, invoice: Invoice) -> str:
    return reverse("issued_invoice_detail", args=[manager.public_id, invoice.public_id])
