"""Credit notes (DESIGN section 5, issue 12 item 6): a finalized invoice never changes; a correction
is a credit note against it. Platform staff credit the platform's invoices; a manager's people
(owner, admin, billing) credit the reseller invoices it issued.

The rules, all held by `issue_credit_note`, under the invoice row's lock so that two credit notes
at once queue and the second sees the first:
- by lines (an amount per line, at most what is left uncredited on that line, as the line is shown)
  or one amount; either way at most what is left uncredited on the invoice (`left_to_credit`);
- a reason; never against a void invoice (nor a draft, which nobody sees);
- a number from the issuer's own gap-free credit-note sequence (`credit_note_issuer_key`, drawn in
  the same transaction as the invoice numbers are: billing.invoices.lines.next_numbers);
- on a platform invoice, a ledger credit of the amount to the bill-to's balance (kind
  `credit_note`, key `credit_note:<public id>`), which the statement of the month it is issued
  counts among that month's credits (billing.invoices.lines.statements); a reseller invoice is paid
  to the manager outside the ledger, so its credit note is shown on the invoice and its list only;
- audited in the same transaction: on the bill-to's log for a platform invoice, on the manager's
  with the bill-to as related account for a reseller invoice (both logs show it).

Hidden pricing (accounts.permissions.can_see_pricing of the bill-to) shows a credit note's amount
and reason only, never its per-line amounts (`credit_note_view`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import DecimalField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from accounts import audit
from accounts.actor import Actor
from accounts.errors import Refusal
from accounts.locks import lock_row
from accounts.models import Account
from billing.invoices.lines import next_numbers, shown_amounts
from billing.invoices.selectors import invoice_layout
from billing.ledger import services as ledger
from billing.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine, LedgerEntry
from billing.money import format_money, to_cents

ZERO = Decimal("0.00")
PREFIX = "CN"
CREDITABLE = (Invoice.Status.FINALIZED, Invoice.Status.PAID)


class CreditNoteRefused(Refusal):
    """A credit note the rules refuse: no reason, a bad amount, more than is left to credit."""


class CreditNoteStateError(CreditNoteRefused):
    """The invoice's state allows no credit note (void): a conflict with the state, a 409."""

    status = 409
    code = "invalid_state"
    title = "Invalid state"


def credit_note_issuer_key(invoice: Invoice) -> str:
    """The credit-note sequence of the invoice's issuer, apart from its invoice sequence."""
    return "platform:credit_note" if invoice.issuer_id is None else f"account:{invoice.issuer_id}:credit_note"


# --- Reads -----------------------------------------------------------------------------------------------


def credit_notes_of(invoice: Invoice) -> QuerySet[CreditNote]:
    """The invoice's credit notes, oldest first, with their lines."""
    return (
        CreditNote.objects.filter(invoice=invoice)
        .select_related("created_by")
        .prefetch_related("lines")
        .order_by("created_at", "id")
    )


def credited_total(invoice: Invoice) -> Decimal:
    total = CreditNote.objects.filter(invoice=invoice).aggregate(total=Sum("amount"))["total"]
    return total if total is not None else ZERO


def left_to_credit(invoice: Invoice) -> Decimal:
    return max(ZERO, invoice.total - credited_total(invoice))


def with_credited(invoices: QuerySet[Invoice]) -> QuerySet[Invoice]:
    """`invoices`, each with `credited`: what its credit notes add up to (one subquery, no join)."""
    sums = CreditNote.objects.filter(invoice=OuterRef("pk")).order_by().values("invoice").annotate(total=Sum("amount"))
    money = DecimalField(max_digits=20, decimal_places=2)
    return invoices.annotate(credited=Coalesce(Subquery(sums.values("total"), output_field=money), Value(ZERO)))


def can_be_credited(invoice: Invoice) -> bool:
    return invoice.status in CREDITABLE and invoice.total > 0


@dataclass(frozen=True)
class CreditableLine:
    """One usage line of the invoice as shown (its rounding spread, billing.invoices.lines.shown_amounts),
    what its credit notes took from it, and what is left."""

    line: InvoiceLine
    section: str
    amount: Decimal
    credited: Decimal

    @property
    def left(self) -> Decimal:
        return max(ZERO, self.amount - self.credited)

    @property
    def field(self) -> str:
        return f"line_{self.line.pk}"


def creditable_lines(invoice: Invoice) -> list[CreditableLine]:
    """The invoice's usage lines in its order, each at the amount its page and PDF show."""
    credited = dict(
        CreditNoteLine.objects.filter(credit_note__invoice=invoice)
        .values("invoice_line")
        .annotate(total=Sum("amount"))
        .values_list("invoice_line", "total")
        .order_by()
    )
    rows = []
    for section in invoice_layout(invoice).sections:
        lines = [line for line in section.lines if line.product_id is not None]
        rounding = sum((line.amount for line in section.lines if line.product_id is None), ZERO)
        for line, amount in zip(lines, shown_amounts([line.amount for line in lines], rounding), strict=True):
            rows.append(CreditableLine(line, section.name, amount, credited.get(line.pk, ZERO)))
    return rows


