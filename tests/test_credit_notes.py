"""Credit notes (issue 12 item 6, billing.invoices.credit_notes): a finalized invoice never changes; a
correction is a credit note against it, by platform staff for a platform invoice (admin site) and
by the manager's owner, admin or billing people for its reseller invoices (the reseller invoice's
page). By lines or one amount, never beyond what is left uncredited; a reason; gap-free numbers per
issuer; a PDF; a ledger credit for platform invoices, which the statement of the month it is
issued counts; audited on both logs; hidden pricing shows the amount and reason only.

The invoices are tests.test_invoice_pages' March 2025 invoices: the manager's platform invoice
(6.87), its reseller invoices to Alpine Voice (2.50: voice 2.50) and Blue Harbor (4.34: voice 0.33,
sms 4.01 as shown); and a standard account's own (12.00: voice 10.00, sms 2.00)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from accounts.actor import Actor
from accounts.audit import events_for_account
from accounts.audit_text import Reader, describe
from accounts.models import Account, AuditEvent
from billing.invoices import credit_notes
from billing.invoices.builder import invoice_party
from billing.invoices.credit_notes import CreditNoteRefused, CreditNoteStateError, issue_credit_note
from billing.invoices.services import void_invoice
from billing.models import Balance, CreditNote, Invoice, InvoiceSequence, LedgerEntry
from tests import test_invoice_pages
from tests.concurrency import together
from tests.factories import UserFactory, account_with_owner
from tests.mfa_support import force_login_with_mfa
from tests.test_invoice_pages import MARCH, at, usage
from tests.test_invoice_pdf import pdf_text

APRIL = date(2025, 4, 1)
manager_invoice = test_invoice_pages.manager_invoice  # the fixture: the manager's March invoice and its reseller ones
USD = Decimal


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def staff() -> Actor:
    return Actor.platform_staff(UserFactory(email="staff@platform.example.com", is_staff=True, is_superuser=True))


@pytest.fixture
def standard_invoice(world) -> Invoice:
    """world.standard's March invoice: voice 1000 minutes (10.00), sms 500 messages (2.00), 12.00."""
    usage(world.standard, (world.standard, "voice.outbound", "1000"), (world.standard, "sms.outbound", "500"))
    invoice = invoice_party(account=world.standard, month=MARCH)
    assert invoice.total == USD("12.00")
    return invoice


def resale_to(world, account: Account) -> Invoice:
    return Invoice.objects.get(issuer=world.manager, bill_to=account, period=MARCH)


def lines_of(invoice: Invoice) -> dict[str, credit_notes.CreditableLine]:
    return {row.line.description: row for row in credit_notes.creditable_lines(invoice)}


def balance(account: Account) -> Decimal:
    return Balance.objects.get(account=account).amount


# --- The service: amounts, lines, numbers, the ledger, the log ---------------------------------------


def test_staff_credit_a_platform_invoice_which_credits_the_balance_once(world, standard_invoice):
    actor = staff()
    before = balance(world.standard)

    note = issue_credit_note(invoice=standard_invoice, amount=USD("2.50"), reason="Outage on 3 March", actor=actor)

    assert (note.number, note.amount, note.reason, note.issuer) == (
        "CN-0000001",
        USD("2.50"),
        "Outage on 3 March",
        None,
    )
    entry = LedgerEntry.objects.get(account=world.standard, kind=LedgerEntry.Kind.CREDIT_NOTE)
    assert (entry.amount, entry.idempotency_key) == (USD("2.50"), f"credit_note:{note.public_id}")
    assert entry.description == f"Credit note CN-0000001 against invoice {standard_invoice.number}"
    assert note.ledger_entry == entry and balance(world.standard) == before + USD("2.50")
    standard_invoice.refresh_from_db()
    assert standard_invoice.total == USD("12.00") and standard_invoice.status == Invoice.Status.FINALIZED
    assert credit_notes.left_to_credit(standard_invoice) == USD("9.50")


