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

import logging
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
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
logger = logging.getLogger(__name__)


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
    total = _add_lines(invoice, account, month, sources)
    _finalize(invoice, total, _statement(account, month), _next_number(PLATFORM_ISSUER), timezone.now())
    invoice.save()
    if account.is_manager:
        _issue_resale_invoices(account, month)
    return invoice


def _finalize(invoice: Invoice, total: Decimal, statement: tuple[Decimal, Decimal, Decimal], number: str, now) -> None:
    """A platform invoice's figures, number and finalized state (not saved). Its lines' total must
    be the ledger's usage charges of the month: it cannot differ while charges come only from the
    ledger's usage charges, so refuse rather than issue it."""
    opening, credits, charges = statement
    if charges != total:
        raise AssertionError(
            f"invoice lines {total} of {invoice.bill_to_id} differ from the ledger's usage charges {charges}"
        )
    invoice.opening_balance, invoice.credits, invoice.charges = opening, credits, charges
    invoice.closing_balance = opening + credits - charges
    invoice.total = total
    invoice.number = number
    invoice.status = Invoice.Status.FINALIZED
    invoice.finalized_at = now


def _usage_rows(account_ids: list[int], month: date) -> dict[int, list[tuple[int, Decimal, Decimal]]]:
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


def _section_lines(
    account_id: int, name: str, rows: list, products: dict, position: int, *, markup: Decimal | None = None
) -> tuple[list[InvoiceLine], Decimal]:
    """One section of an invoice: a line per product (by SKU) rounded to cents half up. On a
    platform invoice (no `markup`), a rounding line when those do not add up to the section's
    rounded total; on a reseller invoice, each line is at the manager's resale price
    (`resale_amount`) and the section is the sum of its lines. Returns the lines (positions after
    `position`, no invoice yet) and the section total. The one place the rule lives for every
    Python path (the PostgreSQL statements of `_add_lines_sql` and `_add_resale_lines_sql` mirror it)."""
    lines, rounded, exact = [], Decimal("0.00"), Decimal(0)
    for product_id, quantity, cost in sorted(rows, key=lambda r: products[r[0]].sku):
        product = products[product_id]
        amount = to_cents(cost) if markup is None else resale_amount(cost, markup)
        rounded += amount
        exact += cost
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
    section_total = to_cents(exact) if markup is None else rounded
    if rounded != section_total:
        lines.append(
            InvoiceLine(
                account_id=account_id,
                account_name=name,
                position=position + 1,
                description="Rounding to the section total",
                amount=section_total - rounded,
            )
        )
    return lines, section_total


def _add_lines(
    invoice: Invoice, payer: Account, month: date, sources: list[Account] | None = None, *, sql: bool | None = None
) -> Decimal:
    """The invoice's lines, section by section; returns its total. A manager's roll-up invoice is
    written by one statement on PostgreSQL (`sql`, by default there), any other built here."""
    sources_by_pk = {a.pk: a for a in (sources or _sources(payer))}
    if sql is None:
        sql = connection.vendor == "postgresql" and len(sources_by_pk) > 1
    if sql:
        return _add_lines_sql(invoice, payer, month, list(sources_by_pk))
    by_account = _usage_rows(list(sources_by_pk), month)
    products = Product.objects.in_bulk()
    lines, total = [], Decimal("0.00")
    for account_id in sorted(by_account, key=lambda pk: (pk != payer.pk, sources_by_pk[pk].name, pk)):
        section, section_total = _section_lines(
            account_id, sources_by_pk[account_id].name, by_account[account_id], products, len(lines)
        )
        lines += section
        total += section_total
    for line in lines:
        line.invoice = invoice
    InvoiceLine.objects.bulk_create(lines, batch_size=5000)
    return total


