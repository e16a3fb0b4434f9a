"""Paging of every django-tables2 table page. django-tables2's RequestConfig takes `?per_page=` as
given: -1 is a 500 and 100000 renders the whole table. Here it is bounded like the API's
`page[size]` (1..250); anything else (not a number, 0, negative) is the page's own size."""

from __future__ import annotations

from typing import TypeVar

from django.core.paginator import EmptyPage, PageNotAnInteger
from django.http import HttpRequest
from django_tables2 import RequestConfig, Table

from portal.api import MAX_PAGE_SIZE

MAX_PER_PAGE = MAX_PAGE_SIZE
TableT = TypeVar("TableT", bound=Table)


def bounded_per_page(raw: str | None, *, default: int) -> int:
    """`?per_page=` as a page size from 1 to MAX_PER_PAGE; `default` when absent or not a positive number."""
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return min(value, MAX_PER_PAGE) if value >= 1 else default


def paginate_table(request: HttpRequest, table: TableT, *, per_page: int) -> TableT:
    """Sorts and pages `table` from the request, `per_page` rows a page unless `?per_page=` asks
    for 1 to 250. A page number that is no number is the first page, one past the end the last."""
    RequestConfig(request, paginate=False).configure(table)  # sorting (and table.request) only
    size = bounded_per_page(request.GET.get(table.prefixed_per_page_field), default=per_page)
    page = request.GET.get(table.prefixed_page_field) or 1
    try:
        table.paginate(per_page=size, page=page)
    except PageNotAnInteger:
        table.page = table.paginator.page(1)
    except EmptyPage:
        table.page = table.paginator.page(table.paginator.num_pages)
    return table