def test_a_credit_note_is_audited_on_the_bill_to_naming_the_staff_member(world, standard_invoice):
    actor = staff()
    issue_credit_note(invoice=standard_invoice, amount=USD("1.00"), reason="Goodwill", actor=actor)

    event = AuditEvent.objects.get(change_type="credit_note.issued")
    assert (event.account, event.related_account, event.user) == (world.standard, None, actor.user)
    assert event.change_made_by == AuditEvent.MadeBy.PLATFORM and event.resource_id == str(standard_invoice.public_id)
    sentence = describe(event, Reader(log=world.standard, pages=world.standard))
    assert "issued credit note CN-0000001 of USD 1.00 against" in sentence and "&#x27;Goodwill&#x27;" in sentence
    assert standard_invoice.number in sentence


def test_a_reseller_credit_note_is_on_both_logs_naming_the_manager_person(world, manager_invoice):
    alpine = resale_to(world, world.managed)
    owner = world.users["owner"]

    note = issue_credit_note(invoice=alpine, amount=USD("0.50"), reason="Trial minutes", actor=Actor(user=owner))

    event = AuditEvent.objects.get(change_type="credit_note.issued")
    assert (event.account, event.related_account, event.user) == (world.manager, world.managed, owner)
    assert event in events_for_account(world.managed) and event in events_for_account(world.manager)
    assert note.ledger_entry is None  # paid to the manager outside the platform: no ledger movement
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CREDIT_NOTE).exists()


def test_numbers_are_gap_free_per_issuer_and_a_refusal_takes_none(world, manager_invoice, standard_invoice):
    actor = staff()
    owner = Actor(user=world.users["owner"])
    alpine, blue = resale_to(world, world.managed), resale_to(world, world.sibling)

    first = issue_credit_note(invoice=standard_invoice, amount=USD("1.00"), reason="a", actor=actor)
    with pytest.raises(CreditNoteRefused):
        issue_credit_note(invoice=standard_invoice, amount=USD("99.00"), reason="too much", actor=actor)
    second = issue_credit_note(invoice=manager_invoice, amount=USD("1.00"), reason="b", actor=actor)
    reseller = [
        issue_credit_note(invoice=alpine, amount=USD("0.10"), reason="c", actor=owner),
        issue_credit_note(invoice=blue, amount=USD("0.10"), reason="d", actor=owner),
    ]

    assert (first.number, second.number) == ("CN-0000001", "CN-0000002")
    assert [n.number for n in reseller] == ["CN-0000001", "CN-0000002"]  # the manager's own sequence
    assert InvoiceSequence.objects.get(issuer_key="platform:credit_note").last_number == 2
    assert InvoiceSequence.objects.get(issuer_key=f"account:{world.manager.pk}:credit_note").last_number == 2
    # The invoice sequences are untouched by credit notes.
    assert InvoiceSequence.objects.get(issuer_key="platform").last_number == 2


def test_beyond_what_is_left_is_refused_with_a_clear_message_and_changes_nothing(world, standard_invoice):
    actor = staff()
    issue_credit_note(invoice=standard_invoice, amount=USD("10.00"), reason="Outage", actor=actor)
    before = balance(world.standard)

    with pytest.raises(CreditNoteRefused) as refused:
        issue_credit_note(invoice=standard_invoice, amount=USD("2.01"), reason="More", actor=actor)

    assert refused.value.message == (
        f"Only USD 2.00 of invoice {standard_invoice.number} (USD 12.00) is left to credit, "
        "less than the USD 2.01 asked."
    )
    assert refused.value.field == "amount" and refused.value.status == 422
    assert CreditNote.objects.count() == 1 and balance(world.standard) == before
    issue_credit_note(invoice=standard_invoice, amount=USD("2.00"), reason="The rest", actor=actor)
    with pytest.raises(CreditNoteRefused, match="fully credited: nothing is left to credit"):
        issue_credit_note(invoice=standard_invoice, amount=USD("0.01"), reason="More", actor=actor)


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "greater than zero"),
        ("-1.00", "cannot be negative"),
        ("1.005", "at most two decimals"),
        ("NaN", "as a number"),
        ("Infinity", "as a number"),
        ("abc", "as a number"),
        ("", "as a number"),
    ],
)
def test_a_bad_amount_is_refused(world, standard_invoice, amount, message):
    with pytest.raises(CreditNoteRefused, match=message):
        issue_credit_note(invoice=standard_invoice, amount=amount, reason="x", actor=staff())
    assert not CreditNote.objects.exists()


