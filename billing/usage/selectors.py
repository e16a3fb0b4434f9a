"""Read-side queries over usage: what reports, exports and (later) the API read.

Reports read the daily totals (`DailyUsage`), never the raw records: a month for a manager with
3,000 managed accounts is at most accounts x products x days rows, summed in the database in one
query. Only the usage detail page and its export read `UsageRecord`, a page (or a stream) at a time.

`accounts` is either a list of account ids or a queryset of accounts; a queryset becomes a
subquery (`account_id IN (SELECT id ... WHERE manager_id = ...)`), so a manager's 3,000 managed
accounts never travel to Python and back as a list of ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth

from accounts.models import Account
from billing.models import DailyUsage, MonthlyUsage, Product, UsageRecord

AccountScope = QuerySet[Account, Any] | Sequence[int]  # accounts (or their pks as a subquery), or pks

GROUP_BY_DAY = "day"
GROUP_BY_MONTH = "month"
GROUP_BY_PRODUCT = "product"
GROUP_BY_ACCOUNT = "account"
GROUPINGS = (GROUP_BY_DAY, GROUP_BY_MONTH, GROUP_BY_PRODUCT, GROUP_BY_ACCOUNT)

# The grouping columns per grouping (values() of the daily totals), and the row order.
_GROUP_FIELDS = {
    GROUP_BY_DAY: (("period",), ("period",)),
    GROUP_BY_MONTH: (("period",), ("period",)),
    GROUP_BY_PRODUCT: (("product__sku", "product__name", "product__unit"), ("product__name", "product__sku")),
    # Grouped by the id alone (names joined afterwards): grouping 300,000+ daily rows by joined
    # text columns costs PostgreSQL half as much again.
    GROUP_BY_ACCOUNT: (("account_id",), ("account_id",)),
}


@dataclass(frozen=True)
class UsageRow:
    """One group of a usage report. `key` is the day, the first day of the month, the product's
    sku or the account's public id; `label` is how a person reads it."""

    key: date | str
    label: str
    quantity: Decimal
    records: int
    cost: Decimal
    unit: str = ""


@dataclass(frozen=True)
class UsageTotals:
    quantity: Decimal
    records: int
    cost: Decimal


def report_products() -> list[Product]:
    """Every product a report may filter on, inactive ones too: their usage stays reportable."""
    return list(Product.objects.order_by("name", "sku"))


def daily_usage(*, accounts: AccountScope, start: date, end: date, product: Product | None) -> QuerySet[DailyUsage]:
    """Daily totals of `accounts` from `start` to `end` (UTC days, both included)."""
    rows = DailyUsage.objects.filter(account__in=accounts, day__gte=start, day__lte=end)
    return rows.filter(product=product) if product is not None else rows


def usage_summary(
    *, accounts: AccountScope, start: date, end: date, product: Product | None, group_by: str
) -> list[UsageRow]:
    """Quantity, record count and exact cost per group. Calendar months wholly inside the range are
    read from the monthly totals, the days at its edges from the daily totals (at most two queries;
    grouping by day reads days only)."""
    if group_by not in GROUPINGS:
        raise ValueError(f"Unknown grouping {group_by!r}; expected one of {', '.join(GROUPINGS)}.")
    fields, order = _GROUP_FIELDS[group_by]
    monthly, days = totals_covering(
        accounts=accounts, start=start, end=end, product=product, months=group_by != GROUP_BY_DAY
    )
    parts: list[QuerySet[Any]] = []
    if monthly is not None:
        parts.append(monthly.annotate(period=F("month")))
    if days is not None:
        parts.append(days.annotate(period=TruncMonth("day") if group_by == GROUP_BY_MONTH else F("day")))
    grouped = _merge(
        part.values(*fields).annotate(quantity_sum=Sum("quantity"), cost_sum=Sum("cost"), records_sum=Sum("records"))
        for part in parts
    )
    if group_by == GROUP_BY_ACCOUNT:
        grouped = _with_account_names(grouped, accounts)
    else:
        grouped.sort(key=lambda row: tuple(_sortable(row[f]) for f in order))
    return [_usage_row(group_by, row) for row in grouped]


def totals_covering(
    *, accounts: AccountScope, start: date, end: date, product: Product | None, months: bool = True
) -> tuple[QuerySet[MonthlyUsage] | None, QuerySet[DailyUsage] | None]:
    """The totals rows that cover start..end once each: the monthly totals of the calendar months
    wholly inside it (with `months`) and the daily totals of the days outside those; None for a
    part with nothing to read."""
    whole = _whole_months(start, end) if months else None
    days = daily_usage(accounts=accounts, start=start, end=end, product=product)
    if whole is None:
        return None, days
    first, after = whole
    monthly = MonthlyUsage.objects.filter(account__in=accounts, month__gte=first, month__lt=after)
    monthly = monthly.filter(product=product) if product is not None else monthly
    if start < first or end + timedelta(days=1) > after:
        return monthly, days.filter(Q(day__lt=first) | Q(day__gte=after))
    return monthly, None


