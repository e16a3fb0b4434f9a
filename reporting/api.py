"""v2 API: usage reports (`GET /usage_reports`, `GET /usage_reports/options`), in the shape of
Telnyx's usage reports API so that its SDK's `client.usage_reports.list(...)` works unchanged.

Whole UTC days by one of the totals' dimensions are the report the usage report page shows:
`billing.usage.selectors.usage_summary` over the daily and monthly totals. Any other window or a
record field as a dimension is `reporting.selectors.record_totals`, one GROUP BY over the window's
records (at most 31 days). Money only where `can_see_pricing` says so, at the prices the key's
account pays (`billing.pricing.prices_for`: a roll-up account its manager's resale prices, never
the manager's cost; a manager's aggregate of its managed accounts, its own cost), CSV through
`reporting.exports` (streamed, formula-escaped).

Query parameters (lists are comma-separated, as the SDK sends them, or repeated):

- `product` (required): a product sku (`voice.outbound`; see `/usage_reports/options`), a Telnyx
  product family (`messaging`, `call-control`, `fax-api`, `numbers`: the usage of its SKUs added
  up; `reporting.telnyx_names` maps each SKU to one), or `all`.
- `dimensions` (required): one or more of `date` (per UTC day), `month`, `product`, `account`
  (per account; with `managed_accounts=true`, per managed account), and the records' own
  `direction`, `country` (Telnyx's `country_code` or `country_iso`) and `destination_type`
  (`toll_free`, `short_code`, `long_code`, or empty when the record names no destination). Each
  row has a field per dimension, named as asked (`country_code` when asked so).
- `metrics` (required): any of `count` (number of usage records), `quantity` (summed quantity,
  in the product's unit) and `cost` (exact, USD). `cost` only for an account that may see pricing:
  asking for it with a hidden-pricing account's key is a 403, never a silent zero.
- `start_date` (inclusive), `end_date` (exclusive), as Telnyx: any ISO 8601 instant with an offset
  or `Z` (`2022-12-24T19:20:30-05:00`), a time without one read as UTC, or a bare date meaning its
  00:00 UTC. A report counts each usage record whole, in the window its start falls in. Both or
  neither; or instead `date_range` = `today`, `yesterday`, `this_month`, `last_month`,
  `last_<N>_days` or `last_<N>_weeks` (the N days or weeks up to and including today). Neither:
  this month to date. At most 31 days (422 beyond). `meta.window` says how the window was read:
  its UTC `start` and `end`, the parameters `given`, and its `source`: `daily_totals` when it is
  whole UTC days and the one dimension is a total's (date, month, product, account), else
  `usage_records` (one GROUP BY over the window's records). A CSV says it in the headers
  `X-Usage-Window-Start` and `X-Usage-Window-End`.
- `managed_accounts=true` (manager keys only; 403 for any other key): the aggregate of the
  manager's managed accounts instead of its own usage.
- `format` = `json` (default: paged with `page[number]`, `page[size]` and the usual `meta`) or
  `csv` (every row, streamed; paging does not apply).
- `sort`: the dimension or requested metrics, `-` for descending (`sort=-quantity`); default:
  the page's order (by date, month, product name or account name).
- `filter` / `filter[...]`: refused (422); break the report out by a dimension instead.

Each row: `record_type: "usage_report"`, `product` (the sku, family or `all` asked for), the
dimensions' fields (`date`; `month` as `YYYY-MM`; `product`, `product_name`, `unit`; `account_id`,
`account_name`; `direction`, `country`, `destination_type`), `unit` when the products asked for
share one, the metrics (`count` an integer, `quantity` and `cost`
decimal strings) and `currency` with `cost`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.http import JsonResponse
from django.http.response import HttpResponseBase

from accounts.api_access import ApiRequest, key_account
from accounts.models import Account
from accounts.permissions import can_see_pricing
from billing.models import Product
from billing.pricing import Prices, prices_for
from billing.usage import selectors
from billing.usage.selectors import (
    GROUP_BY_ACCOUNT,
    GROUP_BY_DAY,
    GROUP_BY_MONTH,
    GROUP_BY_PRODUCT,
    AccountScope,
    UsageRow,
)
from portal.api import ApiError, api_view, invalid, page, query_bool
from reporting import exports, telnyx_names
from reporting.forms import today_utc
from reporting.selectors import RECORD_DIMENSIONS, priced_summary, record_totals, report_accounts

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

MAX_RANGE_DAYS = 31
ALL_PRODUCTS = "all"
CURRENCY = "USD"  # as the report's CSV export: every rate is in USD
# The dimensions the daily totals have; the records have these and their own fields too.
DIMENSIONS = {"date": GROUP_BY_DAY, "month": GROUP_BY_MONTH, "product": GROUP_BY_PRODUCT, "account": GROUP_BY_ACCOUNT}
REFUSED_DIMENSIONS = {
    "destination": "destination is each record's phone number, too many groups for a report: "
    "ask for destination_type (toll_free, short_code, long_code) instead.",
}
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


Row = dict[str, Any]  # one group: its dimensions' fields, and count, quantity and cost


@dataclass(frozen=True)
class _Asked:
    """The `product` asked for: its name, its products (None: all) and their one unit, if any."""

    name: str
    products: list[Product] | None
    unit: str | None


@dataclass(frozen=True)
class _Window:
    """[start, end) in UTC, and the parameters it was read from."""

    start: datetime
    end: datetime
    given: dict[str, str]

    def whole_days(self) -> tuple[date, date] | None:
        """The first and last UTC day (both included) when the window is whole UTC days."""
        if self.start.time() != time(0) or self.end.time() != time(0):
            return None
        return self.start.date(), (self.end - timedelta(days=1)).date()

    def meta(self, source: str) -> dict[str, object]:
        return {
            "start": _utc(self.start),
            "end": _utc(self.end),
            "given": self.given,
            "source": source,
            "read_as": "Each usage record counts whole, in this window when it started at or after "
            "start and before end (UTC).",
        }


@api_view("GET")
def usage_reports(request: ApiRequest) -> HttpResponseBase:
    account = key_account(request)
    _refuse_unknown_parameters(request)
    asked = _product(request.GET.get("product"), report=True)
    dimensions = _dimensions(request)
    metrics = _metrics(request, account)
    order = _sort(request, dimensions, metrics)
    output = request.GET.get("format", "json")
    if output not in ("json", "csv"):
        raise invalid("format", "format must be json or csv.", query=True)
    window = _window(request)
    scope = report_accounts(account=account, managed=query_bool(request, "managed_accounts"))
    prices = prices_for(account)
    rows, source = _report_rows(scope, window, asked, [ours for _, ours in dimensions], prices)
    rows.sort(key=lambda row: tuple(_ORDER.get(ours, _field(ours))(row) for _, ours in dimensions))
    for name, descending in reversed(order):
        rows.sort(key=_sort_key(name, dimensions), reverse=descending)
    columns = _columns(dimensions, metrics, asked)

    def record(row: Row) -> dict[str, object]:
        item = _item(row, dimensions, asked)
        return {c: item[c] for c in columns}

    if output == "csv":
        last_day = (window.end - timedelta(microseconds=1)).date()
        response: HttpResponseBase = exports.csv_response(
            exports.export_filename("usage-report", account.name, window.start.date(), last_day),
            columns,
            (list(record(row).values()) for row in rows),
        )
        response["X-Usage-Window-Start"], response["X-Usage-Window-End"] = _utc(window.start), _utc(window.end)
        return response
    listed = page(request, _Rows(rows), lambda row: {"record_type": "usage_report", **record(row)})
    body = json.loads(listed.content)
    body["meta"]["window"] = window.meta(source)
    return JsonResponse(body)


@api_view("GET")
def usage_report_options(request: ApiRequest) -> JsonResponse:
    """What `product`, `dimensions` and `metrics` may be, per product family and per product
    (Telnyx's options shape; a family's `record_types` are its SKUs)."""
    unknown = set(request.GET) - {"product"}
    if unknown:
        raise invalid(sorted(unknown)[0], f"{sorted(unknown)[0]} is not a parameter of this request.", query=True)
    raw = request.GET.get("product", "")
    asked = _product(raw, report=False) if raw.strip() else None
    metrics = [m for m in METRICS if m not in PRICED_METRICS or can_see_pricing(key_account(request))]
    dimensions = _dimension_names()

    def option(name: str, skus: list[str] | None) -> dict[str, object]:
        types = None if skus is None else [
            {"record_type": sku, "product_dimensions": dimensions, "product_metrics": metrics} for sku in skus
        ]  # fmt: skip
        return {"product": name, "product_dimensions": dimensions, "product_metrics": metrics, "record_types": types}

    if asked is not None:
        family = asked.name in telnyx_names.FAMILIES
        skus = sorted(p.sku for p in asked.products or []) if family else None
        return JsonResponse({"data": [option(asked.name, skus)]})
    products = selectors.report_products()
    families = [(f, telnyx_names.skus_of(f, (p.sku for p in products))) for f in telnyx_names.FAMILIES]
    data = [option(f, skus) for f, skus in families if skus] + [option(p.sku, None) for p in products]
    return JsonResponse({"data": data})


# --- Parameters ---------------------------------------------------------------------------------------


def _refuse_unknown_parameters(request: ApiRequest) -> None:
    for name in sorted(request.GET):
        if name == "filter" or name.startswith("filter["):
            raise invalid(
                name,
                "Filters are not supported: break the report out by a dimension instead "
                "(dimensions=direction,country_code, for instance).",
                query=True,
            )
        if name not in PARAMETERS:
            raise invalid(name, f"{name} is not a parameter of this request.", query=True)


def _list(request: ApiRequest, name: str) -> list[str]:
    """A list parameter, comma-separated (as the SDK sends it) or repeated; order kept, no repeats."""
    values = [v.strip() for raw in request.GET.getlist(name) for v in raw.split(",")]
    return list(dict.fromkeys(v for v in values if v))


def _product(raw: str | None, *, report: bool) -> _Asked:
    """A sku, a Telnyx product family or (for a report) `all`."""
    families = ", ".join(telnyx_names.FAMILIES)
    if raw is None or not raw.strip():
        raise invalid("product", f"product is required: a product family ({families}), a sku, or all.", query=True)
    name = raw.strip()
    if name == ALL_PRODUCTS and report:
        return _Asked(name, None, None)
    products = selectors.report_products()
    for product in products:
        if product.sku == name:
            return _Asked(name, [product], product.unit)
    if name in telnyx_names.FAMILIES:
        members = [p for p in products if telnyx_names.family_of(p.sku) == name]
        units = {p.unit for p in members}
        return _Asked(name, members, units.pop() if len(units) == 1 else None)
    skus = ", ".join(p.sku for p in products)
    also = f" (or {ALL_PRODUCTS})" if report else ""
    raise invalid(
        "product", f"'{name}' is not a product. Product families: {families}; products: {skus}{also}.", query=True
    )


def _dimension_names() -> list[str]:
    """Every dimension name a client may give: ours, each followed by Telnyx's for it."""
    return [name for ours in RECORD_DIMENSIONS for name in telnyx_names.names_of(ours)]