def _add_lines_sql(invoice: Invoice, payer: Account, month: date, account_ids: list[int]) -> Decimal:
    """`_add_lines` for a manager's roll-up invoice (thousands of sections) on PostgreSQL: one
    INSERT ... SELECT, no line objects in Python. The same rule, exactly: a line per (account,
    product) at round(cost, 2), which is half up as `to_cents` for these non-negative costs (numeric
    rounds half away from zero); a rounding line per section of round(sum) - sum(round); sections
    in the payer's own first, then by name and pk, lines by SKU, in code-point order (COLLATE "C",
    as Python compares strings). Returns the invoice total (the sum of the section totals)."""
    sql = f"""
        WITH usage AS (
            SELECT mu.account_id, a.name AS account_name, mu.product_id, p.sku,
                   p.name || ' (' || p.unit || ')' AS description,
                   sum(mu.quantity) AS quantity, sum(mu.cost) AS cost
            FROM {MonthlyUsage._meta.db_table} mu
            JOIN {Account._meta.db_table} a ON a.id = mu.account_id
            JOIN {Product._meta.db_table} p ON p.id = mu.product_id
            WHERE mu.month = %(month)s AND mu.account_id = ANY(%(ids)s)
            GROUP BY mu.account_id, a.name, mu.product_id, p.sku, p.name, p.unit
        ), sections AS (
            SELECT account_id, account_name, round(sum(cost), 2) - sum(round(cost, 2)) AS rounding
            FROM usage GROUP BY account_id, account_name
        ), all_lines AS (
            SELECT account_id, account_name, product_id, 0 AS kind, sku, description, quantity,
                   round(cost, 2) AS amount
            FROM usage
            UNION ALL
            SELECT account_id, account_name, NULL, 1, '', 'Rounding to the section total', 0, rounding
            FROM sections WHERE rounding <> 0
        ), inserted AS (
            INSERT INTO {InvoiceLine._meta.db_table}
                (invoice_id, account_id, account_name, product_id, description, quantity, amount, position)
            SELECT %(invoice)s, account_id, account_name, product_id, description, quantity, amount,
                   row_number() OVER (ORDER BY account_id <> %(payer)s, account_name COLLATE "C", account_id,
                                      kind, sku COLLATE "C")
            FROM all_lines
            RETURNING amount
        )
        SELECT coalesce(sum(amount), 0) FROM inserted
    """  # noqa: S608 (table names from the models; values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"month": month, "ids": account_ids, "invoice": invoice.pk, "payer": payer.pk})
        (total,) = cursor.fetchone()
    return to_cents(Decimal(total))


def _statement(account: Account, month: date) -> tuple[Decimal, Decimal, Decimal]:
    return _statements([account.pk], month)[account.pk]


def _statements(account_ids: list[int], month: date) -> dict[int, tuple[Decimal, Decimal, Decimal]]:
    """(opening, credits, charges) of each account for the month, from one grouped aggregate."""
    usage = Q(kind=LedgerEntry.Kind.USAGE_CHARGE)
    start, end = month_start(month), month_start(next_month(month))
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


# --- The close in batches ---------------------------------------------------------------------------


def has_rollups() -> Exists:
    """Annotation: the account is a manager with roll-up managed accounts (its party is closed alone)."""
    return Exists(Account.objects.filter(manager=OuterRef("pk"), billing_mode=Account.BillingMode.ROLLUP))


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
    if Account.objects.filter(pk__in=ids).filter(has_rollups()).exists():
        raise ValueError("A manager with roll-up accounts is closed alone (invoice_party).")
    period_lock.hold_exclusive_many(ids, month)
    existing = {
        invoice.bill_to_id: invoice
        for invoice in Invoice.objects.filter(bill_to_id__in=ids, period=month, issuer__isnull=True)
    }
    invoices = {pk: invoice for pk, invoice in existing.items() if invoice.status != Invoice.Status.DRAFT}
    todo = [account for account in accounts if account.pk not in invoices]
    if not todo:
        return invoices
    todo_ids = [account.pk for account in todo]
    ledger.post_own_usage_charges(accounts=todo, month=month)
    drafts = [invoice.pk for pk, invoice in existing.items() if pk not in invoices]
    if drafts:
        Invoice.objects.filter(pk__in=drafts, status=Invoice.Status.DRAFT).delete()
    usage = _usage_rows(todo_ids, month)
    statements = _statements(todo_ids, month)
    products = Product.objects.in_bulk()
    numbers = _next_numbers(PLATFORM_ISSUER, len(todo), prefix="MC")
    now = timezone.now()
    built, lines_of = [], []
    for account, number in zip(todo, numbers, strict=True):
        lines, total = _section_lines(account.pk, account.name, usage.get(account.pk, []), products, 0)
        invoice = Invoice(bill_to=account, period=month, currency="USD")
        _finalize(invoice, total, statements[account.pk], number, now)
        built.append(invoice)
        lines_of.append(lines)
    Invoice.objects.bulk_create(built)  # returns the pks (PostgreSQL, SQLite)
    for invoice, lines in zip(built, lines_of, strict=True):
        for line in lines:
            line.invoice_id = invoice.pk
    InvoiceLine.objects.bulk_create([line for lines in lines_of for line in lines], batch_size=5000)
    invoices.update({invoice.bill_to_id: invoice for invoice in built})
    return invoices


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


