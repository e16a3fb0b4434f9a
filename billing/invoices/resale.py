"""Reseller invoices: a manager's invoices to its roll-up managed accounts, issued with its own
platform invoice at the close."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from accounts.models import Account
from billing import periods, pricing
from billing.invoices import lines as invoice_lines
from billing.invoices import sql as invoice_sql
from billing.models import (
    Invoice,
    InvoiceLine,
    Product,
)


def resale_issuer_key(manager: Account) -> str:
    return f"account:{manager.pk}"


def markup_of(manager: Account) -> Decimal:
    return pricing.markup_of(manager)


def _resale_recipients(manager: Account, month: date, used: set[int]) -> list[Account]:
    """The managed accounts billed by the manager by roll-up in the month: those that existed in it
    (and are not cancelled) or had usage in it, by name."""
    existed = Account.objects.open_before(periods.month_start(periods.next_month(month)))
    rollups = Account.objects.rollups_of(manager, month)
    return list(rollups.filter(Q(pk__in=existed.values("pk")) | Q(pk__in=used)).order_by("name", "pk"))


def issue_resale_invoices(manager: Account, month: date, *, sql: bool | None = None) -> list[Invoice]:
    """The manager's invoices to its roll-up managed accounts for the month, at its resale prices
    (`billing.pricing`: the resale rates in force in the month, else the markup in force now over
    the platform's price; without resale rates each invoice is its account's section of the
    manager's platform invoice at the markup, by `lines.section_amounts`), finalized, numbered
    gap-free in the manager's own sequence. Written in bulk inside the transaction that issues the
    manager's platform invoice, so the two exist together or not at all; the unique constraint on
    (issuer, bill-to, period) is the last line of defence. On PostgreSQL the totals come from one
    grouped query and the lines are written by one INSERT ... SELECT (no line objects in Python);
    elsewhere they are built here."""
    markup = markup_of(manager)
    resale_rates = pricing.resale_timelines(manager.pk)
    # Per-product resale rates in force this month: priced here by `pricing.Prices.section` (the
    # SQL builder knows the markup alone); one grouped query and bulk writes all the same.
    in_force = any(pricing.rate_in(timeline, month) is not None for timeline in resale_rates.values())
    in_sql = (connection.vendor == "postgresql" if sql is None else sql) and not in_force
    sections: dict[int, list[InvoiceLine]] = {}
    if in_sql:
        rollup_ids = list(Account.objects.rollups_of(manager, month).values_list("pk", flat=True))
        totals = invoice_sql.section_totals_sql(rollup_ids, month, markup)
    else:
        rollups = {a.pk: a for a in Account.objects.rollups_of(manager, month)}
        products = Product.objects.in_bulk()
        totals = {}
        for pk, rows in invoice_lines.usage_rows(list(rollups), month).items():
            prices = pricing.Prices(rollups[pk], markup, resale_rates)
            sections[pk], totals[pk] = resale_section_lines(prices, month, rows, products)
    recipients = _resale_recipients(manager, month, set(totals))
    if not recipients:
        return []
    now = timezone.now()
    numbers = invoice_lines.next_numbers(resale_issuer_key(manager), len(recipients), prefix="R")
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
    invoice_lines.stamp_terms(invoices, issuer=manager)  # before they are written: no UPDATE after
    Invoice.objects.bulk_create(invoices)  # returns the pks (PostgreSQL, SQLite)
    if in_sql:
        invoice_sql.add_section_lines_sql(invoices, month, markup)
        return invoices
    lines = []
    for invoice in invoices:
        for line in sections.get(invoice.bill_to_id, []):
            line.invoice_id = invoice.pk
            lines.append(line)
    InvoiceLine.objects.bulk_create(lines, batch_size=5000)
    return invoices


def resale_section_lines(
    prices: pricing.Prices, month: date, rows: list[tuple[int, Decimal, Decimal]], products: dict[int, Product]
) -> tuple[list[InvoiceLine], Decimal]:
    """A reseller invoice's lines at the account's prices (`pricing.Prices.section`): a line per
    product by SKU, then at most one rounding line; and its total. Without resale rates in force
    these are `lines.section_lines` at the markup, line for line."""
    account = prices.account
    ordered = sorted(rows, key=lambda r: products[r[0]].sku)
    amounts = prices.section(ordered, month)
    lines = [
        InvoiceLine(
            account_id=account.pk,
            account_name=account.name,
            product=products[product_id],
            position=position,
            description=f"{products[product_id].name} ({products[product_id].unit})",
            quantity=quantity,
            amount=amount,
        )
        for position, ((product_id, quantity, _), amount) in enumerate(zip(ordered, amounts.lines, strict=True), 1)
    ]
    if amounts.rounding:
        lines.append(
            InvoiceLine(
                account_id=account.pk,
                account_name=account.name,
                position=len(lines) + 1,
                description=invoice_lines.ROUNDING_LINE,
                amount=amounts.rounding,
            )
        )
    return lines, amounts.total
