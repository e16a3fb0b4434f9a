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

from collections.abc import Sequence
from datetime import UTC, date, timedelta
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts import audit
from accounts import billing_profile as profiles
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
    stamp_terms([invoice], issuer=None)
    invoice.save()
    issued = [invoice]
    if account.is_manager:
        reseller_invoices = resale.issue_resale_invoices(account, month)
        stamp_terms(reseller_invoices, issuer=account)
        Invoice.objects.bulk_update(reseller_invoices, TERMS_FIELDS, batch_size=1000)
        issued += reseller_invoices
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


def has_rollups(month: date) -> Exists:
    """Annotation: the account is a manager with accounts billed by roll-up in `month` (its party
    is closed alone)."""
    return Exists(Account.objects.rollups_of(OuterRef("pk"), month))


def invoice_parties(*, accounts: list[Account], month: date) -> dict[int, Invoice]:
    """`invoice_party` for a batch of parties without roll-up accounts, set-based in one
    transaction: {account id: its finalized invoice}. The same invoices as one by one, and the
    same guarantees: parties already invoiced are skipped, the charges are idempotent (same keys),
    the exclusive period locks make a concurrent close of the same parties wait and then skip
    them, and the unique constraint on (bill-to, period) refuses the whole batch rather than bill
    a party twice (the caller then closes its parties one by one)."""
    return _build_batch(sorted(accounts, key=lambda a: a.pk), month)


@transaction.atomic
def _build_batch(accounts: list[Account], month: date) -> dict[int, Invoice]:
    ids = [account.pk for account in accounts]
    if Account.objects.filter(pk__in=ids).filter(has_rollups(month)).exists():
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
    usage = invoice_lines.usage_rows(todo_ids, month)
    statements = invoice_lines.statements(todo_ids, month)
    products = Product.objects.in_bulk()
    numbers = invoice_lines.next_numbers(invoice_lines.PLATFORM_ISSUER, len(todo), prefix="MC")
    now = timezone.now()
    built, lines_of = [], []
    for account, number in zip(todo, numbers, strict=True):
        lines, total = invoice_lines.section_lines(account.pk, account.name, usage.get(account.pk, []), products, 0)
        invoice = Invoice(bill_to=account, period=month, currency="USD")
        invoice_lines.finalize(invoice, total, statements[account.pk], number, now)
        built.append(invoice)
        lines_of.append(lines)
    stamp_terms(built, issuer=None)
    Invoice.objects.bulk_create(built)  # returns the pks (PostgreSQL, SQLite)
    for invoice, lines in zip(built, lines_of, strict=True):
        for line in lines:
            line.invoice_id = invoice.pk
    InvoiceLine.objects.bulk_create([line for lines in lines_of for line in lines], batch_size=5000)
    announce_finalized(built)
    invoices.update({invoice.bill_to_id: invoice for invoice in built})
    return invoices


# --- What a customer acts on: terms, the audit event, the e-mail (issue 12 item 7) ------------------------

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