def _whole_months(start: date, end: date) -> tuple[date, date] | None:
    """[first, after): the first days of the calendar months wholly inside start..end, or None."""
    first = start if start.day == 1 else (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    after = (end + timedelta(days=1)).replace(day=1)
    return (first, after) if first < after else None


def _merge(parts: Iterable[QuerySet[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Adds up rows of the same group coming from the monthly and the daily totals."""
    queries = list(parts)
    if len(queries) == 1:
        return list(queries[0].order_by())
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for part in queries:
        for row in part.order_by():
            key = tuple(_sortable(v) for k, v in row.items() if not k.endswith("_sum"))
            if key in merged:
                for name in ("quantity_sum", "cost_sum", "records_sum"):
                    merged[key][name] = (merged[key][name] or 0) + (row[name] or 0)
            else:
                merged[key] = dict(row)
    return list(merged.values())


def _sortable(value: Any) -> Any:  # a value of any column, comparable with its like
    return value.date() if isinstance(value, datetime) else value


def _with_account_names(rows: list[dict[str, Any]], scope: AccountScope) -> list[dict[str, Any]]:
    """Adds each row's account public id and name (one query over the scope), ordered by name."""
    accounts = (
        Account.objects.filter(pk__in=scope)
        if isinstance(scope, QuerySet)
        else Account.objects.filter(pk__in=[r["account_id"] for r in rows])
    )
    names = {pk: (public_id, name) for pk, public_id, name in accounts.values_list("pk", "public_id", "name")}
    for row in rows:
        row["account__public_id"], row["account__name"] = names[row["account_id"]]
    return sorted(rows, key=lambda r: (r["account__name"], str(r["account__public_id"])))


def _usage_row(group_by: str, row: Mapping[str, Any]) -> UsageRow:
    if group_by == GROUP_BY_PRODUCT:
        key, label, unit = row["product__sku"], row["product__name"], row["product__unit"]
    elif group_by == GROUP_BY_ACCOUNT:
        key, label, unit = str(row["account__public_id"]), row["account__name"], ""
    else:
        key, unit = _as_date(row["period"]), ""
        label = key.strftime("%Y-%m") if group_by == GROUP_BY_MONTH else key.isoformat()
    return UsageRow(
        key=key,
        label=label,
        quantity=row["quantity_sum"] or Decimal(0),
        records=row["records_sum"] or 0,
        cost=row["cost_sum"] or Decimal(0),
        unit=unit,
    )


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def usage_totals(rows: Sequence[UsageRow]) -> UsageTotals:
    """The totals of a report: the sum of its groups (every grouping partitions the same totals)."""
    return UsageTotals(
        quantity=sum((r.quantity for r in rows), Decimal(0)),
        records=sum(r.records for r in rows),
        cost=sum((r.cost for r in rows), Decimal(0)),
    )


def has_any_usage(*, accounts: AccountScope) -> bool:
    """Whether these accounts ever had usage: tells "nothing yet" from "nothing in this range"."""
    return DailyUsage.objects.filter(account__in=accounts).exists()


# --- Individual records -------------------------------------------------------------------------------

Cursor = tuple[datetime, int]  # (started_at, id) of the last record seen, newest first


def usage_records(*, accounts: AccountScope, start: date, end: date, product: Product | None) -> QuerySet[UsageRecord]:
    """Records of `accounts` that started from `start` to `end` (UTC days, both included), newest
    first, ordered by (started_at, id) so that keyset pagination never skips or repeats one."""
    since = datetime.combine(start, time.min, tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    records = UsageRecord.objects.filter(account__in=accounts, started_at__gte=since, started_at__lt=until)
    if product is not None:
        records = records.filter(product=product)
    return records.order_by("-started_at", "-id")


def usage_records_page(
    *,
    accounts: AccountScope,
    start: date,
    end: date,
    product: Product | None,
    after: Cursor | None,
    size: int,
) -> tuple[list[UsageRecord], Cursor | None]:
    """One page of records after the cursor (one query), and the cursor of the next page, if any."""
    records = usage_records(accounts=accounts, start=start, end=end, product=product)
    if after is not None:
        moment, pk = after
        # (started_at, id) < (moment, pk), written so the first term bounds an index range scan.
        records = records.filter(Q(started_at__lte=moment) & (Q(started_at__lt=moment) | Q(id__lt=pk)))
    page = list(records.select_related("product", "account")[: size + 1])
    if len(page) <= size:
        return page, None
    page = page[:size]
    return page, (page[-1].started_at, page[-1].pk)


def usage_record_rows(
    *, accounts: AccountScope, start: date, end: date, product: Product | None, fields: Sequence[str]
) -> Iterator[tuple[Any, ...]]:
    """Every matching record as a tuple of `fields`, streamed from the database in chunks (a
    server-side cursor on PostgreSQL): memory stays constant whatever the number of records."""
    records = usage_records(accounts=accounts, start=start, end=end, product=product)
    return records.values_list(*fields).iterator(chunk_size=2000)
