"""CSV exports of the usage report and of the usage records, streamed with constant memory.

Formula injection. A spreadsheet evaluates a cell that starts with =, +, - or @ (and some read a
leading tab or carriage return the same way), so a name such as `=HYPERLINK("http://evil", "x")`
would become a live formula in the reader's spreadsheet. Every cell we write goes through
`escape_cell`: when it starts with one of those characters it gets a leading single quote, which
spreadsheets take as "this cell is text" (OWASP's advice).

Phone numbers. A destination such as `+15551234567` starts with "+": a spreadsheet would evaluate
it as the number 15551234567 (dropping the + and, for long numbers, digits). The same quote makes
it the text `+15551234567`, which is what a phone number is. So phone numbers are deliberately
escaped like any other cell; programs reading the CSV (not spreadsheets) should strip one leading
quote before a cell that starts with one of the characters above. Our own numbers (quantities,
costs, rates, counts) are never negative, so they are never quoted.

Cost and rate columns are written only when the caller says the account may see pricing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

from django.http import StreamingHttpResponse
from django.utils.text import slugify

from billing.usage.selectors import GROUP_BY_ACCOUNT, GROUP_BY_PRODUCT, UsageRow

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 1000


def escape_cell(value: object) -> str:
    text = _as_text(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return _plain_decimal(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _plain_decimal(value: Decimal) -> str:
    """Exact, without exponent or trailing zeros: 12.500000 -> 12.5, 0E-12 -> 0."""
    return f"{value.normalize():f}"


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """The CSV text, a chunk of rows at a time (never the whole file in memory)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([escape_cell(h) for h in header])
    for count, row in enumerate(rows, start=1):
        writer.writerow([escape_cell(cell) for cell in row])
        if count % ROWS_PER_CHUNK == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate(0)
    return text


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


def export_filename(kind: str, account_name: str, start: date, end: date) -> str:
    """usage-report-acme-reseller-2026-11-01-to-2026-11-27.csv (ASCII only, no quotes)."""
    return f"{kind}-{slugify(account_name) or 'account'}-{start.isoformat()}-to-{end.isoformat()}.csv"


# --- The report ------------------------------------------------------------------------------------------


def report_header(group_by: str, *, pricing: bool) -> list[str]:
    if group_by == GROUP_BY_PRODUCT:
        group = ["product", "product_name", "unit"]
    elif group_by == GROUP_BY_ACCOUNT:
        group = ["account_id", "account_name"]
    else:
        group = [group_by]
    money = ["cost", "currency"] if pricing else []
    return [*group, "quantity", "records", *money]


def report_rows(rows: Iterable[UsageRow], group_by: str, *, pricing: bool) -> Iterator[list[object]]:
    for row in rows:
        if group_by == GROUP_BY_PRODUCT:
            group = [row.key, row.label, row.unit]
        elif group_by == GROUP_BY_ACCOUNT:
            group = [row.key, row.label]
        else:
            group = [row.label]
        money = [row.cost, "USD"] if pricing else []
        yield [*group, row.quantity, row.records, *money]


# --- The records --------------------------------------------------------------------------------------------

# (CSV column, UsageRecord field for values_list)
RECORD_COLUMNS = [
    ("started_at", "started_at"),
    ("account_id", "account__public_id"),
    ("account_name", "account__name"),
    ("product", "product__sku"),
    ("quantity", "quantity"),
    ("unit", "product__unit"),
    ("direction", "direction"),
    ("country", "country"),
    ("destination", "destination"),
    ("idempotency_key", "idempotency_key"),
]
PRICE_COLUMNS = [("rate", "rate"), ("cost", "cost"), ("currency", "product__currency")]


def record_columns(*, pricing: bool, show_account: bool) -> list[tuple[str, str]]:
    columns = [c for c in RECORD_COLUMNS if show_account or not c[0].startswith("account_")]
    return columns + PRICE_COLUMNS if pricing else columns
