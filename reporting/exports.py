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
costs, rates, counts) are never negative, so they are never quoted (one that were would be, by both
writers below).

Cost and rate columns are written only when the caller says the account may see pricing.

Two writers, one rule. On PostgreSQL the records export is written by the database's own CSV writer,
`COPY (SELECT ...) TO STDOUT WITH (FORMAT csv, HEADER)` (`copy_csv_response`); elsewhere, and for
an account whose prices are computed in Python (roll-up resale prices), by `csv_lines`. Both write
the same bytes: each kind of cell has its Python rule and, beside it, its SQL twin (`CELLS`), and
`escape_cell` has its twin `escape_sql`. Where the two writers differ by nature the SQL side makes
up for it: COPY writes NULL as an empty field but an empty text as `""` (so every text cell is
NULLIF(..., '')), and ends its lines with LF where the csv module writes CRLF (`_crlf` rewrites
the end of each row: COPY sends exactly one row per message). Both quote a cell only when
it holds a comma, a double quote, CR or LF, and double the quotes inside.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import connections, models, transaction
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils.text import slugify

from billing.usage.selectors import GROUP_BY_ACCOUNT, GROUP_BY_PRODUCT, UsageRow

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 1000


def escape_cell(value: object) -> str:
    text = _as_text(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def escape_sql(text: str) -> str:
    """`escape_cell` in SQL, of a text expression; '' becomes NULL, which COPY writes as nothing."""
    codes = ", ".join(str(ord(c)) for c in FORMULA_TRIGGERS)  # ascii(): the code of the first character
    return f"CASE WHEN ascii({text}) IN ({codes}) THEN '''' || {text} ELSE NULLIF({text}, '') END"


def _escape_number_sql(number: str, text: str) -> str:
    """`escape_sql` of a number's text, which starts with a trigger only when it is negative ("-")."""
    return f"CASE WHEN {number} < 0 THEN '''' || {text} ELSE {text} END"


def _as_text(value: object) -> str:
    if value is None:
        return ""
    for cell in CELLS:
        if isinstance(value, cell.python_type):
            return cell.python(value)
    return str(value)


def _plain_decimal(value: Decimal) -> str:
    """Exact, without exponent or trailing zeros: 12.500000 -> 12.5, 0E-12 -> 0. (Not `normalize()`,
    which rounds to the context's 28 digits: a cost has up to 30.)"""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Cell:
    """How one kind of value is written: in Python (`python`, then `escape_cell`, for values of
    `python_type`) and in SQL (`sql`: the escaped cell, a template over the column {0}, for model
    fields of the classes `fields`). An instant, a day or a uuid never starts with a trigger."""

    python_type: type | tuple[type, ...]
    python: Callable[[Any], str]
    fields: tuple[type[models.Field[Any, Any]], ...]
    sql: str


_INSTANT_SQL = """to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""

# Each kind of cell, its Python rule and its SQL twin side by side (the first match wins: a datetime
# is a date). A column of any other kind has no SQL twin: `copy_select` refuses it.
CELLS = (
    Cell(str, str, (models.CharField, models.TextField), escape_sql("{0}")),
    Cell(Decimal, _plain_decimal, (models.DecimalField,), _escape_number_sql("{0}", "trim_scale({0})::text")),
    Cell(datetime, _instant, (models.DateTimeField,), _INSTANT_SQL),
    Cell(date, date.isoformat, (models.DateField,), "to_char({0}, 'YYYY-MM-DD')"),
    Cell(UUID, str, (models.UUIDField,), "{0}::text"),
    Cell(int, str, (models.IntegerField,), _escape_number_sql("{0}", "{0}::text")),
)


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
    return _streamed_csv(filename, csv_lines(header, rows))


def _streamed_csv(filename: str, chunks: Iterator[str] | Iterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
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

# (CSV column, UsageRecord field for values_list); each cell is written by the `CELLS` rule of its field
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


# --- The records, written by PostgreSQL ----------------------------------------------------------------------

COPY_ROWS_PER_CHUNK = 2000


def copies_csv(records: QuerySet[Any]) -> bool:
    """Whether the database of `records` writes their CSV itself (PostgreSQL's COPY)."""
    return connections[records.db].vendor == "postgresql"


def copy_csv_response(
    filename: str, records: QuerySet[Any], columns: Sequence[tuple[str, str]]
) -> StreamingHttpResponse:
    """`csv_response(filename, header, records.values_list(*fields))`, byte for byte, written by
    PostgreSQL's COPY and streamed."""
    statement, params = copy_select(records, columns)
    return _streamed_csv(filename, copy_csv_chunks(records.db, statement, params))


def copy_select(records: QuerySet[Any], columns: Sequence[tuple[str, str]]) -> tuple[str, tuple[Any, ...]]:
    """The COPY statement (and its parameters) that writes `columns` (CSV name, field) of `records`
    as `csv_lines` writes them: each column's `CELLS` SQL over the records' own query (its filters,
    joins and order: a subquery with an ORDER BY is read in its order), under the CSV name."""
    connection = connections[records.db]
    names = [name for name, _ in columns]
    if any(escape_cell(name) != name or not name.isidentifier() for name in names):
        raise ValueError(f"COPY would write this header otherwise: {names}")
    inner, params = records.values_list(*[field for _, field in columns]).query.sql_with_params()
    cells = ", ".join(
        f"{_cell_sql(_model_field(records.model, field), f'c{i}')} AS {connection.ops.quote_name(name)}"
        for i, (name, field) in enumerate(columns)
    )
    aliases = ", ".join(f"c{i}" for i in range(len(columns)))
    select = f"SELECT {cells} FROM ({inner}) AS records ({aliases})"  # noqa: S608  (names and SQL of ours)
    return f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER)", tuple(params)


def _model_field(model: type[models.Model], path: str) -> models.Field[Any, Any]:
    *relations, name = path.split("__")
    for relation in relations:
        model = model._meta.get_field(relation).related_model  # type: ignore[assignment]
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise TypeError(f"{path} is not a column")
    return field


def _cell_sql(field: models.Field[Any, Any], column: str) -> str:
    for cell in CELLS:
        if isinstance(field, cell.fields):
            return cell.sql.format(column)
    raise TypeError(f"no SQL twin for a {type(field).__name__} cell: add one to CELLS")


def copy_csv_chunks(using: str, statement: str, params: Sequence[Any]) -> Iterator[bytes]:
    """What the COPY writes, a chunk of rows at a time with CRLF line ends, read while the response
    streams (constant memory). The COPY starts when the first chunk is asked for and holds the
    connection until the last (as the Python path's server-side cursor does). When the response is
    closed early (the client went away), psycopg cancels the COPY and reads what is left; in a
    transaction a savepoint takes the cancelled statement back: the connection is usable after.
    Until the generator ends or is closed, psycopg holds the connection (its lock): a WSGI server
    closes the response in any case, and so must any other caller that stops reading early."""
    connection = connections[using]
    with connection.cursor() as cursor:
        savepoint = transaction.savepoint(using=using)  # None in autocommit: the COPY is its own
        try:
            with (
                _logged(cursor, statement, params),
                connection.wrap_database_errors,
                cursor.cursor.copy(statement, params) as copy,
            ):
                rows: list[Any] = []
                for row in copy:
                    rows.append(row)
                    if len(rows) == COPY_ROWS_PER_CHUNK:
                        yield _crlf(rows)
                        rows = []
                if rows:
                    yield _crlf(rows)
        except BaseException:
            if savepoint is not None:
                transaction.savepoint_rollback(savepoint, using=using)
            raise
        if savepoint is not None:
            transaction.savepoint_commit(savepoint, using=using)


def _crlf(rows: list[Any]) -> bytes:
    """The rows COPY sent (one a message, each ending with LF) ending with CRLF, as `csv_lines`
    writes them. Without a double quote in the chunk no cell holds a line break (such a cell is
    quoted), so every LF ends a row; else each row's own LF is replaced."""
    data = b"".join(rows)
    if b'"' not in data:
        return data.replace(b"\n", b"\r\n")
    return b"".join([bytes(row[:-1]) + b"\r\n" for row in rows])


def _logged(cursor: Any, statement: str, params: Sequence[Any]) -> AbstractContextManager[None]:
    """The COPY in `connection.queries` (and the django.db.backends log), as any query, when queries
    are logged."""
    if isinstance(cursor, CursorDebugWrapper):
        return cursor.debug_sql(statement, params)
    return nullcontext()