@dataclass(frozen=True)
class CreditNoteLineView:
    description: str
    amount: str


@dataclass(frozen=True)
class CreditNoteView:
    """A credit note as a reader sees it: with pricing hidden, the amount and reason only."""

    note: CreditNote
    number: str
    amount: str
    reason: str
    lines: list[CreditNoteLineView]
    ledger_credit: bool


def credit_note_view(note: CreditNote, *, pricing: bool) -> CreditNoteView:
    lines = [
        CreditNoteLineView(line.description, format_money(line.amount, note.currency)) for line in note.lines.all()
    ]
    return CreditNoteView(
        note=note,
        number=note.number,
        amount=format_money(note.amount, note.currency),
        reason=note.reason,
        lines=lines if pricing else [],
        ledger_credit=note.ledger_entry_id is not None,
    )


@dataclass(frozen=True)
class CreditSummary:
    notes: list[CreditNoteView]
    credited: str
    left: str
    creditable: bool  # the invoice's state and what is left allow another credit note
    amount_due: str | None  # a reseller invoice still to be paid: its total less what was credited


def credit_summary(invoice: Invoice, *, pricing: bool) -> CreditSummary:
    """What the invoice page shows of its credit notes: each one, credited so far, left to credit."""
    notes = list(credit_notes_of(invoice))
    credited = sum((note.amount for note in notes), ZERO)
    left = max(ZERO, invoice.total - credited)
    due = None
    if invoice.issuer_id is not None and invoice.status == Invoice.Status.FINALIZED and notes:
        due = format_money(left, invoice.currency)
    return CreditSummary(
        notes=[credit_note_view(note, pricing=pricing) for note in notes],
        credited=format_money(credited, invoice.currency),
        left=format_money(left, invoice.currency),
        creditable=can_be_credited(invoice) and left > 0,
        amount_due=due,
    )


# --- The write -------------------------------------------------------------------------------------------


def _cents(value: Decimal | str | None, *, field: str, what: str) -> Decimal:
    try:
        amount = Decimal(str(value)) if value is not None and str(value).strip() != "" else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise CreditNoteRefused(f"Give {what} as a number, such as 12.50.", field=field)
    if amount != to_cents(amount):
        raise CreditNoteRefused(f"Give {what} in cents, with at most two decimals.", field=field)
    if amount < 0:
        raise CreditNoteRefused(f"{what.capitalize()} cannot be negative.", field=field)
    return to_cents(amount)


def _line_credits(invoice: Invoice, lines: Mapping[int, Decimal | str]) -> list[tuple[CreditableLine, Decimal]]:
    """The lines credited, each checked against what is left on it; lines credited 0 are left out."""
    by_pk = {row.line.pk: row for row in creditable_lines(invoice)}
    credits = []
    for pk, value in lines.items():
        row = by_pk.get(pk)
        if row is None:
            raise CreditNoteRefused(f"Invoice {invoice.number} has no such line to credit.")
        amount = _cents(value, field=row.field, what="the amount to credit on a line")
        if amount > row.left:
            currency = invoice.currency
            raise CreditNoteRefused(
                f"{row.line.description} ({row.section}): {format_money(row.left, currency)} is left to credit on "
                f"this line, less than the {format_money(amount, currency)} asked.",
                field=row.field,
            )
        if amount > 0:
            credits.append((row, amount))
    return sorted(credits, key=lambda credit: credit[0].line.position)


@dataclass(frozen=True)
class Asked:
    """A credit note the rules allow, before it is written."""

    total: Decimal
    credits: list[tuple[CreditableLine, Decimal]]
    left: Decimal  # left to credit on the invoice before this note
    reason: str


def check_credit_note(
    *,
    invoice: Invoice,
    reason: str,
    amount: Decimal | str | None = None,
    lines: Mapping[int, Decimal | str] | None = None,
) -> Asked:
    """Every rule of a credit note, without writing it: the confirmation step asks it before showing
    what will be credited, and `issue_credit_note` again under the invoice's lock."""
    _check_state(invoice)
    reason = " ".join(reason.split())
    if not reason:
        raise CreditNoteRefused("Give the reason for the credit note: it is printed on it.", field="reason")
    if len(reason) > 255:
        raise CreditNoteRefused("Keep the reason to 255 characters.", field="reason")
    if (amount is None) == (lines is None):
        raise CreditNoteRefused("Credit either an amount or some of the invoice's lines.", field="amount")
    credits = _line_credits(invoice, lines) if lines is not None else []
    total = (
        sum((credited for _, credited in credits), ZERO)
        if lines is not None
        else _cents(amount, field="amount", what="the amount to credit")
    )
    if total <= 0:
        raise CreditNoteRefused("Give an amount to credit greater than zero.", field="amount")
    left = max(ZERO, invoice.total - credited_total(invoice))
    if total > left:
        raise CreditNoteRefused(_beyond(invoice, total, left), field="amount")
    return Asked(total=total, credits=credits, left=left, reason=reason)