def test_a_reason_is_required_and_a_void_or_unissued_invoice_cannot_be_credited(world, standard_invoice):
    actor = staff()
    with pytest.raises(CreditNoteRefused, match="Give the reason") as refused:
        issue_credit_note(invoice=standard_invoice, amount=USD("1.00"), reason="  \n ", actor=actor)
    assert refused.value.field == "reason"

    void_invoice(invoice=standard_invoice, reason="Billed in error", actor=actor)
    with pytest.raises(CreditNoteStateError, match="is void: a void invoice cannot be credited") as state:
        issue_credit_note(invoice=standard_invoice, amount=USD("1.00"), reason="x", actor=actor)
    assert state.value.status == 409
    assert not CreditNote.objects.exists() and not LedgerEntry.objects.filter(kind="credit_note").exists()


def test_a_paid_invoice_can_still_be_credited(world, standard_invoice):
    Invoice.objects.filter(pk=standard_invoice.pk).update(status=Invoice.Status.PAID)
    note = issue_credit_note(invoice=standard_invoice, amount=USD("1.00"), reason="Refund", actor=staff())
    assert note.amount == USD("1.00")


def test_by_lines_each_line_up_to_what_is_left_on_it_as_it_is_shown(world, manager_invoice):
    blue = resale_to(world, world.sibling)
    owner = Actor(user=world.users["owner"])
    rows = lines_of(blue)
    voice, sms = rows["Outbound voice (minute)"], rows["Outbound SMS (message)"]
    assert (voice.amount, sms.amount) == (USD("0.33"), USD("4.01"))  # the rounding cent is in the largest line

    note = issue_credit_note(
        invoice=blue, lines={voice.line.pk: "0.33", sms.line.pk: "1.00"}, reason="Wrong route", actor=owner
    )

    assert note.amount == USD("1.33") and note.by_lines
    assert [(line.description, line.amount) for line in note.lines.all()] == [
        ("Outbound SMS (message) (Blue Harbor)", USD("1.00")),
        ("Outbound voice (minute) (Blue Harbor)", USD("0.33")),
    ]  # in the invoice's order
    rows = lines_of(blue)
    assert (rows["Outbound voice (minute)"].left, rows["Outbound SMS (message)"].left) == (USD("0"), USD("3.01"))
    with pytest.raises(CreditNoteRefused, match=r"USD 0.00 is left to credit on this line") as refused:
        issue_credit_note(invoice=blue, lines={voice.line.pk: "0.01"}, reason="again", actor=owner)
    assert refused.value.field == f"line_{voice.line.pk}"
    # An amount note takes from the invoice's total, so a later line note meets the invoice's cap.
    issue_credit_note(invoice=blue, amount=USD("2.50"), reason="goodwill", actor=owner)
    with pytest.raises(CreditNoteRefused, match=r"Only USD 0.51 of invoice"):
        issue_credit_note(invoice=blue, lines={sms.line.pk: "1.00"}, reason="more", actor=owner)


def test_a_line_of_another_invoice_is_refused(world, manager_invoice, standard_invoice):
    other_line = next(iter(lines_of(standard_invoice).values())).line
    with pytest.raises(CreditNoteRefused, match="has no such line"):
        issue_credit_note(
            invoice=resale_to(world, world.managed), lines={other_line.pk: "0.01"}, reason="x", actor=staff()
        )


def test_a_repeated_key_issues_one_note(world, standard_invoice):
    actor = staff()
    first = issue_credit_note(invoice=standard_invoice, amount=USD("1.00"), reason="x", actor=actor, key="k-1")
    again = issue_credit_note(invoice=standard_invoice, amount=USD("1.00"), reason="x", actor=actor, key="k-1")
    assert first == again and CreditNote.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="credit_note").count() == 1


# --- The statement of the month it is issued ------------------------------------------------------