def _issue_resale_invoices(manager: Account, month: date, *, sql: bool | None = None) -> list[Invoice]:
    """The manager's invoices to its roll-up managed accounts for the month, at its resale prices
    (the rated cost plus the markup in force now), finalized, numbered gap-free in the manager's own
    sequence. Written in bulk inside the transaction that issues the manager's platform invoice, so
    the two exist together or not at all; the unique constraint on (issuer, bill-to, period) is the
    last line of defence. On PostgreSQL the totals come from one grouped query and the lines are
    written by one INSERT ... SELECT (no line objects in Python); elsewhere they are built here."""
    markup = markup_of(manager)
    in_sql = connection.vendor == "postgresql" if sql is None else sql
    sections: dict[int, list[InvoiceLine]] = {}
    if in_sql:
        totals = _resale_totals_sql(manager, month, 1 + markup / 100)
    else:
        rollups = manager.managed_accounts.filter(billing_mode=Account.BillingMode.ROLLUP)
        names = dict(rollups.values_list("pk", "name"))
        products = Product.objects.in_bulk()
        totals = {}
        for pk, rows in _usage_rows(list(names), month).items():
            sections[pk], totals[pk] = _section_lines(pk, names[pk], rows, products, 0, markup=markup)
    recipients = _resale_recipients(manager, month, set(totals))
    if not recipients:
        return []
    now = timezone.now()
    numbers = _next_numbers(resale_issuer_key(manager), len(recipients), prefix="R")
    invoices = [
        Invoice(
            issuer=manager,
            bill_to=recipient,
            period=month,
            number=number,
            status=Invoice.Status.FINALIZED,
            currency="USD",
            charges=totals.get(recipient.pk, Decimal("0.00")),
            total=totals.get(recipient.pk, Decimal("0.00")),
            markup_percent=markup,
            finalized_at=now,
        )
        for recipient, number in zip(recipients, numbers, strict=True)
    ]
    Invoice.objects.bulk_create(invoices)  # returns the pks (PostgreSQL, SQLite)
    if in_sql:
        _add_resale_lines_sql(invoices, month, 1 + markup / 100)
        return invoices
    lines = []
    for invoice in invoices:
        for line in sections.get(invoice.bill_to_id, []):
            line.invoice_id = invoice.pk
            lines.append(line)
    InvoiceLine.objects.bulk_create(lines, batch_size=5000)
    return invoices


def _resale_totals_sql(manager: Account, month: date, factor: Decimal) -> dict[int, Decimal]:
    """{roll-up account id: the sum of its resale lines}, each line round(cost * factor, 2): numeric
    is exact and rounds half away from zero, which is `resale_amount` (half up) for these costs."""
    sql = f"""
        SELECT g.account_id, sum(round(g.cost * %(factor)s, 2)) FROM (
            SELECT mu.account_id, mu.product_id, sum(mu.cost) AS cost
            FROM {MonthlyUsage._meta.db_table} mu JOIN {Account._meta.db_table} a ON a.id = mu.account_id
            WHERE a.manager_id = %(manager)s AND a.billing_mode = %(rollup)s AND mu.month = %(month)s
            GROUP BY mu.account_id, mu.product_id
        ) g GROUP BY g.account_id
    """  # noqa: S608 (table names from the models; values are parameters)
    params = {"factor": factor, "manager": manager.pk, "rollup": Account.BillingMode.ROLLUP.value, "month": month}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {account_id: to_cents(Decimal(total)) for account_id, total in cursor.fetchall()}