def _dimensions(request: ApiRequest) -> list[tuple[str, str]]:
    """[(the name asked, our dimension)], in the order asked."""
    names = _list(request, "dimensions")
    known = ", ".join(_dimension_names())
    if not names:
        raise invalid("dimensions", f"dimensions is required: any of {known}.", query=True)
    chosen: list[tuple[str, str]] = []
    for name in names:
        if name in REFUSED_DIMENSIONS:
            raise invalid("dimensions", REFUSED_DIMENSIONS[name], query=True)
        ours = telnyx_names.our_dimension(name)
        if ours not in RECORD_DIMENSIONS:
            raise invalid("dimensions", f"'{name}' is not a dimension; use any of {known}.", query=True)
        twice = [asked for asked, other in chosen if other == ours]
        if twice:
            raise invalid("dimensions", f"{twice[0]} and {name} are the same dimension: give one of them.", query=True)
        chosen.append((name, ours))
    return chosen


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


def _sort(request: ApiRequest, dimensions: list[tuple[str, str]], metrics: list[str]) -> list[tuple[str, bool]]:
    """[(key, descending)]: each key a requested dimension (by the name asked) or metric (so a
    hidden cost can never order the rows either)."""
    order: list[tuple[str, bool]] = []
    allowed = [name for name, _ in dimensions] + metrics
    for value in _list(request, "sort"):
        key = value.removeprefix("-")
        if key not in allowed:
            raise invalid("sort", f"Sort by a requested dimension or metric: {', '.join(allowed)}.", query=True)
        order.append((key, value.startswith("-")))
    return order


