"""Platform invoices and the monthly close.

One invoice per billed party (an account that holds its own balance) and UTC calendar month. Its
lines are the party's rated usage of the month from the monthly totals, one per account and
product (on a manager's invoice, a section per roll-up managed account), each rounded to cents
half up; a section whose rounded lines do not add up to its rounded total gets a rounding line, so
every section equals the usage charge the ledger posted for that account and month, and the invoice
total equals the party's usage charges of the month.

The statement: every ledger entry belongs to one month (a usage charge to the month of its usage,
any other entry to the month it was posted in). Opening balance = all entries of earlier months;
credits = the month's other entries (top-ups, transfers, adjustments); charges = the month's usage
charges; closing = opening + credits - charges, which is the next month's opening balance.

Once a party's month is invoiced it is closed: usage for it is refused (billing.usage), so a
finalized invoice stays complete and never changes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from accounts import audit
from accounts.models import Account
from billing import ledger, period_lock
from billing.models import (
    CloseItem,
    CloseRun,
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    LedgerEntry,
    MonthlyUsage,
    Product,
    ResaleTerms,
)
from billing.money import to_cents

PLATFORM_ISSUER = "platform"


def month_start(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def billed_parties(month: date):
    """Every account that holds its own balance and either existed in the month (and is not
    cancelled) or had usage in it, its own or its roll-up managed accounts'."""
    own_balance = ~Q(kind=Account.Kind.MANAGED) | Q(billing_mode=Account.BillingMode.SEPARATE)
    existed = Q(created_at__lt=month_start(next_month(month))) & ~Q(status=Account.Status.CANCELLED)
    usage = MonthlyUsage.objects.filter(month=month)
    rolled_up = usage.filter(account__billing_mode=Account.BillingMode.ROLLUP).values("account__manager_id")
    used = Q(pk__in=usage.values("account_id")) | Q(pk__in=rolled_up)
    return Account.objects.filter(own_balance & (existed | used)).order_by("pk")


def is_closed(*, payer_id: int, month: date) -> bool:
    return (
        Invoice.objects.filter(bill_to_id=payer_id, period=month, issuer__isnull=True)
        .exclude(status=Invoice.Status.DRAFT)
        .exists()
    )


def invoice_party(*, account: Account, month: date) -> Invoice:
    """The party's finalized invoice for the month, made if it does not exist yet. Safe to run
    again, twice at once, or after a worker died half-way: the charges are idempotent, the invoice
    is built and finalized in one transaction, and the unique constraint on (bill-to, period)
    turns a second, concurrent build into a read of the first."""
    existing = Invoice.objects.filter(bill_to=account, period=month, issuer__isnull=True).first()
    if existing is not None and existing.status != Invoice.Status.DRAFT:
        return existing
    try:
        return _build(account, month)
    except IntegrityError:
        return Invoice.objects.get(bill_to=account, period=month, issuer__isnull=True)


def _sources(account: Account) -> list[Account]:
    """The accounts whose usage the party pays: itself and, for a manager, its roll-up accounts."""
    rollups = []
    if account.is_manager:
        rollups = list(account.managed_accounts.filter(billing_mode=Account.BillingMode.ROLLUP).order_by("name", "pk"))
    return [account, *rollups]


@transaction.atomic
def _build(account: Account, month: date) -> Invoice:
    # Exclusive over the payer's month: batches in flight commit first, later ones are refused.
    period_lock.hold_exclusive(account.pk, month)
    existing = Invoice.objects.filter(bill_to=account, period=month, issuer__isnull=True).first()
    if existing is not None and existing.status != Invoice.Status.DRAFT:
        return existing
    sources = _sources(account)
    ledger.post_usage_charges(account=account, month=month)
    if len(sources) > 1:
        ledger.post_usage_charges_for(payer=account, accounts=sources[1:], month=month)
    Invoice.objects.filter(bill_to=account, period=month, issuer__isnull=True, status=Invoice.Status.DRAFT).delete()
    invoice = Invoice.objects.create(bill_to=account, period=month, currency="USD")
    total = _add_lines(invoice, account, month)
    opening, credits, charges = _statement(account, month)
    if charges != total:
        # Cannot happen while charges come only from post_usage_charges; refuse rather than issue it.
        raise AssertionError(f"invoice lines {total} differ from the ledger's usage charges {charges}")
    invoice.opening_balance, invoice.credits, invoice.charges = opening, credits, charges
    invoice.closing_balance = opening + credits - charges
    invoice.total = total
    invoice.number = _next_number(PLATFORM_ISSUER)
    invoice.status = Invoice.Status.FINALIZED
    invoice.finalized_at = timezone.now()
    invoice.save()
    if account.is_manager:
        _issue_resale_invoices(account, month)
    return invoice