def _add_resale_lines_sql(invoices: list[Invoice], month: date, factor: Decimal) -> None:
    """The resale invoices' lines in one INSERT ... SELECT: per (account, product) by SKU in code-point
    order, amount round(cost * factor, 2), the account's name as on the invoice."""
    sql = f"""
        INSERT INTO {InvoiceLine._meta.db_table}
            (invoice_id, account_id, account_name, product_id, description, quantity, amount, position)
        SELECT m.invoice_id, g.account_id, m.account_name, g.product_id, p.name || ' (' || p.unit || ')',
               g.quantity, round(g.cost * %(factor)s, 2),
               row_number() OVER (PARTITION BY g.account_id ORDER BY p.sku COLLATE "C")
        FROM (
            SELECT account_id, product_id, sum(quantity) AS quantity, sum(cost) AS cost
            FROM {MonthlyUsage._meta.db_table}
            WHERE month = %(month)s AND account_id = ANY(%(accounts)s)
            GROUP BY account_id, product_id
        ) g
        JOIN unnest(%(accounts)s::bigint[], %(invoices)s::bigint[], %(names)s::text[])
            AS m(account_id, invoice_id, account_name) ON m.account_id = g.account_id
        JOIN {Product._meta.db_table} p ON p.id = g.product_id
    """  # noqa: S608 (table names from the models; values are parameters)
    params = {
        "factor": factor,
        "month": month,
        "accounts": [invoice.bill_to_id for invoice in invoices],
        "invoices": [invoice.pk for invoice in invoices],
        "names": [invoice.bill_to.name for invoice in invoices],
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


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


def close_plan(run: CloseRun, batch_size: int | None = None) -> tuple[list[list[int]], list[int]]:
    """How the run's parties not done yet are closed: (batches of up to `batch_size` parties without
    roll-up accounts, in pk order; managers with roll-up accounts, each closed alone)."""
    size = batch_size or settings.CLOSE_BATCH_SIZE
    pending = run.items.exclude(status=CloseItem.Status.DONE).values("account_id")
    parties = Account.objects.filter(pk__in=pending).annotate(rollups=has_rollups()).order_by("pk")
    plain, alone = [], []
    for pk, rollups in parties.values_list("pk", "rollups"):
        (alone if rollups else plain).append(pk)
    return [plain[i : i + size] for i in range(0, len(plain), size)], alone


def close_item(*, run_id: int, account_id: int) -> Invoice:
    run = CloseRun.objects.get(pk=run_id)
    CloseItem.objects.filter(run=run, account_id=account_id).update(attempts=F("attempts") + 1)
    invoice = _close_one(run, account_id)
    _finish(run)
    return invoice


def _close_one(run: CloseRun, account_id: int) -> Invoice:
    account = Account.objects.select_related("manager").get(pk=account_id)
    invoice = invoice_party(account=account, month=run.period)
    CloseItem.objects.filter(run=run, account_id=account_id).update(status=CloseItem.Status.DONE, error="")
    return invoice


def close_items(*, run_id: int, account_ids: list[int]) -> dict[int, Exception]:
    """A batch of the run's parties (none with roll-up accounts), closed set-based in one
    transaction with their close items; if that fails, each party alone (its own transaction, the
    `invoice_party` path), so one bad party never holds back the others. Each attempt counts once
    per party. Returns the parties that failed, with their errors (recorded on their items)."""
    run = CloseRun.objects.get(pk=run_id)
    ids = sorted(set(account_ids))
    CloseItem.objects.filter(run=run, account_id__in=ids).update(attempts=F("attempts") + 1)
    failures: dict[int, Exception] = {}
    try:
        _close_batch(run, ids)
    except Exception as failure:
        logger.warning("Close batch of %d part(ies) failed (%r); closing them one by one", len(ids), failure)
        for account_id in ids:
            try:
                _close_one(run, account_id)
            except Exception as error:
                record_failure(run_id=run.pk, account_id=account_id, error=repr(error))
                failures[account_id] = error
    _finish(run)
    return failures


@transaction.atomic
def _close_batch(run: CloseRun, account_ids: list[int]) -> dict[int, Invoice]:
    accounts = list(Account.objects.filter(pk__in=account_ids).order_by("pk"))
    invoices = invoice_parties(accounts=accounts, month=run.period)
    CloseItem.objects.filter(run=run, account_id__in=account_ids).update(status=CloseItem.Status.DONE, error="")
    return invoices


def _finish(run: CloseRun) -> None:
    # The run is finished when no item is left undone: one UPDATE, whichever task is the last.
    undone = CloseItem.objects.filter(run=OuterRef("pk")).exclude(status=CloseItem.Status.DONE)
    CloseRun.objects.filter(pk=run.pk, finished_at__isnull=True).exclude(Exists(undone)).update(
        finished_at=timezone.now()
    )


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
