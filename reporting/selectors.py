"""Read-side rules of the reports that the pages, their CSV exports and the API share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Case, CharField, Count, DateField, F, Q, Sum, Value, When
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
