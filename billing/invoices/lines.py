"""The parts every invoice is made of, in one place for the platform's and the reseller's invoices:
the month's usage rows, a section's lines and its rounding, the statement figures, and the
gap-free numbers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.db.models import F, Q, Sum
from django.utils import timezone

from accounts import billing_profile as profiles
from accounts.models import Account
from billing import periods
from billing.models import (
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    LedgerEntry,
    MonthlyUsage,
    Product,
)
from billing.money import CENT, to_cents

PLATFORM_ISSUER = "platform"


def usage_rows(account_ids: list[int], month: date) -> dict[int, list[tuple[int, Decimal, Decimal]]]:
    """The month's usage of the accounts, {account id: [(product id, quantity, exact cost)]}, from
    one grouped query over the monthly totals."""
    rows = (
        MonthlyUsage.objects.filter(account_id__in=account_ids, month=month)
        .values("account_id", "product_id")
        .annotate(quantity=Sum("quantity"), cost=Sum("cost"))
        .values_list("account_id", "product_id", "quantity", "cost")
        .order_by()
    )
    by_account: dict[int, list[tuple[int, Decimal, Decimal]]] = defaultdict(list)
    for account_id, product_id, quantity, cost in rows:
        by_account[account_id].append((product_id, quantity, cost))
    return by_account


def section_lines(
    account_id: int,
    name: str,
    rows: list[tuple[int, Decimal, Decimal]],
    products: dict[int, Product],
    position: int,
    *,
    markup: Decimal | None = None,
) -> tuple[list[InvoiceLine], Decimal]:
    """One section of an invoice as `section_amounts` decides it: a line per product (by SKU) and
    at most one rounding line, on a platform invoice (no `markup`) at the platform's price, on a
    reseller invoice at the manager's. Returns the lines (positions after `position`, no invoice
    yet) and the section total."""
    ordered = sorted(rows, key=lambda r: products[r[0]].sku)
    amounts = section_amounts([cost for _, _, cost in ordered], markup)
    lines = []
    for (product_id, quantity, _), amount in zip(ordered, amounts.lines, strict=True):
        product = products[product_id]
        position += 1
        lines.append(
            InvoiceLine(
                account_id=account_id,
                account_name=name,
                product=product,
                position=position,
                description=f"{product.name} ({product.unit})",
                quantity=quantity,
                amount=amount,
            )
        )
    if amounts.rounding:
        lines.append(
            InvoiceLine(
                account_id=account_id,
                account_name=name,
                position=position + 1,
                description=ROUNDING_LINE,
                amount=amounts.rounding,
            )
        )
    return lines, amounts.total


ROUNDING_LINE = "Rounding to the section total"


class SectionAmounts(NamedTuple):
    lines: list[Decimal]
    rounding: Decimal
    total: Decimal


def markup_factor(markup_percent: Decimal | None) -> Decimal:
    """What the platform's price is multiplied by at the manager's resale price (1 without a markup)."""
    return 1 + (markup_percent or Decimal(0)) / 100


def section_amounts(costs: Sequence[Decimal], markup_percent: Decimal | None = None) -> SectionAmounts:
    """The rule of every invoice section, platform and reseller alike, from the exact rated costs of
    its lines (one per product). The platform section's total is its exact cost rounded once,
    `to_cents(sum(costs))`, which is what the ledger charged for the account and month; a reseller
    invoice's total is that section total with the markup applied once and rounded once,
    `to_cents(section_total * factor)`. Each line is its own exact cost at the price, rounded once,
    `to_cents(cost * factor)`; when those do not add up to the total, one rounding line takes the
    difference (a cent or a few, either sign). A rounding line, not an allocation of the cents over
    the lines, so that every line reads as quantity x price and at 0 % a reseller invoice is its
    platform section line for line. The PostgreSQL twin is `billing.invoices.sql.SECTIONS_SQL`,
    which both of its builders (platform sections, reseller invoices) read."""
    factor = markup_factor(markup_percent)
    lines = [to_cents(cost * factor) for cost in costs]
    total = to_cents(to_cents(sum(costs, Decimal(0))) * factor)
    return SectionAmounts(lines, total - sum(lines, Decimal("0.00")), total)


def shown_amounts(amounts: Sequence[Decimal], rounding: Decimal) -> list[Decimal]:
    """How a section's product lines are shown to the payer (page and PDF, platform sections and
    reseller invoices alike), presentation only: the section's stored rounding line (`rounding`, the
    line without a product, a cent or a few) is not shown; its cents are spread a cent at a time
    over the largest lines, ties to the first by position, so the lines shown add up to the stored
    section total, which is what the ledger charged. Taking cents back, a line with less than a
    cent is passed over while another has one to give, so no usage line reads negative; a rounding
    of more cents than there are lines (only at a high markup) goes round again. At 0 % markup the
    rounding is at most half a cent per line and enough lines have a cent to give, so each line
    moves by a cent at most, and a reseller invoice shows its platform section line for line.

    A line shown is therefore not checkable against quantity x rate; invoices show no unit price
    anyway (a rate can change mid-month). The stored lines and totals never change
    (`section_amounts`)."""
    cents = rounding / CENT
    if cents != cents.to_integral_value():
        raise ValueError(f"a rounding of {rounding} is not whole cents")
    left = abs(int(cents))
    if left and not amounts:
        raise ValueError(f"a rounding of {rounding} with no lines to spread it over")
    step = CENT if cents > 0 else -CENT
    shown = list(amounts)
    while left:
        ranked = sorted(range(len(shown)), key=lambda i: (-shown[i], i))
        if step < 0:
            ranked = [i for i in ranked if shown[i] >= CENT] or ranked
        for i in ranked[:left]:
            shown[i] += step
        left -= min(left, len(ranked))
    return shown


def statement(account: Account, month: date) -> tuple[Decimal, Decimal, Decimal]:
    return statements([account.pk], month)[account.pk]


def statements(account_ids: list[int], month: date) -> dict[int, tuple[Decimal, Decimal, Decimal]]:
    """(opening, credits, charges) of each account for the month, from one grouped aggregate."""
    usage = Q(kind=LedgerEntry.Kind.USAGE_CHARGE)
    start, end = periods.month_start(month), periods.month_start(periods.next_month(month))
    rows = (
        LedgerEntry.objects.filter(account_id__in=account_ids)
        .values("account_id")
        .annotate(
            opening=Sum("amount", filter=(usage & Q(period__lt=month)) | (~usage & Q(created_at__lt=start))),
            credits=Sum("amount", filter=~usage & Q(created_at__gte=start, created_at__lt=end)),
            charges=Sum("amount", filter=usage & Q(period=month)),
        )
        .values_list("account_id", "opening", "credits", "charges")
        .order_by()
    )

    def cents(amount: Decimal | None) -> Decimal:
        return to_cents(amount or Decimal(0))

    zero = Decimal("0.00")
    figures = dict.fromkeys(account_ids, (zero, zero, zero))
    for account_id, opening, credits, charges in rows:
        figures[account_id] = (cents(opening), cents(credits), -cents(charges))
    return figures


def finalize(
    invoice: Invoice, total: Decimal, statement: tuple[Decimal, Decimal, Decimal], number: str, now: datetime
) -> None:
    """A platform invoice's figures, number and finalized state (not saved). Its lines' total must
    be the ledger's usage charges of the month: it cannot differ while charges come only from the
    ledger's usage charges, so refuse rather than issue it."""
    opening, credits, charges = statement
    refuse_unless_charged(invoice.bill_to_id, total, charges)
    invoice.opening_balance, invoice.credits, invoice.charges = opening, credits, charges
    invoice.closing_balance = opening + credits - charges
    invoice.total = total
    invoice.number = number
    invoice.status = Invoice.Status.FINALIZED
    invoice.finalized_at = now


