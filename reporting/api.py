"""v2 API: usage reports (`GET /usage_reports`, `GET /usage_reports/options`), in the shape of
Telnyx's usage reports API so that its SDK's `client.usage_reports.list(...)` works unchanged.

The report is the one the usage report page shows: `billing.usage.selectors.usage_summary` over the
daily and monthly totals (never the raw records), money only where `can_see_pricing` says so, CSV
through `reporting.exports` (streamed, formula-escaped).

Query parameters (lists are comma-separated, as the SDK sends them, or repeated):

- `product` (required): a product sku (`voice.outbound`; see `/usage_reports/options`), or `all`.
- `dimensions` (required): exactly one of `date` (per UTC day), `month`, `product`, `account`
  (per account; with `managed_accounts=true`, per managed account). The totals are kept per
  account, product and day, so record fields (direction, country...) are no dimensions here.
- `metrics` (required): any of `count` (number of usage records), `quantity` (summed quantity,
  in the product's unit) and `cost` (exact, USD). `cost` only for an account that may see pricing:
  asking for it with a hidden-pricing account's key is a 403, never a silent zero.
- `start_date` (inclusive), `end_date` (exclusive), as Telnyx: `2026-11-01T00:00:00Z`, or a bare
  date meaning its 00:00 UTC. Usage is totalled per UTC day, so a time must be UTC midnight (422
  otherwise: no silently widened range). Both or neither; or instead `date_range` = `today`,
  `yesterday`, `this_month`, `last_month`, `last_<N>_days` or `last_<N>_weeks` (the N days or
  weeks up to and including today). Neither: this month to date. At most 31 days (422 beyond).
- `managed_accounts=true` (manager keys only; 403 for any other key): the aggregate of the
  manager's managed accounts instead of its own usage.
- `format` = `json` (default: paged with `page[number]`, `page[size]` and the usual `meta`) or
  `csv` (every row, streamed; paging does not apply).
- `sort`: the dimension or requested metrics, `-` for descending (`sort=-quantity`); default:
  the page's order (by date, month, product name or account name).
- `filter` / `filter[...]`: refused (422); the totals have no record fields to filter on.

Each row: `record_type: "usage_report"`, `product` (the sku, or `all`), the dimension's fields
(`date`; `month` as `YYYY-MM`; `product`, `product_name`, `unit`; `account_id`, `account_name`),
`unit` when one product is asked for, the metrics (`count` an integer, `quantity` and `cost`
decimal strings) and `currency` with `cost`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.http import JsonResponse
from django.http.response import HttpResponseBase

from accounts.api_access import ApiRequest, key_account
from accounts.models import Account
from accounts.permissions import can_see_pricing
from billing.models import Product
from billing.usage import selectors
from billing.usage.selectors import GROUP_BY_ACCOUNT, GROUP_BY_DAY, GROUP_BY_MONTH, GROUP_BY_PRODUCT, UsageRow
from portal.api import ApiError, api_view, invalid, page, query_bool
from reporting import exports
from reporting.forms import today_utc
from reporting.selectors import report_accounts

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

MAX_RANGE_DAYS = 31
ALL_PRODUCTS = "all"
CURRENCY = "USD"  # as the report's CSV export: every rate is in USD
DIMENSIONS = {"date": GROUP_BY_DAY, "month": GROUP_BY_MONTH, "product": GROUP_BY_PRODUCT, "account": GROUP_BY_ACCOUNT}
METRICS = ("count", "quantity", "cost")
PRICED_METRICS = {"cost"}
PARAMETERS = {
    "product",
    "dimensions",
    "metrics",
    "start_date",
    "end_date",
    "date_range",
    "format",
    "managed_accounts",
    "sort",
    "page[number]",
    "page[size]",
}
_LAST_N = re.compile(r"^last_([0-9]{1,3})_(days|weeks)$")
HIDDEN_PRICING = (
    "This account's pricing is hidden, so its usage reports carry no cost: ask for the count and quantity metrics."
)


@api_view("GET")
def usage_reports(request: ApiRequest) -> HttpResponseBase:
    account = key_account(request)
    _refuse_unknown_parameters(request)
    product = _product(request.GET.get("product"), required=True)
    dimension = _dimension(request)
    metrics = _metrics(request, account)
    order = _sort(request, dimension, metrics)
    output = request.GET.get("format", "json")
    if output not in ("json", "csv"):
        raise invalid("format", "format must be json or csv.", query=True)
    first, last = _days(request)
    rows = selectors.usage_summary(
        accounts=report_accounts(account=account, managed=query_bool(request, "managed_accounts")),
        start=first,
        end=last,
        product=product,
        group_by=DIMENSIONS[dimension],
    )
    for key, descending in reversed(order):
        rows.sort(key=_SORT_KEYS[key], reverse=descending)
    columns = _columns(dimension, metrics, product)

    def record(row: UsageRow) -> dict[str, object]:
        item = _item(row, dimension, product)
        return {c: item[c] for c in columns}

    if output == "csv":
        return exports.csv_response(
            exports.export_filename("usage-report", account.name, first, last),
            columns,
            (list(record(row).values()) for row in rows),
        )
    return page(request, _Rows(rows), lambda row: {"record_type": "usage_report", **record(row)})


@api_view("GET")
def usage_report_options(request: ApiRequest) -> JsonResponse:
    """What `product`, `dimensions` and `metrics` may be, per product (Telnyx's options shape)."""
    unknown = set(request.GET) - {"product"}
    if unknown:
        raise invalid(sorted(unknown)[0], f"{sorted(unknown)[0]} is not a parameter of this request.", query=True)
    product = _product(request.GET.get("product"), required=False)
    metrics = [m for m in METRICS if m not in PRICED_METRICS or can_see_pricing(key_account(request))]
    products = [product] if product is not None else selectors.report_products()
    return JsonResponse(
        {
            "data": [
                {
                    "product": p.sku,
                    "product_dimensions": list(DIMENSIONS),
                    "product_metrics": metrics,
                    "record_types": None,
                }
                for p in products
            ]
        }
    )


# --- Parameters ---------------------------------------------------------------------------------------


def _refuse_unknown_parameters(request: ApiRequest) -> None:
    for name in sorted(request.GET):
        if name == "filter" or name.startswith("filter["):
            raise invalid(
                name,
                "Filters are not supported: usage reports read daily totals per account and "
                "product, which keep no record fields to filter on.",
                query=True,
            )
        if name not in PARAMETERS:
            raise invalid(name, f"{name} is not a parameter of this request.", query=True)


def _list(request: ApiRequest, name: str) -> list[str]:
    """A list parameter, comma-separated (as the SDK sends it) or repeated; order kept, no repeats."""
    values = [v.strip() for raw in request.GET.getlist(name) for v in raw.split(",")]
    return list(dict.fromkeys(v for v in values if v))


def _product(sku: str | None, *, required: bool) -> Product | None:
    if sku is None or not sku.strip():
        if required:
            raise invalid("product", f"product is required: a product sku, or {ALL_PRODUCTS}.", query=True)
        return None
    sku = sku.strip()
    if sku == ALL_PRODUCTS and required:
        return None
    products = {p.sku: p for p in selectors.report_products()}
    if sku not in products:
        known = ", ".join(products)
        raise invalid("product", f"'{sku}' is not a product. Products: {known} (or {ALL_PRODUCTS}).", query=True)
    return products[sku]


def _dimension(request: ApiRequest) -> str:
    dimensions = _list(request, "dimensions")
    known = ", ".join(DIMENSIONS)
    if not dimensions:
        raise invalid("dimensions", f"dimensions is required: one of {known}.", query=True)
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown:
        raise invalid("dimensions", f"'{unknown[0]}' is not a dimension; use one of {known}.", query=True)
    if len(dimensions) > 1:
        raise invalid("dimensions", f"Give one dimension at a time (one of {known}).", query=True)
    return dimensions[0]


def _metrics(request: ApiRequest, account: Account) -> list[str]:
    metrics = _list(request, "metrics")
    known = ", ".join(METRICS)
    if not metrics:
        raise invalid("metrics", f"metrics is required: any of {known}.", query=True)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise invalid("metrics", f"'{unknown[0]}' is not a metric; use any of {known}.", query=True)
    if PRICED_METRICS & set(metrics) and not can_see_pricing(account):
        raise ApiError(403, "pricing_hidden", "Pricing is hidden", HIDDEN_PRICING, parameter="metrics")
    return metrics


def _sort(request: ApiRequest, dimension: str, metrics: list[str]) -> list[tuple[str, bool]]:
    """[(key, descending)]: each key the dimension or a requested metric (so a hidden cost can
    never order the rows either)."""
    order: list[tuple[str, bool]] = []
    allowed = [dimension, *metrics]
    for value in _list(request, "sort"):
        key = value.removeprefix("-")
        if key not in allowed:
            raise invalid("sort", f"Sort by the dimension or a requested metric: {', '.join(allowed)}.", query=True)
        order.append((key, value.startswith("-")))
    return order


def _days(request: ApiRequest) -> tuple[date, date]:
    """The first and the last UTC day of the report (both included)."""
    params = request.GET
    literal, start, end = params.get("date_range"), params.get("start_date"), params.get("end_date")
    if literal is not None:
        if start is not None or end is not None:
            raise invalid("date_range", "Give date_range or start_date and end_date, not both.", query=True)
        first, after = _date_range(literal)
    elif start is None and end is None:
        today = today_utc()
        first, after = today.replace(day=1), today + timedelta(days=1)
    elif start is None or end is None:
        missing = "start_date" if start is None else "end_date"
        raise invalid(missing, "Give both start_date and end_date (or date_range).", query=True)
    else:
        first, after = _midnight(start, "start_date"), _midnight(end, "end_date")
    if after <= first:
        raise invalid("end_date", "end_date must be after start_date (end_date is exclusive).", query=True)
    days = (after - first).days
    if days > MAX_RANGE_DAYS:
        raise invalid(
            "end_date", f"The range is {days} days long; a report covers at most {MAX_RANGE_DAYS} days.", query=True
        )
    return first, after - timedelta(days=1)


def _midnight(raw: str, name: str) -> date:
    """The UTC day that starts at `raw`: a date, or a time that is UTC midnight."""
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise invalid(name, f"{name} must be an ISO 8601 date or time (2026-11-01T00:00:00Z).", query=True) from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment.timetz() != time(0, tzinfo=UTC):
        raise invalid(
            name,
            f"Usage is totalled per UTC day: {name} must be a date or 00:00 UTC, not {moment.isoformat()}.",
            query=True,
        )
    return moment.date()


def _date_range(literal: str) -> tuple[date, date]:
    """[first, after) for a date literal."""
    today = today_utc()
    tomorrow = today + timedelta(days=1)
    if literal == "today":
        return today, tomorrow
    if literal == "yesterday":
        return today - timedelta(days=1), today
    if literal == "this_month":
        return today.replace(day=1), tomorrow
    if literal == "last_month":
        this_month = today.replace(day=1)
        return (this_month - timedelta(days=1)).replace(day=1), this_month
    match = _LAST_N.match(literal)
    if match and int(match[1]) > 0:
        days = int(match[1]) * (7 if match[2] == "weeks" else 1)
        return tomorrow - timedelta(days=days), tomorrow
    raise invalid(
        "date_range",
        "date_range must be today, yesterday, this_month, last_month, last_<N>_days or last_<N>_weeks.",
        query=True,
    )


# --- Rows ---------------------------------------------------------------------------------------------


class _Rows(list[UsageRow]):
    """The report's rows as `portal.api.page` pages a queryset: count() and slicing."""

    def count(self, *args: object) -> int:
        return len(self)


_SORT_KEYS: dict[str, Callable[[UsageRow], SupportsRichComparison]] = {
    "date": lambda r: r.key,
    "month": lambda r: r.key,
    "product": lambda r: r.key,
    "account": lambda r: (r.label, r.key),
    "count": lambda r: r.records,
    "quantity": lambda r: r.quantity,
    "cost": lambda r: r.cost,
}


def _columns(dimension: str, metrics: list[str], product: Product | None) -> list[str]:
    columns = ["product"]
    if dimension == "product":
        columns += ["product_name", "unit"]
    elif product is not None:
        columns += ["unit"]
    columns += {"date": ["date"], "month": ["month"], "account": ["account_id", "account_name"]}.get(dimension, [])
    columns += metrics
    if PRICED_METRICS & set(metrics):
        columns.append("currency")
    return columns


def _item(row: UsageRow, dimension: str, product: Product | None) -> dict[str, object]:
    """Every field a row may have; `_columns` picks those asked for."""
    item: dict[str, object] = {
        "product": product.sku if product is not None else ALL_PRODUCTS,
        "unit": product.unit if product is not None else "",
        "count": row.records,
        "quantity": _decimal(row.quantity),
        "cost": _decimal(row.cost),
        "currency": CURRENCY,
    }
    if dimension == "product":
        item.update(product=row.key, product_name=row.label, unit=row.unit)
    elif dimension == "date":
        item["date"] = row.key.isoformat() if isinstance(row.key, date) else row.key
    elif dimension == "month":
        item["month"] = row.label
    else:
        item.update(account_id=row.key, account_name=row.label)
    return item


def _decimal(value: Decimal) -> str:
    """Exact, as the CSV exports write it: 12.500000 -> "12.5", 0E-12 -> "0"."""
    return f"{value.normalize():f}"
