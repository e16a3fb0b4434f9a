"""The invoice builders' PostgreSQL statements: the same rules as the portable builders of
`billing.invoices.lines`, written as INSERT ... SELECT so that a manager with thousands of roll-up
sections, its reseller invoices and a close batch's invoices need no line objects in Python."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import connection

from accounts.models import Account
from billing.invoices import lines as invoice_lines
from billing.models import (
    Invoice,
    InvoiceLine,
    MonthlyUsage,
    Product,
)
from billing.money import to_cents

# The SQL twin of `billing.invoices.lines.section_amounts`, the one rule of a section, for both
# builders below: per (account, product) a line of round(cost * factor, 2); per account a total of
# round(round(sum(cost), 2) * factor, 2) and, when the lines do not add up to it, one rounding line
# of the difference (kind 1, after the product lines). numeric is exact and its round() goes half
# away from zero, which is `to_cents` (ROUND_HALF_UP). The platform's sections are factor 1.
SECTIONS_SQL = f"""
    usage AS (
        SELECT account_id, product_id, sum(quantity) AS quantity, sum(cost) AS cost
        FROM {MonthlyUsage._meta.db_table}
        WHERE month = %(month)s AND account_id = ANY(%(accounts)s)
        GROUP BY account_id, product_id
    ), sections AS (
        SELECT account_id, round(round(sum(cost), 2) * %(factor)s, 2) AS total,
               round(round(sum(cost), 2) * %(factor)s, 2) - sum(round(cost * %(factor)s, 2)) AS rounding
        FROM usage GROUP BY account_id
    ), section_lines AS (
        SELECT u.account_id, u.product_id, 0 AS kind, p.sku, p.name || ' (' || p.unit || ')' AS description,
               u.quantity, round(u.cost * %(factor)s, 2) AS amount
        FROM usage u JOIN {Product._meta.db_table} p ON p.id = u.product_id
        UNION ALL
        SELECT account_id, NULL, 1, '', %(rounding_line)s, 0, rounding FROM sections WHERE rounding <> 0
    )
"""  # noqa: S608 (table names from the models; values are parameters)


Params = dict[str, Decimal | date | int | str | list[int] | list[str]]


def _section_params(month: date, account_ids: list[int], markup_percent: Decimal | None) -> Params:
    return {
        "month": month,
        "accounts": account_ids,
        "factor": invoice_lines.markup_factor(markup_percent),
        "rounding_line": invoice_lines.ROUNDING_LINE,
    }


def add_lines_sql(invoice: Invoice, payer: Account, month: date, account_ids: list[int]) -> Decimal:
    """`add_lines` for a manager's roll-up invoice (thousands of sections) on PostgreSQL: one
    INSERT ... SELECT of `SECTIONS_SQL` at the platform's price, no line objects in Python. Sections
    in the payer's own first, then by name and pk, lines by SKU, in code-point order (COLLATE "C",
    as Python compares strings). Returns the invoice total (the sum of the section totals)."""
    sql = f"""
        WITH {SECTIONS_SQL}, inserted AS (
            INSERT INTO {InvoiceLine._meta.db_table}
                (invoice_id, account_id, account_name, product_id, description, quantity, amount, position)
            SELECT %(invoice)s, l.account_id, a.name, l.product_id, l.description, l.quantity, l.amount,
                   row_number() OVER (ORDER BY l.account_id <> %(payer)s, a.name COLLATE "C", l.account_id,
                                      l.kind, l.sku COLLATE "C")
            FROM section_lines l JOIN {Account._meta.db_table} a ON a.id = l.account_id
            RETURNING amount
        )
        SELECT coalesce(sum(amount), 0) FROM inserted
    """  # noqa: S608 (table names from the models; values are parameters)
    params: Params = {**_section_params(month, account_ids, None), "invoice": invoice.pk, "payer": payer.pk}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (total,) = cursor.fetchone()
    return to_cents(Decimal(total))


def section_totals_sql(
    account_ids: list[int], month: date, markup_percent: Decimal | None = None
) -> dict[int, Decimal]:
    """{account id: its section's total}, the `total` of `SECTIONS_SQL` at the markup (None: the
    platform's price, what `section_lines` totals a platform section to). Accounts without usage
    in the month have no row (their total is zero)."""
    sql = f"WITH {SECTIONS_SQL} SELECT account_id, total FROM sections"  # noqa: S608 (as SECTIONS_SQL)
    with connection.cursor() as cursor:
        cursor.execute(sql, _section_params(month, account_ids, markup_percent))
        return {account_id: to_cents(Decimal(total)) for account_id, total in cursor.fetchall()}


def add_section_lines_sql(
    invoices: list[Invoice], month: date, markup_percent: Decimal | None = None
) -> dict[int, Decimal]:
    """Invoices of one section each (reseller invoices at the markup; a close batch's platform
    invoices at the platform's price, `markup_percent` None), their lines in one INSERT ... SELECT
    of `SECTIONS_SQL`: per account its product lines by SKU in code-point order, then its rounding
    line if any, positions from 1, the account's name as on the invoice (its bill-to's). What
    `section_lines` builds for each, line for line. Returns {account id: the sum of the lines
    written}, its section total (accounts without usage have no lines and no entry)."""
    sql = f"""
        WITH {SECTIONS_SQL}, inserted AS (
            INSERT INTO {InvoiceLine._meta.db_table}
                (invoice_id, account_id, account_name, product_id, description, quantity, amount, position)
            SELECT m.invoice_id, l.account_id, m.account_name, l.product_id, l.description, l.quantity, l.amount,
                   row_number() OVER (PARTITION BY l.account_id ORDER BY l.kind, l.sku COLLATE "C")
            FROM section_lines l
            JOIN unnest(%(accounts)s::bigint[], %(invoices)s::bigint[], %(names)s::text[])
                AS m(account_id, invoice_id, account_name) ON m.account_id = l.account_id
            RETURNING account_id, amount
        )
        SELECT account_id, sum(amount) FROM inserted GROUP BY account_id
    """  # noqa: S608 (table names from the models; values are parameters)
    if not invoices:
        return {}
    params: Params = {
        **_section_params(month, [invoice.bill_to_id for invoice in invoices], markup_percent),
        "invoices": [invoice.pk for invoice in invoices],
        "names": [invoice.bill_to.name for invoice in invoices],
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {account_id: to_cents(Decimal(total)) for account_id, total in cursor.fetchall()}