def _window(request: ApiRequest) -> _Window:
    params = request.GET
    literal, start, end = params.get("date_range"), params.get("start_date"), params.get("end_date")
    if literal is not None:
        if start is not None or end is not None:
            raise invalid("date_range", "Give date_range or start_date and end_date, not both.", query=True)
        first, after = _date_range(literal)
        window = _Window(_midnight(first), _midnight(after), {"date_range": literal})
    elif start is None and end is None:
        today = today_utc()
        window = _Window(_midnight(today.replace(day=1)), _midnight(today + timedelta(days=1)), {})
    elif start is None or end is None:
        missing = "start_date" if start is None else "end_date"
        raise invalid(missing, "Give both start_date and end_date (or date_range).", query=True)
    else:
        given = {"start_date": start, "end_date": end}
        window = _Window(_instant(start, "start_date"), _instant(end, "end_date"), given)
    length = window.end - window.start
    if length <= timedelta(0):
        raise invalid("end_date", "end_date must be after start_date (end_date is exclusive).", query=True)
    if length > timedelta(days=MAX_RANGE_DAYS):
        said = f"{length.days} days" if length % timedelta(days=1) == timedelta(0) else str(length)
        raise invalid(
            "end_date", f"The range is {said} long; a report covers at most {MAX_RANGE_DAYS} days.", query=True
        )
    return window


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _instant(raw: str, name: str) -> datetime:
    """The UTC instant of `raw`: an ISO 8601 date (its 00:00 UTC) or time (without an offset: UTC)."""
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise invalid(
            name,
            f"{name} must be an ISO 8601 date or time, with an offset or Z (2022-12-24T19:20:30-05:00); "
            "a time without one is read as UTC.",
            query=True,
        ) from None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise invalid(name, f"{name} must be an ISO 8601 time from year 1 to 9999 in UTC.", query=True) from None


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


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


