"""Usage reports: read-only pages and CSV exports over billing's selectors.

Every view reaches its account through `account_access(..., VIEW_REPORTS)` (owner, admin and
reporting roles; billing gets 403; non-members 404) and shows money only when
`can_see_pricing(access.account)`: a manager on its own pages sees its managed accounts' costs; a
managed account with hidden pricing (and a manager logged in as it) sees quantities only. The
money shown is at the prices the page's account pays (`billing.pricing.prices_for`): a roll-up
account its manager's resale prices, never the manager's cost.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable
from datetime import date
from functools import partial
from typing import Any, cast
from urllib.parse import urlencode
from uuid import UUID

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts.access import AccountAccess, account_access
from accounts.permissions import VIEW_REPORTS, can_see_pricing
from billing.pricing import Prices, prices_for
from billing.usage import selectors
from billing.usage.selectors import GROUP_BY_ACCOUNT, GROUP_BY_DAY, GROUP_BY_MONTH, GROUP_BY_PRODUCT, UsageRow
from portal.pagination import bounded_per_page, paginate_table
from reporting import charts, exports
from reporting import selectors as report_selectors
from reporting.forms import GROUP_LABELS, UsageFilterForm, UsageFilters, UsageReportForm, encode_cursor
from reporting.selectors import CHART_COST, CHART_QUANTITY, CHART_UNIT
from reporting.tables import AccountGroupsData, UsageRecordTable, UsageSummaryTable

RECORDS_PER_PAGE = 50
SUMMARY_ROWS_PER_PAGE = 100
NOT_FILTERS = ("page", "sort", "after")  # table and page state, not filters


def _context(access: AccountAccess, form: forms.Form) -> dict[str, Any]:
    return {
        "access": access,
        "account": access.account,
        "form": form,
        "pricing": can_see_pricing(access.account),
    }


def _query(params: QueryDict, **changes: str | None) -> str:
    """The filters in `params` (without table or page state), with `changes` applied."""
    query = params.copy()
    for key in (*NOT_FILTERS, *changes):
        query.pop(key, None)
    for key, value in changes.items():
        if value is not None:
            query[key] = value
    return query.urlencode()


def _query_with(params: QueryDict, *keys: str) -> Callable[..., str]:
    """`_query(params, **changes)` for changes of `keys` (none None), the rest of `params` copied
    and encoded once: a report links every one of its rows."""
    rest = _query(params, **dict.fromkeys(keys))

    def query(**changes: str) -> str:
        tail = urlencode([(key, changes[key]) for key in keys])
        return f"{rest}&{tail}" if rest else tail

    return query


# --- The report ------------------------------------------------------------------------------------------


@login_required
@require_GET
def usage_report(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, VIEW_REPORTS)
    form = UsageReportForm(request.GET, account=access.account)
    context = _context(access, form)
    if form.is_valid():
        filters = form.filters()
        prices = prices_for(access.account)
        if filters.group_by == GROUP_BY_ACCOUNT and not prices.repriced:  # every manager's own report
            context.update(_account_report(request, access, form, filters))
            return render(request, "reporting/usage_report.html", context)
        rows = summary_rows(filters, prices)
        totals = selectors.usage_totals(rows)
        table = UsageSummaryTable(
            rows,
            group_by=filters.group_by,
            totals=totals,
            pricing=context["pricing"],
            link=_row_link(request, access, filters),
        )
        paginate_table(request, table, per_page=SUMMARY_ROWS_PER_PAGE)
        context.update(
            filters=filters,
            table=table,
            totals=totals,
            chart=report_chart(
                rows, filters, choice=form.cleaned_data["chart"], pricing=context["pricing"], prices=prices
            )
            if rows
            else None,
            group_label=GROUP_LABELS[filters.group_by],
            has_rows=bool(rows),
            has_usage=bool(rows) or selectors.has_any_usage(accounts=filters.accounts),
            query=_query(request.GET),
        )
    return render(request, "reporting/usage_report.html", context)


@login_required
@require_GET
def usage_report_csv(request: HttpRequest, account_id: UUID) -> HttpResponseBase:
    access = account_access(request, account_id, VIEW_REPORTS)
    form = UsageReportForm(request.GET, account=access.account)
    if not form.is_valid():  # the report page shows what is wrong
        return redirect(f"{reverse('usage_report', args=[account_id])}?{request.GET.urlencode()}")
    filters = form.filters()
    pricing = can_see_pricing(access.account)
    return exports.csv_response(
        exports.export_filename("usage-report", access.account.name, filters.start, filters.end),
        exports.report_header(filters.group_by, pricing=pricing),
        exports.report_rows(summary_rows(filters, prices_for(access.account)), filters.group_by, pricing=pricing),
    )


def _account_report(
    request: HttpRequest, access: AccountAccess, form: UsageReportForm, filters: UsageFilters
) -> dict[str, Any]:
    """The report grouped by managed account, at the stored cost: its table reads one page of the
    groups from the database (with their count, totals and the chart's largest, one query), never
    all of a manager's 3,000; the chart is the one `report_chart` draws from every row."""
    pricing = can_see_pricing(access.account)
    measure, value, unit = _account_measure(form.cleaned_data["chart"], filters, pricing=pricing)
    groups = partial(
        report_selectors.account_groups,
        accounts=filters.accounts,
        start=filters.start,
        end=filters.end,
        product=filters.product,
        chart=value,
        unit=unit,
        top=charts.CATEGORY_LIMIT,
    )
    size = bounded_per_page(request.GET.get("per_page"), default=SUMMARY_ROWS_PER_PAGE)
    data = AccountGroupsData(groups, window=(0, size))
    table = UsageSummaryTable(
        data, group_by=filters.group_by, totals=None, pricing=pricing, link=_row_link(request, access, filters)
    )
    data.window = (_page_offset(request.GET.get(table.prefixed_page_field), size), size)
    paginate_table(request, table, per_page=SUMMARY_ROWS_PER_PAGE)
    summary = data.summary
    table.totals = summary.totals
    title = f"{measure.name} by {GROUP_LABELS[filters.group_by].lower()}"
    has_rows = summary.groups > 0
    return {
        "filters": filters,
        "table": table,
        "totals": summary.totals,
        "chart": charts.ranked_chart(
            summary.top, groups=summary.top_groups, total=summary.top_total, measure=measure, title=title
        )
        if has_rows
        else None,
        "group_label": GROUP_LABELS[filters.group_by],
        "has_rows": has_rows,
        "has_usage": has_rows or selectors.has_any_usage(accounts=filters.accounts),
        "query": _query(request.GET),
    }


def _page_offset(page: str | None, size: int) -> int:
    """Where the page asked for starts (paginate_table settles what is no page)."""
    try:
        number = int(page or 1)
    except ValueError:
        return 0
    return (number - 1) * size if number >= 1 else 0


def _account_measure(choice: str, filters: UsageFilters, *, pricing: bool) -> tuple[charts.Measure, str, str]:
    """What `report_chart` would chart by managed account, and the value per account that gives it
    (reporting.selectors.CHART_*, and the unit of CHART_UNIT)."""
    choice = choice if pricing or choice != charts.COST else ""
    if not choice and filters.product is None:
        choice = report_selectors.unit_most_used(accounts=filters.accounts, start=filters.start, end=filters.end)
    if choice == charts.COST:
        return charts.cost_measure(filters.product.currency if filters.product else "USD"), CHART_COST, ""
    measure = charts.quantity_measure(choice or (filters.product.unit if filters.product else ""))
    if filters.product is not None:  # one product: its quantity is of the chart's unit
        return measure, CHART_QUANTITY, ""
    return measure, CHART_UNIT, measure.unit


def summary_rows(filters: UsageFilters, prices: Prices | None = None) -> list[UsageRow]:
    """The report's groups, their cost at `prices` (the report's account's: `prices_for`; None,
    the stored cost, which is what a manager pays for its managed accounts)."""
    rows = selectors.usage_summary(
        accounts=filters.accounts,
        start=filters.start,
        end=filters.end,
        product=filters.product,
        group_by=filters.group_by,
    )
    if prices is None:
        return rows
    return report_selectors.priced_summary(
        rows,
        prices=prices,
        accounts=filters.accounts,
        start=filters.start,
        end=filters.end,
        product=filters.product,
        group_by=filters.group_by,
    )


def _row_link(request: HttpRequest, access: AccountAccess, filters: UsageFilters) -> Callable[[UsageRow], str]:
    """Where a group of the report leads: a day to its records, a month to its days, a product or
    a managed account to its own report by day."""
    report = reverse("usage_report", args=[access.account.public_id])
    records = reverse("usage_records", args=[access.account.public_id])
    params = request.GET
    by_product = _query_with(params, "product", "group_by")
    by_account = _query_with(params, "scope", "group_by")
    day_records = _query_with(params, "start", "end")
    month_days = _query_with(params, "start", "end", "group_by")

    def link(row: UsageRow) -> str:
        if isinstance(row.key, str):  # a product's SKU or a managed account's public id
            if filters.group_by == GROUP_BY_PRODUCT:
                return f"{report}?{by_product(product=row.key, group_by=GROUP_BY_DAY)}"
            return f"{report}?{by_account(scope=row.key, group_by=GROUP_BY_DAY)}"
        if filters.group_by == GROUP_BY_DAY:
            day = row.key.isoformat()
            return f"{records}?{day_records(start=day, end=day)}"
        first, last = _month_bounds(row.key)
        start, end = max(first, filters.start).isoformat(), min(last, filters.end).isoformat()
        return f"{report}?{month_days(start=start, end=end, group_by=GROUP_BY_DAY)}"

    return link


def _month_bounds(first: date) -> tuple[date, date]:
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


# --- The chart -------------------------------------------------------------------------------------------


def report_chart(
    rows: list[UsageRow], filters: UsageFilters, *, choice: str, pricing: bool, prices: Prices | None = None
) -> charts.Chart:
    """The report's chart: along the dates when grouped by day or month (by day, week or month as
    the range is long), else the largest products or managed accounts. It shows cost only where
    pricing is visible (the form offers cost nowhere else), otherwise one unit: `choice`, the
    product's, or the unit most used in the range. Cost, and the quantity of a product, come from the
    report's own rows; one unit among several is read apart (charts.usage_amounts)."""
    by_time = filters.group_by in (GROUP_BY_DAY, GROUP_BY_MONTH)
    bucket = (
        charts.BUCKET_MONTH if filters.group_by == GROUP_BY_MONTH else charts.pick_bucket(filters.start, filters.end)
    )
    amounts: list[charts.Amount] | None = None
    choice = choice if pricing or choice != charts.COST else ""
    if not choice and filters.product is None and filters.group_by != GROUP_BY_PRODUCT:
        amounts = _amounts(filters, bucket, prices)
        choice = next(iter(charts.units_by_use(amounts)), "")
    measure = _measure(choice, filters, rows)
    title = f"{measure.name} by {bucket if by_time else GROUP_LABELS[filters.group_by].lower()}"
    from_rows = measure.is_money or filters.product is not None or filters.group_by == GROUP_BY_PRODUCT
    if from_rows:
        items = [(row, row.cost if measure.is_money else row.quantity) for row in rows]
        if filters.group_by == GROUP_BY_PRODUCT and not measure.is_money:
            items = [(row, value) for row, value in items if row.unit == measure.unit]
        if by_time:  # a month's row is keyed by its first day, perhaps before the range starts
            points = [(max(cast(date, row.key), filters.start), value) for row, value in items]
            return charts.time_chart(
                points, start=filters.start, end=filters.end, measure=measure, title=title, bucket=bucket
            )
        return charts.category_chart([(row.label, value) for row, value in items], measure=measure, title=title)
    amounts = amounts if amounts is not None else _amounts(filters, bucket, prices)
    if by_time:
        points = charts.by_period(amounts, measure)
        return charts.time_chart(
            points, start=filters.start, end=filters.end, measure=measure, title=title, bucket=bucket
        )
    return charts.account_chart(amounts, measure=measure, title=title)


def _amounts(filters: UsageFilters, bucket: str, prices: Prices | None) -> list[charts.Amount]:
    if filters.group_by == GROUP_BY_ACCOUNT:
        by = charts.BY_ACCOUNT
    else:
        by = charts.BY_MONTH if bucket == charts.BUCKET_MONTH else charts.BY_DAY
    return charts.usage_amounts(
        accounts=filters.accounts, start=filters.start, end=filters.end, product=filters.product, by=by, prices=prices
    )


def _measure(choice: str, filters: UsageFilters, rows: list[UsageRow]) -> charts.Measure:
    if choice == charts.COST:
        return charts.cost_measure(filters.product.currency if filters.product else "USD")
    if choice:
        return charts.quantity_measure(choice)
    if filters.product is not None:
        return charts.quantity_measure(filters.product.unit)
    most_used = sorted(rows, key=lambda row: -row.records)  # by product: each row has its unit
    return charts.quantity_measure(most_used[0].unit if most_used else "")


# --- Individual records -----------------------------------------------------------------------------------


@login_required
@require_GET
def usage_records(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, VIEW_REPORTS)
    form = UsageFilterForm(request.GET, account=access.account)
    context = _context(access, form)
    if form.is_valid():
        filters = form.filters()
        page, next_cursor = selectors.usage_records_page(
            accounts=filters.accounts,
            start=filters.start,
            end=filters.end,
            product=filters.product,
            after=filters.after,
            size=RECORDS_PER_PAGE,
        )
        page = report_selectors.priced_records(page, prices_for(access.account))
        context.update(
            filters=filters,
            table=UsageRecordTable(page, pricing=context["pricing"], show_account=access.account.is_manager),
            query=_query(request.GET),
            next_query=_query(request.GET, after=encode_cursor(next_cursor)) if next_cursor else None,
            has_usage=bool(page) or selectors.has_any_usage(accounts=filters.accounts),
            per_page=RECORDS_PER_PAGE,
        )
    return render(request, "reporting/usage_records.html", context)


@login_required
@require_GET
def usage_records_csv(request: HttpRequest, account_id: UUID) -> HttpResponseBase:
    access = account_access(request, account_id, VIEW_REPORTS)
    form = UsageFilterForm(request.GET, account=access.account)
    if not form.is_valid():
        return redirect(f"{reverse('usage_records', args=[account_id])}?{request.GET.urlencode()}")
    filters = form.filters()
    pricing = can_see_pricing(access.account)
    columns = exports.record_columns(pricing=pricing, show_account=access.account.is_manager)
    fields = [field for _, field in columns]
    prices = prices_for(access.account)
    repriced = pricing and prices.repriced
    filename = exports.export_filename("usage-records", access.account.name, filters.start, filters.end)
    records = selectors.usage_records(
        accounts=filters.accounts, start=filters.start, end=filters.end, product=filters.product
    )
    if not repriced and exports.copies_csv(records):  # PostgreSQL writes the same bytes itself (COPY)
        return exports.copy_csv_response(filename, records, columns)
    rows: Iterable[tuple[Any, ...]] = selectors.usage_record_rows(
        accounts=filters.accounts,
        start=filters.start,
        end=filters.end,
        product=filters.product,
        fields=[*fields, "product_id", "started_at"] if repriced else fields,
    )
    if repriced:  # at the prices the account pays, never its manager's cost
        rows = report_selectors.priced_record_rows(rows, fields, prices)
    return exports.csv_response(filename, [name for name, _ in columns], rows)