def _add_lines(invoice: Invoice, payer: Account, month: date) -> Decimal:
    sources = {a.pk: a for a in _sources(payer)}
    rows = (
        MonthlyUsage.objects.filter(account_id__in=sources, month=month)
        .values("account_id", "product_id")
        .annotate(quantity=Sum("quantity"), cost=Sum("cost"))
        .order_by()
    )
    by_account: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        by_account[row["account_id"]].append(row)
    products = Product.objects.in_bulk()
    lines, total, position = [], Decimal("0.00"), 0
    for account_id in sorted(by_account, key=lambda pk: (pk != payer.pk, sources[pk].name, pk)):
        section = sorted(by_account[account_id], key=lambda r: products[r["product_id"]].sku)
        section_total = to_cents(sum((r["cost"] for r in section), Decimal(0)))
        rounded = Decimal("0.00")
        for row in section:
            product = products[row["product_id"]]
            amount = to_cents(row["cost"])
            rounded += amount
            position += 1
            lines.append(
                InvoiceLine(
                    invoice=invoice,
                    account_id=account_id,
                    account_name=sources[account_id].name,
                    product=product,
                    position=position,
                    description=f"{product.name} ({product.unit})",
                    quantity=row["quantity"],
                    amount=amount,
                )
            )
        if rounded != section_total:
            position += 1
            lines.append(
                InvoiceLine(
                    invoice=invoice,
                    account_id=account_id,
                    account_name=sources[account_id].name,
                    position=position,
                    description="Rounding to the section total",
                    amount=section_total - rounded,
                )
            )
        total += section_total
    InvoiceLine.objects.bulk_create(lines)
    return total


def _statement(account: Account, month: date) -> tuple[Decimal, Decimal, Decimal]:
    usage = Q(kind=LedgerEntry.Kind.USAGE_CHARGE)
    start, end = month_start(month), month_start(next_month(month))
    sums = LedgerEntry.objects.filter(account=account).aggregate(
        opening=Sum("amount", filter=(usage & Q(period__lt=month)) | (~usage & Q(created_at__lt=start))),
        credits=Sum("amount", filter=~usage & Q(created_at__gte=start, created_at__lt=end)),
        charges=Sum("amount", filter=usage & Q(period=month)),
    )  # one query for the three figures

    def cents(name: str) -> Decimal:
        return to_cents(sums[name] or Decimal(0))

    return cents("opening"), cents("credits"), -cents("charges")


def _next_number(issuer_key: str) -> str:
    return _next_numbers(issuer_key, 1, prefix="MC")[0]


def _next_numbers(issuer_key: str, count: int, *, prefix: str) -> list[str]:
    """`count` consecutive numbers of the issuer, drawn under its sequence row's lock in the
    transaction that finalizes the invoices: a rolled-back close gives them back, so no gaps."""
    sequences = InvoiceSequence.objects.filter(issuer_key=issuer_key)
    # One UPDATE takes the row lock and the numbers; the first invoice of an issuer makes its row.
    if not sequences.update(last_number=F("last_number") + count):
        InvoiceSequence.objects.get_or_create(issuer_key=issuer_key)
        sequences.update(last_number=F("last_number") + count)
    last = sequences.values_list("last_number", flat=True).get()
    return [f"{prefix}-{n:07d}" for n in range(last - count + 1, last + 1)]


# --- Reseller invoices ------------------------------------------------------------------------------


def resale_issuer_key(manager: Account) -> str:
    return f"account:{manager.pk}"


def markup_of(manager: Account) -> Decimal:
    terms = ResaleTerms.objects.filter(manager=manager).first()
    return terms.markup_percent if terms else Decimal("0.00")


def resale_amount(cost: Decimal, markup_percent: Decimal) -> Decimal:
    """The manager's resale price of a line: the platform's exact rated cost plus the markup,
    rounded to cents once (half up)."""
    return to_cents(cost * (1 + markup_percent / 100))