class _Rows(list[Row]):
    """The report's rows as `portal.api.page` pages a queryset: count() and slicing."""

    def count(self, *args: object) -> int:
        return len(self)


def _report_rows(
    scope: AccountScope, window: _Window, asked: _Asked, ours: list[str], prices: Prices
) -> tuple[list[Row], str]:
    """The groups, and what they were read from: the daily totals when they can tell (whole UTC
    days, one dimension of theirs), else the records. A family reads its SKUs' totals and adds
    them up per group. Costs at `prices`."""
    days = window.whole_days()
    if days is not None and len(ours) == 1 and ours[0] in DIMENSIONS:
        products: Sequence[Product | None] = asked.products if asked.products is not None else [None]
        group_by = DIMENSIONS[ours[0]]
        rows = [
            _total_row(row, ours[0])
            for product in products
            for row in priced_summary(
                selectors.usage_summary(accounts=scope, start=days[0], end=days[1], product=product, group_by=group_by),
                prices=prices,
                accounts=scope,
                start=days[0],
                end=days[1],
                product=product,
                group_by=group_by,
            )
        ]
        return _merged(rows), "daily_totals"
    records = record_totals(
        accounts=scope, since=window.start, until=window.end, products=asked.products, dimensions=ours, prices=prices
    )
    return records, "usage_records"


def _total_row(row: UsageRow, dimension: str) -> Row:
    groups: dict[str, Row] = {
        "date": {"date": row.key},
        "month": {"month": row.key},
        "product": {"product": row.key, "product_name": row.label, "unit": row.unit},
        "account": {"account_id": row.key, "account_name": row.label},
    }
    return {**groups[dimension], "count": row.records, "quantity": row.quantity, "cost": row.cost}


def _merged(rows: list[Row]) -> list[Row]:
    """Rows of the same group (from several products' totals) added up, in first-seen order."""
    merged: dict[tuple[object, ...], Row] = {}
    for row in rows:
        key = tuple(value for name, value in row.items() if name not in METRICS)
        if key in merged:
            for metric in METRICS:
                merged[key][metric] += row[metric]
        else:
            merged[key] = dict(row)
    return list(merged.values())


def _field(name: str) -> Callable[[Row], SupportsRichComparison]:
    return lambda row: row[name]


# The page's order per dimension: by date, month, product name or account name.
_ORDER: dict[str, Callable[[Row], SupportsRichComparison]] = {
    "product": lambda r: (r["product_name"], r["product"]),
    "account": lambda r: (r["account_name"], str(r["account_id"])),
}


def _sort_key(name: str, dimensions: list[tuple[str, str]]) -> Callable[[Row], SupportsRichComparison]:
    """A requested `sort` key: a dimension by the name asked (product by sku, account by name),
    or a metric."""
    ours = dict(dimensions).get(name, name)
    if ours == "product":
        return _field("product")
    return _ORDER.get(ours, _field(ours))


def _columns(dimensions: list[tuple[str, str]], metrics: list[str], asked: _Asked) -> list[str]:
    ours = [d for _, d in dimensions]
    columns = ["product"]
    if "product" in ours:
        columns += ["product_name", "unit"]
    elif asked.unit is not None:
        columns += ["unit"]
    for name, dimension in dimensions:
        columns += {"product": [], "account": ["account_id", "account_name"]}.get(dimension, [name])
    columns += metrics
    if PRICED_METRICS & set(metrics):
        columns.append("currency")
    return columns


def _item(row: Row, dimensions: list[tuple[str, str]], asked: _Asked) -> dict[str, object]:
    """Every field a row may have; `_columns` picks those asked for."""
    item: dict[str, object] = {
        "product": asked.name,
        "unit": asked.unit or "",
        "count": row["count"],
        "quantity": _decimal(row["quantity"]),
        "cost": _decimal(row["cost"]),
        "currency": CURRENCY,
    }
    for name, dimension in dimensions:
        if dimension == "product":
            item.update(product=row["product"], product_name=row["product_name"], unit=row["unit"])
        elif dimension == "account":
            item.update(account_id=str(row["account_id"]), account_name=row["account_name"])
        elif dimension == "date":
            item["date"] = row["date"].isoformat()
        elif dimension == "month":
            item["month"] = row["month"].strftime("%Y-%m")
        else:
            item[name] = row[dimension]
    return item


def _decimal(value: Decimal) -> str:
    """Exact, as the CSV exports write it: 12.500000 -> "12.5", 0E-12 -> "0"."""
    return f"{value.normalize():f}"
