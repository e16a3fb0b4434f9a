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
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

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
    for source in _sources(account):
        ledger.post_usage_charges(account=source, month=month)
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
    entries = LedgerEntry.objects.filter(account=account)

    def total(condition) -> Decimal:
        return to_cents(entries.filter(condition).aggregate(t=Sum("amount"))["t"] or Decimal(0))

    opening = total((usage & Q(period__lt=month)) | (~usage & Q(created_at__lt=start)))
    credits = total(~usage & Q(created_at__gte=start, created_at__lt=end))
    charges = -total(usage & Q(period=month))
    return opening, credits, charges


def _next_number(issuer_key: str) -> str:
    sequence, _ = InvoiceSequence.objects.get_or_create(issuer_key=issuer_key)
    sequence = InvoiceSequence.objects.select_for_update().get(pk=sequence.pk)
    sequence.last_number += 1
    sequence.save(update_fields=["last_number"])
    return f"MC-{sequence.last_number:07d}"


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
    if not run.items.exclude(status=CloseItem.Status.DONE).exists():
        CloseRun.objects.filter(pk=run.pk, finished_at__isnull=True).update(finished_at=timezone.now())
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
