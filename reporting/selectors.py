"""Read-side rules of the reports that the pages, their CSV exports and the API share."""

from __future__ import annotations

import decimal
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Case, CharField, Count, DateField, F, Q, QuerySet, Sum, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import TruncDate, TruncMonth

from accounts.models import Account
from accounts.selectors import managed_accounts_for
from billing.models import Product, UsageRecord
from billing.pricing import Prices, utc_day
from billing.usage import selectors as usage_selectors
from billing.usage.selectors import (
    GROUP_BY_ACCOUNT,
    GROUP_BY_DAY,
    GROUP_BY_MONTH,
    GROUP_BY_PRODUCT,
    AccountScope,
    UsageRow,
)

# What a destination is, from the record: a toll-free product or a North American toll-free number
# (800, 833, 844, 855, 866, 877, 888), a short code (3 to 8 digits without +), any other number.
TOLL_FREE_NUMBER = r"^\+?1(800|833|844|855|866|877|888)[0-9]{7}$"
SHORT_CODE = r"^[0-9]{3,8}$"
DESTINATION_TYPE = Case(
    When(Q(product__sku__contains="tollfree") | Q(destination__regex=TOLL_FREE_NUMBER), then=Value("toll_free")),
    When(destination__regex=SHORT_CODE, then=Value("short_code")),
    When(~Q(destination=""), then=Value("long_code")),
    default=Value(""),
    output_field=CharField(),
)
# A dimension of the records -> its output fields, each read from a field path or an expression.
RECORD_DIMENSIONS: dict[str, dict[str, str | Combinable]] = {
    "date": {"date": TruncDate("started_at", tzinfo=UTC)},
    "month": {"month": TruncMonth("started_at", output_field=DateField(), tzinfo=UTC)},
    "product": {"product": "product__sku", "product_name": "product__name", "unit": "product__unit"},
    "account": {"account_id": "account__public_id", "account_name": "account__name"},
    "direction": {"direction": "direction"},
    "country": {"country": "country"},
    "destination_type": {"destination_type": DESTINATION_TYPE},
}


def report_accounts(*, account: Account, managed: bool, only: int | None = None) -> AccountScope:
    """Which accounts (as pks) a usage report of `account` covers: the account itself; or, for a
    manager asking for its managed accounts, all of them, or only `only` (the pk of one of them the
    caller has already found among them). All of them is a subquery, not 3,000 ids: the database joins
    the daily totals to the manager's accounts. Only a manager has managed accounts to report on."""
    if not managed:
        return [account.pk]
    if not account.is_manager:
        raise PermissionDenied("Only a manager account has managed accounts to report on.")
    if only is not None:
        return [only]
    return managed_accounts_for(account).order_by().values("pk")


def record_totals(
    *,
    accounts: AccountScope,
    since: datetime,
    until: datetime,
    products: Sequence[Product] | None,
    dimensions: Sequence[str],
    prices: Prices | None = None,
) -> list[dict[str, Any]]:
    """Count, quantity and exact cost of the usage records that started at or after `since` and
    before `until`, per group of `dimensions` (keys of RECORD_DIMENSIONS), in one GROUP BY query.
    Each record counts whole, in the window its start falls in. Reports read the records only for
    what the daily totals cannot tell: a window that is not whole UTC days, or a record's fields.
    The cost is at `prices` (billing.pricing.prices_for the report's account; None: the stored
    cost): where they are not the stored cost, the query also groups by product and month (each
    month has one price per product) and the groups are added up here."""
    records = UsageRecord.objects.filter(account__in=accounts, started_at__gte=since, started_at__lt=until)
    if products is not None:
        records = records.filter(product__in=products)
    fields = {name: source for d in dimensions for name, source in RECORD_DIMENSIONS[d].items()}
    paths = {source: name for name, source in fields.items() if isinstance(source, str)}
    expressions = {name: source for name, source in fields.items() if not isinstance(source, str)}
    repriced = prices is not None and prices.repriced
    if repriced:
        expressions = {**expressions, PRICE_PRODUCT: F("product_id"), PRICE_MONTH: _RECORD_MONTH}
    grouped = records.values(*paths, **expressions).annotate(
        records_count=Count("id"), quantity_sum=Sum("quantity"), cost_sum=Sum("cost")
    )
    rows = [
        {
            **{paths.get(key, key): value for key, value in row.items() if not key.endswith(("_count", "_sum"))},
            "count": row["records_count"],
            "quantity": row["quantity_sum"],
            "cost": row["cost_sum"],
        }
        for row in grouped.order_by()
    ]
    return _repriced_groups(rows, prices) if repriced and prices is not None else rows


