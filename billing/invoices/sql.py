"""The invoice builders' PostgreSQL statements: the same rules as the portable builders of
`billing.invoices.lines`, written as INSERT ... SELECT so that a manager with thousands of roll-up
sections needs no line objects in Python."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import connection

from accounts.models import Account
from billing.models import (
    Invoice,
    InvoiceLine,
    MonthlyUsage,
    Product,
)
from billing.money import to_cents


def add_lines_sql(invoice: Invoice, payer: Account, month: date, account_ids: list[int]) -> Decimal:
    """`add_lines` for a manager's roll-up invoice (thousands of sections) on PostgreSQL: one
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


def resale_totals_sql(rollup_ids: list[int], month: date, factor: Decimal) -> dict[int, Decimal]:
    """{roll-up account id: the sum of its resale lines}, each line round(cost * factor, 2): numeric
    is exact and rounds half away from zero, which is `resale_amount` (half up) for these costs."""
    sql = f"""
        SELECT g.account_id, sum(round(g.cost * %(factor)s, 2)) FROM (
            SELECT mu.account_id, mu.product_id, sum(mu.cost) AS cost
            FROM {MonthlyUsage._meta.db_table} mu
            WHERE mu.account_id = ANY(%(accounts)s) AND mu.month = %(month)s
            GROUP BY mu.account_id, mu.product_id
        ) g GROUP BY g.account_id
    """  # noqa: S608 (table names from the models; values are parameters)
    params: dict[str, Decimal | date | list[int]] = {"factor": factor, "accounts": rollup_ids, "month": month}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {account_id: to_cents(Decimal(total)) for account_id, total in cursor.fetchall()}


def add_resale_lines_sql(invoices: list[Invoice], month: date, factor: Decimal) -> None:
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
    params: dict[str, Decimal | date | list[int] | list[str]] = {
        "factor": factor,
        "month": month,
        "accounts": [invoice.bill_to_id for invoice in invoices],
        "invoices": [invoice.pk for invoice in invoices],
        "names": [invoice.bill_to.name for invoice in invoices],
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