def test_the_ledger_credit_is_in_the_statement_of_the_month_it_is_issued(world, standard_invoice):
    with at(datetime(2025, 4, 10, 12, tzinfo=UTC)):
        issue_credit_note(invoice=standard_invoice, amount=USD("3.00"), reason="Outage", actor=staff())

    april = invoice_party(account=world.standard, month=APRIL)

    standard_invoice.refresh_from_db()
    assert standard_invoice.credits == USD("0.00")  # March's statement never changes
    assert april.opening_balance == standard_invoice.closing_balance
    assert april.credits == USD("3.00") and april.closing_balance == standard_invoice.closing_balance + USD("3.00")


# --- The manager's pages ----------------------------------------------------------------------------


def new_url(world, invoice: Invoice) -> str:
    return reverse("issued_credit_note_new", args=[world.manager.public_id, invoice.public_id])


def issued_url(world, invoice: Invoice) -> str:
    return reverse("issued_invoice_detail", args=[world.manager.public_id, invoice.public_id])


def form_data(client: Client, url: str, **values: str) -> dict[str, str]:
    page = client.get(url)
    assert page.status_code == 200
    key = re.search(r'name="key" value="([^"]+)"', page.content.decode()).group(1)
    return {"key": key, "mode": "amount", "reason": "Trial minutes", **values}


def test_the_manager_issues_a_credit_note_after_a_confirmation_step(world, persona, manager_invoice):
    alpine = resale_to(world, world.managed)
    client = persona("billing")
    detail = text(client.get(issued_url(world, alpine)))
    assert new_url(world, alpine) in detail and "No credit notes against this invoice." in detail
    data = form_data(client, new_url(world, alpine), amount="1.25")

    confirm = client.post(new_url(world, alpine), data)

    assert confirm.status_code == 200 and not CreditNote.objects.exists()
    page = text(confirm)
    assert "Credit USD 1.25 against invoice" in page and "Trial minutes" in page and "USD 1.25" in page
    assert "Left to credit after</dt><dd>USD 1.25" in page
    done = client.post(new_url(world, alpine), {**data, "confirm": "1"})
    assert done.status_code == 302 and done["Location"] == issued_url(world, alpine)
    again = client.post(new_url(world, alpine), {**data, "confirm": "1"})  # the same form, submitted twice
    assert again.status_code == 302 and CreditNote.objects.count() == 1
    note = CreditNote.objects.get()
    assert (note.number, note.amount, note.created_by) == ("CN-0000001", USD("1.25"), world.users["billing"])
    shown = text(client.get(issued_url(world, alpine)))
    assert "CN-0000001" in shown and "Trial minutes" in shown
    assert "Credited so far</dt><dd>USD 1.25" in shown and "Left to credit</dt><dd>USD 1.25" in shown
    assert "Amount due after credit notes</dt><dd><strong>USD 1.25" in shown
    listed = text(client.get(reverse("resale_invoices", args=[world.manager.public_id])))
    assert "> Credited </th>" in listed and "USD 1.25" in listed


def test_the_form_refuses_beyond_the_total_and_shows_why(world, persona, manager_invoice):
    alpine = resale_to(world, world.managed)
    client = persona("owner")
    data = form_data(client, new_url(world, alpine), amount="2.51")

    refused = client.post(new_url(world, alpine), data)

    assert refused.status_code == 422
    assert f"Only USD 2.50 of invoice {alpine.number} (USD 2.50) is left to credit" in text(refused)
    assert client.post(new_url(world, alpine), {**data, "confirm": "1"}).status_code == 422
    assert not CreditNote.objects.exists()