PRICE_PRODUCT, PRICE_MONTH = "price_product", "price_month"
_RECORD_MONTH = TruncMonth("started_at", output_field=DateField(), tzinfo=UTC)


def _repriced_groups(rows: Iterable[dict[str, Any]], prices: Prices) -> list[dict[str, Any]]:
    """Rows grouped also by (product, month) at `prices`, added up to their groups."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        product_id, month = row.pop(PRICE_PRODUCT), _day(row.pop(PRICE_MONTH))
        row["cost"] = prices.cost(product_id, month, row["quantity"], row["cost"])
        key = tuple((name, value) for name, value in row.items() if name not in ("count", "quantity", "cost"))
        if key in merged:
            for metric in ("count", "quantity", "cost"):
                merged[key][metric] += row[metric]
        else:
            merged[key] = row
    return list(merged.values())


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def priced_summary(
    rows: list[UsageRow],
    *,
    prices: Prices,
    accounts: AccountScope,
    start: date,
    end: date,
    product: Product | None,
    group_by: str,
) -> list[UsageRow]:
    """`rows` of `billing.usage.selectors.usage_summary` with each group's cost at `prices`, the
    prices the report's account pays (billing.pricing.prices_for): unchanged where that is the
    stored cost (the platform's price); else from one more grouped query over the daily totals per
    product and month (per day when grouped by day), priced by `Prices.cost`."""
    if not prices.repriced or not rows:
        return rows
    costs = _priced_costs(prices=prices, accounts=accounts, start=start, end=end, product=product, group_by=group_by)
    return [replace(row, cost=costs.get(row.key, Decimal(0))) for row in rows]


def _priced_costs(
    *, prices: Prices, accounts: AccountScope, start: date, end: date, product: Product | None, group_by: str
) -> dict[date | str, Decimal]:
    daily = usage_selectors.daily_usage(accounts=accounts, start=start, end=end, product=product)
    period = F("day") if group_by == GROUP_BY_DAY else TruncMonth("day", output_field=DateField())
    grouped = (
        daily.annotate(period=period)
        .values("period", "product_id", "product__sku", "account__public_id")
        .annotate(q=Sum("quantity"), c=Sum("cost"))
        .order_by()
    )
    costs: dict[date | str, Decimal] = defaultdict(Decimal)
    for row in grouped:
        day = _day(row["period"])
        key: date | str
        if group_by == GROUP_BY_PRODUCT:
            key = row["product__sku"]
        elif group_by == GROUP_BY_ACCOUNT:
            key = str(row["account__public_id"])
        else:
            key = day.replace(day=1) if group_by == GROUP_BY_MONTH else day
        costs[key] += prices.cost(row["product_id"], day, row["q"], row["c"])
    return costs


def priced_records(records: Iterable[UsageRecord], prices: Prices) -> list[UsageRecord]:
    """A page of records with the rate and cost the account pays (not saved: a record's stored
    rate and cost are the platform's, for good)."""
    page = list(records)
    if prices.repriced:
        for record in page:
            day = utc_day(record.started_at)
            record.rate = prices.unit_price(record.product_id, day, record.rate)
            record.cost = prices.cost(record.product_id, day, record.quantity, record.cost)
    return page


def priced_record_rows(
    rows: Iterable[tuple[Any, ...]], fields: Sequence[str], prices: Prices
) -> Iterator[tuple[Any, ...]]:
    """Streamed record tuples of `fields` (+ product_id, started_at at the end, taken off here)
    with their `rate` and `cost` at `prices`."""
    rate_at, cost_at = fields.index("rate"), fields.index("cost")
    quantity_at = fields.index("quantity")
    for row in rows:
        values, (product_id, started_at) = list(row[:-2]), row[-2:]
        day = utc_day(started_at)
        values[rate_at] = prices.unit_price(product_id, day, values[rate_at])
        values[cost_at] = prices.cost(product_id, day, values[quantity_at], values[cost_at])
        yield tuple(values)


# --- A report grouped by managed account, a page at a time ---------------------------------------------------
# A manager's report by account has a group per managed account (3,000 of them): the database groups,
# counts, totals, sorts and pages them, and ranks the chart's largest, in one query; Python sees only
# the page's rows and the chart's. Only at the stored cost (`Prices.repriced` false, as for every
# manager): a repriced cost is known per product and month only in Python.

CHART_COST = "cost"  # the chart's value per account: its cost,
CHART_QUANTITY = "quantity"  # its quantity (one product, hence one unit),
CHART_UNIT = "unit"  # or its quantity of the products of one unit
ACCOUNT_ORDER = {"label": "name", "quantity": "q", "records": "r", "cost": "c"}  # table column -> SQL


@dataclass(frozen=True)
class AccountGroups:
    rows: list[UsageRow]  # the window asked for, in the order asked for
    groups: int  # every account with usage in the range
    totals: usage_selectors.UsageTotals
    top: list[tuple[str, Decimal]]  # the chart's largest groups, (name, value) largest first, none zero
    top_groups: int  # the groups whose chart value is not zero
    top_total: Decimal  # the sum of every group's chart value


def account_groups(
    *,
    accounts: AccountScope,
    start: date,
    end: date,
    product: Product | None,
    order: Sequence[tuple[str, bool]] = (),
    offset: int = 0,
    limit: int = 100,
    chart: str = CHART_COST,
    unit: str = "",
    top: int = 0,
) -> AccountGroups:
    """The groups of `usage_summary(group_by=account)` from `offset`, `limit` of them, ordered by
    `order` ((column of ACCOUNT_ORDER, descending)) and then as usage_summary orders them (name, then
    public id, by code point: what Python's sort of the whole list gave), with the count and totals
    of all groups, and the `top` largest by the `chart` value: one query. Months wholly inside the
    range are read from the monthly totals, the days at its edges from the daily totals."""
    covering = usage_selectors.totals_covering(accounts=accounts, start=start, end=end, product=product)
    parts: list[QuerySet[Any]] = [part for part in covering if part is not None]
    sums: dict[str, Any] = {"q": Sum("quantity"), "c": Sum("cost"), "r": Sum("records")}
    if chart == CHART_UNIT:  # the quantity of the unit's products alone, for the chart
        sums["u"] = Sum("quantity", filter=Q(product__unit=unit))
    sql, params = [], []
    for part in parts:
        grouped = part.values("account_id").annotate(**sums).values_list("account_id", *sums).order_by()
        part_sql, part_params = grouped.query.sql_with_params()
        sql.append(f"SELECT part.*{'' if 'u' in sums else ', 0'} FROM ({part_sql}) part")  # noqa: S608 (ORM's SQL)
        params.extend(part_params)
    quote = connection.ops.quote_name
    name = f"a.{quote('name')}" + (' COLLATE "C"' if connection.vendor == "postgresql" else "")
    public_id = f"a.{quote('public_id')}"
    columns = {"name": name, "q": "g.q", "r": "g.r", "c": "g.c"}
    page_order = ", ".join(
        [*(f"{columns[ACCOUNT_ORDER[c]]} {'DESC' if desc else 'ASC'}" for c, desc in order), name, public_id]
    )
    group = (  # the monthly and the daily totals of an account added up
        "SELECT account_id, SUM(q) AS q, SUM(c) AS c, SUM(r) AS r, COALESCE(SUM(u), 0) AS u"
        " FROM parts GROUP BY account_id"
        if len(sql) > 1
        else "SELECT account_id, q, c, r, COALESCE(u, 0) AS u FROM parts"
    )
    value = {CHART_COST: "g.c", CHART_QUANTITY: "g.q", CHART_UNIT: "g.u"}[chart]
    query = f"""
        WITH parts (account_id, q, c, r, u) AS ({" UNION ALL ".join(sql)}),
        g AS ({group}),
        n AS (
            SELECT {public_id} AS public_id, {name} AS name, g.q, g.c, g.r, {value} AS v,
                ROW_NUMBER() OVER (ORDER BY {page_order}) AS page_n,
                ROW_NUMBER() OVER (
                    ORDER BY CASE WHEN {value} = 0 THEN 1 ELSE 0 END, {value} DESC, {name}, {public_id}
                ) AS top_n,
                COUNT(*) OVER () AS groups, SUM(g.q) OVER () AS tq, SUM(g.c) OVER () AS tc,
                SUM(g.r) OVER () AS tr, SUM(CASE WHEN {value} <> 0 THEN 1 ELSE 0 END) OVER () AS top_groups,
                SUM({value}) OVER () AS top_total
            FROM g INNER JOIN {quote(Account._meta.db_table)} a ON a.{quote("id")} = g.account_id
        )
        SELECT public_id, name, q, c, r, v, page_n, top_n, groups, tq, tc, tr, top_groups, top_total
        FROM n WHERE page_n = 1 OR (page_n > %s AND page_n <= %s) OR top_n <= %s
        ORDER BY page_n"""  # noqa: S608 (the ORM's SQL, names and columns of ours; values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(query, [*params, offset, offset + limit, top])
        found = cursor.fetchall()
    if not found:
        zero = Decimal(0)
        return AccountGroups([], 0, usage_selectors.UsageTotals(zero, 0, zero), [], 0, zero)
    rows, ranked = [], []
    for public, label, q, c, r, v, page_n, top_n, *_ in found:
        if offset < page_n <= offset + limit:
            rows.append(UsageRow(key=str(_uuid(public)), label=label, quantity=_dec(q), records=r or 0, cost=_dec(c)))
        if top_n <= top and _dec(v):
            ranked.append((top_n, label, _dec(v)))
    groups, tq, tc, tr, top_groups, top_total = found[0][8:]
    return AccountGroups(
        rows=rows,
        groups=groups,
        totals=usage_selectors.UsageTotals(quantity=_dec(tq), records=int(tr or 0), cost=_dec(tc)),
        top=[(label, v) for _, label, v in sorted(ranked)],
        top_groups=int(top_groups or 0),
        top_total=_dec(top_total),
    )


def unit_most_used(*, accounts: AccountScope, start: date, end: date) -> str:
    """The unit of the most usage records of `accounts` in the range (charts.units_by_use), "" if none."""
    covering = usage_selectors.totals_covering(accounts=accounts, start=start, end=end, product=None)
    parts: list[QuerySet[Any]] = [part for part in covering if part is not None]
    records: dict[str, int] = defaultdict(int)
    for part in parts:
        for unit, count in part.values_list("product__unit").annotate(n=Sum("records")).order_by():
            records[unit] += count or 0
    return min(records, key=lambda unit: (-records[unit], unit), default="")


_DECIMAL = decimal.Context(prec=15)  # what Django makes of a float sum on SQLite


def _dec(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return _DECIMAL.create_decimal_from_float(value)
    return Decimal(value)


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