def _resale_recipients(manager: Account, month: date, used: set[int]) -> list[Account]:
    """The roll-up managed accounts billed by the manager for the month: those that existed in it
    (and are not cancelled) or had usage in it, by name."""
    existed = Q(created_at__lt=month_start(next_month(month))) & ~Q(status=Account.Status.CANCELLED)
    return list(
        manager.managed_accounts.filter(billing_mode=Account.BillingMode.ROLLUP)
        .filter(existed | Q(pk__in=used))
        .order_by("name", "pk")
    )


def _issue_resale_invoices(manager: Account, month: date) -> list[Invoice]:
    """The manager's invoices to its roll-up managed accounts for the month, at its resale prices
    (the rated cost plus the markup in force now), finalized, numbered gap-free in the manager's own
    sequence. Written in bulk inside the transaction that issues the manager's platform invoice, so
    the two exist together or not at all; the unique constraint on (issuer, bill-to, period) is the
    last line of defence."""
    rows = (
        MonthlyUsage.objects.filter(
            account__manager=manager, account__billing_mode=Account.BillingMode.ROLLUP, month=month
        )
        .values("account_id", "product_id")
        .annotate(quantity=Sum("quantity"), cost=Sum("cost"))
        .order_by()
    )
    by_account: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        by_account[row["account_id"]].append(row)
    recipients = _resale_recipients(manager, month, set(by_account))
    if not recipients:
        return []
    markup = markup_of(manager)
    products = Product.objects.in_bulk()
    now = timezone.now()
    numbers = _next_numbers(resale_issuer_key(manager), len(recipients), prefix="R")
    invoices, lines_of = [], []
    for recipient, number in zip(recipients, numbers, strict=True):
        section = sorted(by_account.get(recipient.pk, []), key=lambda r: products[r["product_id"]].sku)
        lines = [
            InvoiceLine(
                account_id=recipient.pk,
                account_name=recipient.name,
                product=products[row["product_id"]],
                position=position,
                description=f"{products[row['product_id']].name} ({products[row['product_id']].unit})",
                quantity=row["quantity"],
                amount=resale_amount(row["cost"], markup),
            )
            for position, row in enumerate(section, start=1)
        ]
        total = sum((line.amount for line in lines), Decimal("0.00"))
        invoices.append(
            Invoice(
                issuer=manager,
                bill_to=recipient,
                period=month,
                number=number,
                status=Invoice.Status.FINALIZED,
                currency="USD",
                charges=total,
                total=total,
                markup_percent=markup,
                finalized_at=now,
            )
        )
        lines_of.append(lines)
    Invoice.objects.bulk_create(invoices)
    for invoice, lines in zip(invoices, lines_of, strict=True):
        for line in lines:
            line.invoice = invoice
    InvoiceLine.objects.bulk_create([line for lines in lines_of for line in lines], batch_size=5000)
    return invoices


# --- Invoice states ---------------------------------------------------------------------------------

# The only moves a finalized invoice makes; a draft exists only inside the transaction building it.
TRANSITIONS = {
    Invoice.Status.FINALIZED: {Invoice.Status.PAID, Invoice.Status.VOID},
    Invoice.Status.PAID: set(),
    Invoice.Status.VOID: set(),
}


class InvoiceStateError(Exception):
    """A status change the invoice's current state does not allow (already paid, already void)."""


def _move(invoice: Invoice, to: str, *, note: str, stamp: str) -> Invoice:
    allowed_from = [state for state, targets in TRANSITIONS.items() if to in targets]
    # Conditional update: two managers clicking at once change it once; the loser is told why.
    changed = Invoice.objects.filter(pk=invoice.pk, status__in=allowed_from).update(
        status=to, status_note=note, **{stamp: timezone.now()}
    )
    if not changed:
        current = Invoice.objects.get(pk=invoice.pk)
        raise InvoiceStateError(
            f"Invoice {current.number} is {current.get_status_display().lower()}: it cannot be marked "
            f"{Invoice.Status(to).label.lower()}."
        )
    invoice.refresh_from_db()
    return invoice