@transaction.atomic
def issue_credit_note(
    *,
    invoice: Invoice,
    reason: str,
    actor: Actor,
    amount: Decimal | str | None = None,
    lines: Mapping[int, Decimal | str] | None = None,
    key: str | None = None,
) -> CreditNote:
    """A credit note against `invoice`, of `amount` or by `lines` ({invoice line pk: amount}), with
    `reason`. A repeated `key` (the form's) returns the note it issued, changing nothing."""
    # The invoice row alone (no join: FOR UPDATE would lock the accounts too); two notes at once queue here.
    invoice = lock_row(Invoice.objects, pk=invoice.pk)
    if key and len(key) > 64:
        raise CreditNoteRefused("An idempotency key is at most 64 characters.", field="key")
    if key:
        done = CreditNote.objects.filter(invoice=invoice, idempotency_key=key).first()
        if done is not None:
            return done
    asked = check_credit_note(invoice=invoice, reason=reason, amount=amount, lines=lines)
    total, credits, left, reason = asked.total, asked.credits, asked.left, asked.reason
    note = CreditNote.objects.create(
        invoice=invoice,
        issuer=invoice.issuer,
        number=next_numbers(credit_note_issuer_key(invoice), 1, prefix=PREFIX)[0],
        amount=total,
        currency=invoice.currency,
        reason=reason,
        by_lines=lines is not None,
        idempotency_key=key or None,
        created_by=actor.user,
    )
    CreditNoteLine.objects.bulk_create(
        CreditNoteLine(
            credit_note=note, invoice_line=row.line, description=_line_label(row), amount=credited, position=n
        )
        for n, (row, credited) in enumerate(credits, start=1)
    )
    if invoice.issuer_id is None:
        _credit_balance(note, invoice, actor)
    _audit(note, invoice, left - total, actor)
    return note


def _check_state(invoice: Invoice) -> None:
    if invoice.status == Invoice.Status.VOID:
        raise CreditNoteStateError(f"Invoice {invoice.number} is void: a void invoice cannot be credited.")
    if invoice.status not in CREDITABLE:
        raise CreditNoteStateError(f"Invoice {invoice.number or '(draft)'} is not issued: it cannot be credited.")


def _beyond(invoice: Invoice, asked: Decimal, left: Decimal) -> str:
    currency = invoice.currency
    if invoice.total <= 0:
        return f"Invoice {invoice.number} is for {format_money(invoice.total, currency)}: there is nothing to credit."
    if left <= 0:
        return f"Invoice {invoice.number} is fully credited: nothing is left to credit."
    return (
        f"Only {format_money(left, currency)} of invoice {invoice.number} ({format_money(invoice.total, currency)}) "
        f"is left to credit, less than the {format_money(asked, currency)} asked."
    )


def _line_label(row: CreditableLine) -> str:
    return f"{row.line.description} ({row.section})"[:255]


def _credit_balance(note: CreditNote, invoice: Invoice, actor: Actor) -> None:
    posted = ledger.post_entry(
        account=invoice.bill_to,
        kind=LedgerEntry.Kind.CREDIT_NOTE,
        amount=note.amount,
        key=str(note.public_id),
        description=f"Credit note {note.number} against invoice {invoice.number}",
        allow_overdraft=True,
        actor=actor,
    )
    note.ledger_entry = posted.entry
    note.save(update_fields=["ledger_entry"])


def _audit(note: CreditNote, invoice: Invoice, left: Decimal, actor: Actor) -> None:
    """One event, about the invoice: on the bill-to (platform invoice) or on the manager naming the
    bill-to (reseller invoice), so both logs show it. Totals only, no per-line amount."""
    account: Account = invoice.issuer if invoice.issuer is not None else invoice.bill_to
    audit.record(
        account=account,
        related_account=invoice.bill_to if invoice.issuer_id else None,
        change_type=audit.ChangeType.CREDIT_NOTE_ISSUED,
        resource=invoice,
        changes=[
            {"field": "credit_note", "from": None, "to": note.number},
            {"field": "amount", "from": None, "to": str(note.amount)},
            {"field": "reason", "from": None, "to": note.reason},
            {"field": "left_to_credit", "from": str(left + note.amount), "to": str(left)},
        ],
        actor=actor,
    )