def refuse_unless_charged(bill_to_id: int, lines_total: Decimal, charges: Decimal) -> None:
    """`finalize`'s refusal: an invoice whose lines do not add up to the ledger's usage charges of
    the month is not issued (raised inside the finalizing transaction, which then writes nothing)."""
    if charges != lines_total:
        raise AssertionError(
            f"invoice lines {lines_total} of {bill_to_id} differ from the ledger's usage charges {charges}"
        )


def next_number(issuer_key: str) -> str:
    return next_numbers(issuer_key, 1, prefix="MC")[0]


def next_numbers(issuer_key: str, count: int, *, prefix: str) -> list[str]:
    """`count` consecutive numbers of the issuer, drawn under its sequence row's lock in the
    transaction that finalizes the invoices: a rolled-back close gives them back, so no gaps."""
    sequences = InvoiceSequence.objects.filter(issuer_key=issuer_key)
    # One UPDATE takes the row lock and the numbers; the first invoice of an issuer makes its row.
    if not sequences.update(last_number=F("last_number") + count):
        InvoiceSequence.objects.get_or_create(issuer_key=issuer_key)
        sequences.update(last_number=F("last_number") + count)
    last = sequences.values_list("last_number", flat=True).get()
    return [f"{prefix}-{n:07d}" for n in range(last - count + 1, last + 1)]


# --- What a customer acts on: terms (issue 12 item 7) ----------------------------------------------------

TERMS_FIELDS = ["issue_date", "due_date", "issuer_details", "bill_to_details"]


def stamp_terms(invoices: Sequence[Invoice], *, issuer: Account | None) -> None:
    """The invoices' issue date (the UTC day of finalizing), due date (plus the issuer's payment
    terms) and both parties' billing profiles as they are now (not saved): a later edit of a
    profile leaves an issued invoice as it was. One query for all the profiles."""
    if not invoices:
        return
    found = profiles.profiles_of([i.bill_to_id for i in invoices] + ([issuer.pk] if issuer is not None else []))
    issuer_profile = found.get(issuer.pk) if issuer is not None else None
    issuer_details = profiles.platform_details() if issuer is None else profiles.details(issuer, issuer_profile)
    terms = timedelta(days=profiles.payment_terms_days(issuer, issuer_profile))
    for invoice in invoices:
        finalized_at = invoice.finalized_at or timezone.now()
        invoice.issue_date = finalized_at.astimezone(UTC).date()
        invoice.due_date = invoice.issue_date + terms
        invoice.issuer_details = issuer_details
        invoice.bill_to_details = profiles.details(invoice.bill_to, found.get(invoice.bill_to_id))