@transaction.atomic
def mark_invoice_paid(*, invoice: Invoice, note: str, actor) -> Invoice:
    """The issuer records that the invoice was paid (a reseller invoice: the managed account paid
    its manager outside the platform). Audited on the issuer and the bill-to."""
    before = invoice.status
    invoice = _move(invoice, Invoice.Status.PAID, note=note.strip()[:255], stamp="paid_at")
    _audit_status(invoice, "invoice.marked_paid", before, actor)
    return invoice


@transaction.atomic
def void_invoice(*, invoice: Invoice, reason: str, actor) -> Invoice:
    """The issuer cancels the invoice; a reason is required. The usage stays charged on the
    platform side: voiding a reseller invoice only says the manager will not collect it."""
    if not reason.strip():
        raise InvoiceStateError("Give the reason for voiding the invoice.")
    before = invoice.status
    invoice = _move(invoice, Invoice.Status.VOID, note=reason.strip()[:255], stamp="voided_at")
    _audit_status(invoice, "invoice.voided", before, actor)
    return invoice


def _audit_status(invoice: Invoice, change_type: str, before: str, actor) -> None:
    account = invoice.issuer or invoice.bill_to
    audit.record(
        account=account,
        related_account=invoice.bill_to if invoice.issuer_id else None,
        change_type=change_type,
        resource=invoice,
        changes=[
            {"field": "status", "from": before, "to": invoice.status},
            {"field": "status_note", "from": "", "to": invoice.status_note},
        ],
        actor=actor,
    )


@transaction.atomic
def set_resale_markup(*, manager: Account, markup_percent: Decimal, actor) -> ResaleTerms:
    """The manager's markup over the platform's cost on its reseller invoices (from the next close)."""
    markup_percent = Decimal(markup_percent).quantize(Decimal("0.01"))
    terms, _ = ResaleTerms.objects.select_for_update().get_or_create(manager=manager)
    before = terms.markup_percent
    if before == markup_percent:
        return terms
    terms.markup_percent = markup_percent
    terms.save(update_fields=["markup_percent", "updated_at"])
    audit.record(
        account=manager,
        change_type="resale_markup.changed",
        resource=manager,
        changes=[{"field": "markup_percent", "from": str(before), "to": str(markup_percent)}],
        actor=actor,
    )
    return terms


# --- The monthly close --------------------------------------------------------------------------


def start_close(month: date) -> CloseRun:
    """The close run of the month with one item per billed party (repeatable: new parties are added,
    existing items kept)."""
    run, _ = CloseRun.objects.get_or_create(period=month)
    known = set(run.items.values_list("account_id", flat=True))
    CloseItem.objects.bulk_create(
        [
            CloseItem(run=run, account_id=pk)
            for pk in billed_parties(month).values_list("pk", flat=True)
            if pk not in known
        ],
        ignore_conflicts=True,
    )
    return run


def close_item(*, run_id: int, account_id: int) -> Invoice:
    run = CloseRun.objects.get(pk=run_id)
    CloseItem.objects.filter(run=run, account_id=account_id).update(attempts=F("attempts") + 1)
    account = Account.objects.select_related("manager").get(pk=account_id)
    invoice = invoice_party(account=account, month=run.period)
    CloseItem.objects.filter(run=run, account_id=account_id).update(status=CloseItem.Status.DONE, error="")
    # The run is finished when no item is left undone: one UPDATE, whichever task is the last.
    undone = CloseItem.objects.filter(run=OuterRef("pk")).exclude(status=CloseItem.Status.DONE)
    CloseRun.objects.filter(pk=run.pk, finished_at__isnull=True).exclude(Exists(undone)).update(
        finished_at=timezone.now()
    )
    return invoice


def record_failure(*, run_id: int, account_id: int, error: str) -> None:
    CloseItem.objects.filter(run_id=run_id, account_id=account_id).update(
        status=CloseItem.Status.FAILED, error=error[:2000]
    )


def close_progress(month: date) -> dict[str, int]:
    run = CloseRun.objects.filter(period=month).first()
    if run is None:
        return {"total": 0, "done": 0, "failed": 0}
    counts = dict(run.items.values_list("status").annotate(n=Count("pk")).order_by())
    return {
        "total": sum(counts.values()),
        "done": counts.get(CloseItem.Status.DONE, 0),
        "failed": counts.get(CloseItem.Status.FAILED, 0),
    }