def test_the_form_credits_by_lines(world, persona, manager_invoice):
    blue = resale_to(world, world.sibling)
    sms = lines_of(blue)["Outbound SMS (message)"]
    client = persona("admin")
    data = form_data(client, new_url(world, blue), mode="lines", **{sms.field: "4.01"})

    confirm = client.post(new_url(world, blue), data)
    assert confirm.status_code == 200 and "Outbound SMS (message) (Blue Harbor): USD 4.01" in text(confirm)
    too_much = client.post(new_url(world, blue), {**data, sms.field: "4.02"})
    assert too_much.status_code == 422 and "USD 4.01 is left to credit on this line" in text(too_much)
    assert client.post(new_url(world, blue), {**data, "confirm": "1"}).status_code == 302
    assert CreditNote.objects.get().lines.get().amount == USD("4.01")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"amount": ""}, "Enter the amount to credit."),
        ({"amount": "-1"}, "An amount cannot be negative."),
        ({"amount": "1.001"}, "Use at most 2 decimal places"),
        ({"amount": "abc"}, "Enter an amount such as 12.50."),
        ({"amount": "1", "reason": " "}, "Give the reason for the credit note."),
        ({"amount": "1", "mode": "everything"}, "Choose one amount or lines."),
        ({"mode": "lines"}, "Enter an amount on at least one line."),
        ({"amount": "1", "key": "not-a-key"}, "Reload the page and try again."),
    ],
)
def test_the_form_refuses_bad_input(world, persona, manager_invoice, values, message):
    alpine = resale_to(world, world.managed)
    client = persona("owner")
    data = form_data(client, new_url(world, alpine))
    response = client.post(new_url(world, alpine), {**data, **values, "confirm": "1"})
    assert response.status_code == 422 and message in response.content.decode()
    assert not CreditNote.objects.exists()


def test_a_void_reseller_invoice_offers_no_credit_note(world, persona, manager_invoice):
    alpine = resale_to(world, world.managed)
    void_invoice(invoice=alpine, reason="Never sent", actor=Actor(user=world.users["owner"]))
    client = persona("owner")
    assert new_url(world, alpine) not in text(client.get(issued_url(world, alpine)))
    page = client.get(new_url(world, alpine))
    assert "a void invoice cannot be credited" in text(page)
    data = {"key": "4b1f5a39-8f3e-4c1b-9d55-3b5d7f0f2f11", "mode": "amount", "amount": "1", "reason": "x"}
    refused = client.post(new_url(world, alpine), {**data, "confirm": "1"})
    assert refused.status_code == 409 and "a void invoice cannot be credited" in text(refused)


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("anonymous", 302),
        ("reporting", 404),
        ("managed_owner", 404),
        ("manager_acting", 404),
        ("standard_owner", 404),
        ("other_tenant", 404),
    ],
)
def test_only_the_managers_billing_people_reach_the_form(world, persona, manager_invoice, name, status):
    alpine = resale_to(world, world.managed)
    client = persona(name)
    assert client.get(new_url(world, alpine)).status_code in {status, 403}
    response = client.post(new_url(world, alpine), {"mode": "amount", "amount": "1", "reason": "x", "confirm": "1"})
    assert response.status_code in {status, 403}
    assert not CreditNote.objects.exists()


# --- What the bill-to sees -----------------------------------------------------------------------------


def test_the_bill_to_sees_the_credit_note_on_its_invoice_and_downloads_its_pdf(world, persona, manager_invoice):
    blue = resale_to(world, world.sibling)
    sms = lines_of(blue)["Outbound SMS (message)"]
    note = issue_credit_note(
        invoice=blue, lines={sms.line.pk: "1.50"}, reason="Wrong route", actor=Actor(user=world.users["owner"])
    )
    client = Client()
    client.force_login(world.users["sibling_owner"])

    page = text(client.get(reverse("invoice_detail", args=[world.sibling.public_id, blue.public_id])))
    assert "CN-0000001" in page and "Wrong route" in page and "Credited so far</dt><dd>USD 1.50" in page
    assert "Outbound SMS (message) (Blue Harbor): USD 1.50" in page
    assert "Issue credit note" not in page
    pdf = client.get(reverse("credit_note_pdf", args=[world.sibling.public_id, blue.public_id, note.public_id]))
    assert pdf.status_code == 200 and pdf["Content-Disposition"] == 'attachment; filename="CN-0000001.pdf"'
    printed, _ = pdf_text(pdf.content)
    assert "Credit note CN-0000001" in printed and "Wrong route" in printed and blue.number in printed
    assert "USD 1.50" in printed and "Left to credit USD 2.84" in printed and "Acme Reseller" in printed
    # Another account's URL for it is a 404.
    other = reverse("credit_note_pdf", args=[world.managed.public_id, blue.public_id, note.public_id])
    assert persona("managed_owner").get(other).status_code == 404


