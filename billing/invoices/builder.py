"""Platform invoices and the monthly close.

One invoice per billed party (an account that holds its own balance) and UTC calendar month. Its
lines are the party's rated usage of the month from the monthly totals, one per account and
product (on a manager's invoice, a section per roll-up managed account), each rounded to cents
half up; a section whose rounded lines do not add up to its rounded total gets a rounding line
(`lines.section_amounts`, the rule reseller invoices follow too), so every section equals the
usage charge the ledger posted for that account and month, and the invoice total equals the party's
usage charges of the month.

The statement: every ledger entry belongs to one month (a usage charge to the month of its usage,
any other entry to the month it was posted in). Opening balance = all entries of earlier months;
credits = the month's other entries (top-ups, transfers, adjustments); charges = the month's usage
charges; closing = opening + credits - charges, which is the next month's opening balance.

Once a party's month is invoiced it is closed: usage for it is refused (billing.usage.services), so a
finalized invoice stays complete and never changes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.models import Account, AccountQuerySet
from billing import period_lock, periods
from billing.invoices import emails as invoice_emails
from billing.invoices import lines as invoice_lines
from billing.invoices import resale
from billing.invoices import sql as invoice_sql
from billing.ledger import services as ledger_services
from billing.models import (
    Invoice,
    InvoiceLine,
    MonthlyUsage,
    Product,
)


def billed_parties(month: date) -> AccountQuerySet:
    """Every account that holds its own balance in the month (by the billing mode in force in it,
    Account.billing_mode_in) and either existed in the month (and is not cancelled) or had usage
    in it, its own or its roll-up managed accounts'."""
    existed = Account.objects.open_before(periods.month_start(periods.next_month(month)))
    usage = MonthlyUsage.objects.filter(month=month)
    rolled_up = usage.filter(account__in=Account.objects.rolled_up(month)).values("account__manager_id")
    used = Q(pk__in=usage.values("account_id")) | Q(pk__in=rolled_up)
    return Account.objects.paying_own_usage(month).filter(Q(pk__in=existed.values("pk")) | used).order_by("pk")


def is_closed(*, payer_id: int, month: date) -> bool:
    return Invoice.objects.closed_for(payers=[payer_id], months=[month]).exists()


def invoice_party(*, account: Account, month: date) -> Invoice:
    """The party's finalized invoice for the month, made if it does not exist yet. Safe to run
    again, twice at once, or after a worker died half-way: the charges are idempotent, the invoice
    is built and finalized in one transaction, and the unique constraint on (bill-to, period)
    turns a second, concurrent build into a read of the first."""
    existing = Invoice.objects.platform().filter(bill_to=account, period=month).first()
    if existing is not None and existing.status != Invoice.Status.DRAFT:
        return existing
    try:
        return _build(account, month)
    except IntegrityError:
        return Invoice.objects.platform().get(bill_to=account, period=month)


def _sources(account: Account, month: date) -> list[Account]:
    """The accounts whose usage of `month` the party pays: itself and, for a manager, its accounts
    billed by roll-up in that month."""
    rollups = []
    if account.is_manager:
        rollups = list(Account.objects.rollups_of(account, month).order_by("name", "pk"))
    return [account, *rollups]


@transaction.atomic
def _build(account: Account, month: date) -> Invoice:
    # Exclusive over the payer's month: batches in flight commit first, later ones are refused.
    period_lock.hold_exclusive(account.pk, month)
    existing = Invoice.objects.platform().filter(bill_to=account, period=month).first()
    if existing is not None and existing.status != Invoice.Status.DRAFT:
        return existing
    sources = _sources(account, month)
    ledger_services.post_usage_charges(account=account, month=month)
    if len(sources) > 1:
        ledger_services.post_usage_charges_for(payer=account, accounts=sources[1:], month=month)
    Invoice.objects.platform().filter(bill_to=account, period=month, status=Invoice.Status.DRAFT).delete()
    invoice = Invoice.objects.create(bill_to=account, period=month, currency="USD")
    total = add_lines(invoice, account, month, sources)
    invoice_lines.finalize(
        invoice,
        total,
        invoice_lines.statement(account, month),
        invoice_lines.next_number(invoice_lines.PLATFORM_ISSUER),
        timezone.now(),
    )
    invoice_lines.stamp_terms([invoice], issuer=None)
    invoice.save()
    issued = [invoice]
    if account.is_manager:
        issued += resale.issue_resale_invoices(account, month)  # terms stamped as they are written
    announce_finalized(issued)
    return invoice