def test_hidden_pricing_shows_the_amount_and_reason_never_a_line_amount(world, persona, manager_invoice):
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)
    alpine = resale_to(world, world.managed)
    voice = lines_of(alpine)["Outbound voice (minute)"]
    note = issue_credit_note(
        invoice=alpine, lines={voice.line.pk: "0.75"}, reason="Dropped calls", actor=Actor(user=world.users["owner"])
    )
    for who in ("managed_owner", "manager_acting"):
        client = persona(who)
        page = text(client.get(reverse("invoice_detail", args=[world.managed.public_id, alpine.public_id])))
        assert "CN-0000001" in page and "Dropped calls" in page and "USD 0.75" in page, who
        assert "Outbound voice (minute) (Alpine Voice): USD 0.75" not in page, who
        url = reverse("credit_note_pdf", args=[world.managed.public_id, alpine.public_id, note.public_id])
        printed, _ = pdf_text(client.get(url).content)
        assert "Dropped calls" in printed and "Amount credited USD 0.75" in printed, who
        assert "Lines credited" not in printed and "Outbound voice" not in printed, who
    # The manager's own copy is priced.
    manager_pdf = persona("owner").get(
        reverse("issued_credit_note_pdf", args=[world.manager.public_id, alpine.public_id, note.public_id])
    )
    assert "Lines credited" in pdf_text(manager_pdf.content)[0]


def test_the_managers_status_notes_stay_the_managers(world, persona, manager_invoice):
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)
    alpine = resale_to(world, world.managed)
    Invoice.objects.filter(pk=alpine.pk).update(status_note="Internal: chase in May")
    issue_credit_note(invoice=alpine, amount=USD("0.10"), reason="Goodwill", actor=Actor(user=world.users["owner"]))
    page = text(
        persona("managed_owner").get(reverse("invoice_detail", args=[world.managed.public_id, alpine.public_id]))
    )
    assert "Goodwill" in page and "chase in May" not in page


# --- Platform staff in the admin ----------------------------------------------------------------------


@pytest.fixture
def staff_client(db):
    superuser = UserFactory(email="staff@platform.example.com", is_staff=True, is_superuser=True)
    client = Client()
    force_login_with_mfa(client, superuser)
    return client, superuser


def test_staff_issue_a_credit_note_from_the_admin_after_confirming(world, staff_client, standard_invoice):
    client, superuser = staff_client
    url = reverse("admin:billing_invoice_credit_note", args=[standard_invoice.pk])
    change = text(client.get(reverse("admin:billing_invoice_change", args=[standard_invoice.pk])))
    assert url in change and "USD 12.00 left to credit" in change
    form = client.get(url)
    key = re.search(r'name="key" value="([^"]+)"', form.content.decode()).group(1)
    data = {"key": key, "mode": "amount", "amount": "4.00", "reason": "SLA credit"}

    confirm = client.post(url, data)
    assert confirm.status_code == 200 and "Credit USD 4.00 against invoice" in text(confirm)
    assert not CreditNote.objects.exists()
    too_much = client.post(url, {**data, "amount": "12.01"})
    assert too_much.status_code == 422 and "is left to credit" in text(too_much)
    done = client.post(url, {**data, "confirm": "1"})

    assert done.status_code == 302
    note = CreditNote.objects.get()
    assert (note.number, note.amount, note.created_by) == ("CN-0000001", USD("4.00"), superuser)
    event = AuditEvent.objects.get(change_type="credit_note.issued")
    assert (event.account, event.user, event.change_made_by) == (world.standard, superuser, "platform")
    detail = reverse("invoice_detail", args=[world.standard.public_id, standard_invoice.public_id])
    page = text(_owner_client(world).get(detail))
    assert "CN-0000001" in page and "SLA credit" in page and "Credited to the balance" in page


def _owner_client(world) -> Client:
    client = Client()
    client.force_login(world.users["standard_owner"])
    return client


def test_staff_do_not_credit_a_reseller_invoice_from_the_admin(world, staff_client, manager_invoice):
    client, _ = staff_client
    alpine = resale_to(world, world.managed)
    assert client.get(reverse("admin:billing_invoice_credit_note", args=[alpine.pk])).status_code == 404