def add_lines(
    invoice: Invoice, payer: Account, month: date, sources: list[Account] | None = None, *, sql: bool | None = None
) -> Decimal:
    """The invoice's lines, section by section; returns its total. A manager's roll-up invoice is
    written by one statement on PostgreSQL (`sql`, by default there), any other built here."""
    sources_by_pk = {a.pk: a for a in (sources or _sources(payer, month))}
    if sql is None:
        sql = connection.vendor == "postgresql" and len(sources_by_pk) > 1
    if sql:
        return invoice_sql.add_lines_sql(invoice, payer, month, list(sources_by_pk))
    by_account = invoice_lines.usage_rows(list(sources_by_pk), month)
    products = Product.objects.in_bulk()
    lines: list[InvoiceLine] = []
    total = Decimal("0.00")
    for account_id in sorted(by_account, key=lambda pk: (pk != payer.pk, sources_by_pk[pk].name, pk)):
        section, section_total = invoice_lines.section_lines(
            account_id, sources_by_pk[account_id].name, by_account[account_id], products, len(lines)
        )
        lines += section
        total += section_total
    for line in lines:
        line.invoice = invoice
    InvoiceLine.objects.bulk_create(lines, batch_size=5000)
    return total


def rollup_managers(month: date, among: Iterable[int] | QuerySet[Any, Any]) -> QuerySet[Account, int]:
    """The managers `among` these account ids that have accounts billed by roll-up in `month`
    (each closed alone): one grouped query, `has_rollups` for a set of parties."""
    return (
        Account.objects.rolled_up(month)
        .filter(manager_id__in=among)
        .values_list("manager_id", flat=True)
        .distinct()
        .order_by()
    )


def has_rollups(month: date) -> Exists:
    """Annotation: the account is a manager with accounts billed by roll-up in `month` (its party
    is closed alone)."""
    return Exists(Account.objects.rollups_of(OuterRef("pk"), month))


def invoice_parties(*, accounts: list[Account], month: date, sql: bool | None = None) -> dict[int, Invoice]:
    """`invoice_party` for a batch of parties without roll-up accounts, set-based in one
    transaction: {account id: its finalized invoice}. The same invoices as one by one, and the
    same guarantees: parties already invoiced are skipped, the charges are idempotent (same keys),
    the exclusive period locks make a concurrent close of the same parties wait and then skip
    them, and the unique constraint on (bill-to, period) refuses the whole batch rather than bill
    a party twice (the caller then closes its parties one by one). The lines are written by one
    INSERT ... SELECT on PostgreSQL (`sql`, by default there: `sql.add_section_lines_sql`, whose
    sums per section are checked against the ledger's charges as `lines.finalize` checks the lines
    built here elsewhere); the same invoices and lines either way."""
    in_sql = connection.vendor == "postgresql" if sql is None else sql
    return _build_batch(sorted(accounts, key=lambda a: a.pk), month, in_sql)