def test_people_who_are_not_staff_cannot_open_the_admin_page(world, persona, standard_invoice):
    url = reverse("admin:billing_invoice_credit_note", args=[standard_invoice.pk])
    assert persona("owner").get(url).status_code == 302
    assert not CreditNote.objects.exists()


# --- The property ------------------------------------------------------------------------------------------


class CreditNoteSumProperty(HypothesisTestCase):
    """For any sequence of credit-note amounts against one invoice: the sum credited never exceeds
    the total, each one accepted adds exactly its amount (to the notes and the balance), and each one
    refused changes nothing (no note, no number, no ledger entry)."""

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        total=st.decimals(min_value="0.01", max_value="500.00", places=2),
        amounts=st.lists(st.decimals(min_value="-5.00", max_value="300.00", places=2), min_size=1, max_size=8),
    )
    def test_the_sum_credited_never_exceeds_the_total(self, total: Decimal, amounts: list[Decimal]) -> None:
        account, _ = account_with_owner(name="Property Standard")
        Balance.objects.create(account=account)
        invoice = Invoice.objects.create(
            bill_to=account, period=MARCH, number="MC-9999999", status=Invoice.Status.FINALIZED, total=total
        )
        actor = Actor.platform_staff()
        for amount in amounts:
            before = (CreditNote.objects.count(), balance(account), _last("platform:credit_note"))
            try:
                issue_credit_note(invoice=invoice, amount=amount, reason="property", actor=actor)
            except CreditNoteRefused:
                assert (CreditNote.objects.count(), balance(account), _last("platform:credit_note")) == before
                assert amount <= 0 or amount > total - credit_notes.credited_total(invoice)
            else:
                assert balance(account) == before[1] + amount and _last("platform:credit_note") == before[2] + 1
            assert credit_notes.credited_total(invoice) <= total
        assert credit_notes.credited_total(invoice) == balance(account)


def _last(key: str) -> int:
    sequence = InvoiceSequence.objects.filter(issuer_key=key).first()
    return sequence.last_number if sequence else 0


# --- Two at once, on PostgreSQL ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_two_credit_notes_at_once_never_exceed_the_total(transactional_db):
    """Each asks 7.00 of a 10.00 invoice at the same moment: the invoice row's lock queues the second
    behind the first, which then sees only 3.00 left and is refused; one number is taken."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no row locks: the race is PostgreSQL's")
    account, _ = account_with_owner(name="Race Standard")
    Balance.objects.create(account=account)
    invoice = Invoice.objects.create(
        bill_to=account, period=MARCH, number="MC-0000001", status=Invoice.Status.FINALIZED, total=USD("10.00")
    )
    actor = Actor.platform_staff()
    issued: list[CreditNote] = []

    def work(n: int) -> None:
        issued.append(issue_credit_note(invoice=invoice, amount=USD("7.00"), reason=f"race {n}", actor=actor))

    failures = together(work)

    assert len(issued) == 1 and len(failures) == 1 and isinstance(failures[0], CreditNoteRefused)
    assert "Only USD 3.00 of invoice MC-0000001" in failures[0].message
    assert credit_notes.credited_total(invoice) == USD("7.00") == balance(account)
    assert _last("platform:credit_note") == 1 and issued[0].number == "CN-0000001"


@pytest.mark.postgres
def test_many_small_credit_notes_at_once_add_up_to_the_total_at_most(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no row locks: the race is PostgreSQL's")
    account, _ = account_with_owner(name="Race Standard")
    Balance.objects.create(account=account)
    invoice = Invoice.objects.create(
        bill_to=account, period=MARCH, number="MC-0000001", status=Invoice.Status.FINALIZED, total=USD("10.00")
    )

    failures = together(
        lambda n: issue_credit_note(invoice=invoice, amount=USD("3.00"), reason="race", actor=Actor.platform_staff()),
        count=5,
    )

    assert len(failures) == 2 and all(isinstance(f, CreditNoteRefused) for f in failures)
    assert credit_notes.credited_total(invoice) == USD("9.00") == balance(account)
    numbers = sorted(CreditNote.objects.values_list("number", flat=True))
    assert numbers == ["CN-0000001", "CN-0000002", "CN-0000003"]  # gap-free