@transaction.atomic
def _build_batch(accounts: list[Account], month: date, in_sql: bool) -> dict[int, Invoice]:
    ids = [account.pk for account in accounts]
    if rollup_managers(month, ids).exists():
        raise ValueError("A manager with roll-up accounts is closed alone (invoice_party).")
    period_lock.hold_exclusive_many(ids, month)
    existing = {
        invoice.bill_to_id: invoice for invoice in Invoice.objects.platform().filter(bill_to_id__in=ids, period=month)
    }
    invoices = {pk: invoice for pk, invoice in existing.items() if invoice.status != Invoice.Status.DRAFT}
    todo = [account for account in accounts if account.pk not in invoices]
    if not todo:
        return invoices
    todo_ids = [account.pk for account in todo]
    ledger_services.post_own_usage_charges(accounts=todo, month=month)
    drafts = [invoice.pk for pk, invoice in existing.items() if pk not in invoices]
    if drafts:
        Invoice.objects.filter(pk__in=drafts, status=Invoice.Status.DRAFT).delete()
    statements = invoice_lines.statements(todo_ids, month)
    numbers = invoice_lines.next_numbers(invoice_lines.PLATFORM_ISSUER, len(todo), prefix="MC")
    now = timezone.now()
    zero = Decimal("0.00")
    lines_of: dict[int, list[InvoiceLine]] = {}
    if in_sql:
        # Issued at the ledger's charges; the lines written below are checked against them.
        totals = {pk: charges for pk, (_, _, charges) in statements.items()}
    else:
        usage = invoice_lines.usage_rows(todo_ids, month)
        products = Product.objects.in_bulk()
        totals = {}
        for account in todo:
            rows = usage.get(account.pk, [])
            lines_of[account.pk], totals[account.pk] = invoice_lines.section_lines(
                account.pk, account.name, rows, products, 0
            )
    built = []
    for account, number in zip(todo, numbers, strict=True):
        invoice = Invoice(bill_to=account, period=month, currency="USD")
        invoice_lines.finalize(invoice, totals.get(account.pk, zero), statements[account.pk], number, now)
        built.append(invoice)
    invoice_lines.stamp_terms(built, issuer=None)
    Invoice.objects.bulk_create(built)  # returns the pks (PostgreSQL, SQLite)
    if in_sql:
        written = invoice_sql.add_section_lines_sql(built, month)
        for invoice in built:
            invoice_lines.refuse_unless_charged(
                invoice.bill_to_id, written.get(invoice.bill_to_id, zero), invoice.total
            )
    else:
        for invoice in built:
            for line in lines_of[invoice.bill_to_id]:
                line.invoice_id = invoice.pk
        InvoiceLine.objects.bulk_create([line for i in built for line in lines_of[i.bill_to_id]], batch_size=5000)
    announce_finalized(built)
    invoices.update({invoice.bill_to_id: invoice for invoice in built})
    return invoices


# --- What a customer acts on: terms, the audit event, the e-mail (issue 12 item 7) ------------------------


def finalized_changes(invoice: Invoice) -> list[audit.FieldChange]:
    """What the `invoice.finalized` event says (audit log and webhook alike): number, period, total,
    currency, due date and status. The total is money the bill-to owes, so it is said even where
    pricing is hidden; no rate, line amount or markup ever is."""
    facts = {
        "number": invoice.number,
        "period": f"{invoice.period:%Y-%m}",
        "total": str(invoice.total),
        "currency": invoice.currency,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "status": invoice.payment_status,
    }
    return [{"field": field, "from": None, "to": value} for field, value in facts.items()]


def announce_finalized(invoices: Sequence[Invoice]) -> None:
    """In the finalizing transaction: one INVOICE_FINALIZED audit event per invoice on its bill-to's
    log (a reseller invoice on its roll-up account's), in one INSERT, which webhooks turns into
    `invoice.finalized`; after commit, one task e-mails them (billing.tasks.email_invoices)."""
    if not invoices:
        return
    entries = [
        audit.Entry(
            account=invoice.bill_to,
            change_type=audit.ChangeType.INVOICE_FINALIZED,
            resource=invoice,
            changes=finalized_changes(invoice),
        )
        for invoice in invoices
    ]
    audit.record_many(actor=Actor(user=None, platform=True), entries=entries)
    ids = [invoice.pk for invoice in invoices]
    transaction.on_commit(lambda: invoice_emails.email_invoices.delay(ids))
