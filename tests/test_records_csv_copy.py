"""The usage-records CSV written by PostgreSQL's COPY (issue 16): byte for byte the Python path's CSV.

On PostgreSQL the view streams `COPY (SELECT ...) TO STDOUT WITH (FORMAT csv, HEADER)` of the
records' own query, each cell the SQL twin of its Python rule (reporting.exports.CELLS). Here the
records hold hostile values (formula triggers, tabs, quotes, commas, line breaks, unicode, a 30-digit
cost and a 1e-12 one, negative numbers, empty fields, a product whose sku, unit and currency are
hostile too) over several accounts and products, and each body the view streams is compared with
the body of the Python path (`csv_lines` over `usage_record_rows`), called directly.
"""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from psycopg import pq

from accounts.models import Account
from accounts.permissions import can_see_pricing
from billing.models import Product, UsageBatch, UsageRecord
from billing.usage import selectors
from reporting import exports
from reporting.forms import UsageFilterForm
from tests.factories import AccountFactory

pytestmark = pytest.mark.postgres

RANGE = {"start": "2025-03-01", "end": "2025-04-30"}

HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example","x")',
    "+SUM(A1:A9)",
    "-2+3",
    "@cmd",
    "\tTabbed, Inc.",
    '"Quoted" & Co',
    "Line\nBreak\r\nLtd",
    "\rCarriage",
    "Ünïcødé 東京 🚀",
    "  spaced  ",
    "\\.",
    "'already quoted",
]

# (idempotency key, direction, country, destination, quantity, rate, cost, started_at)
HOSTILE_RECORDS = [
    ("=1+1", "outbound", "US", "+15551234567", "10", "0.01", "0.1", "2025-03-01T10:00:00Z"),
    ("+cmd", "", "", "", "0", "0", "0E-12", "2025-03-01T00:00:00.000001Z"),
    ("-x", "@in", "+1", "-", "0.000001", "0.000001", "0.000000000001", "2025-03-15T23:59:59.999999Z"),
    ("@SUM(1)", "inbound", "\t1", "\r\n+1", "99999999999999.999999", "12345678.123456",
     "123456789012345678.123456789012", "2025-04-02T12:34:56.5+02:00"),
    ("\ttab", "=", "=,", '"', "12.500000", "-0.5", "-1.500000000000", "2025-04-30T23:59:59Z"),
    ('a "quoted", key', "x\ny", ",", "a,b", "100", "1", "100", "2025-03-31T23:59:59.999999Z"),
    ("unicode ☎ ü", "ø", "é", "東京", "1.000000", "0.004", "0.004", "2025-03-02T08:00:00Z"),
    ("line\nbreak", "", "GB", "", "3", "0.004", "0.012", "2025-03-02T08:00:00Z"),
    ("\\.", "\\.", "", "\\.", "1", "1", "1", "2025-04-10T00:00:00Z"),
    ("", " ", " ", " ", "7", "0.004", "0.028", "2025-03-20T06:00:00Z"),
]  # fmt: skip


@pytest.fixture(autouse=True)
def _postgresql_only(db):
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's; SQLite keeps the Python path")


@pytest.fixture
def hostile(world):
    """Hostile records for the two managed accounts and the manager, over three products."""
    plain = Product.objects.get(sku="sms.outbound")
    evil = Product.objects.create(sku="=evil.sku", name="-Evil", unit="+unit\n,", currency='=,"')
    blank = Product.objects.create(sku="blank", name="", unit="", currency="")
    Account.objects.filter(pk=world.managed.pk).update(name=HOSTILE_NAMES[0])
    Account.objects.filter(pk=world.sibling.pk).update(name='Line\nBreak, "Ltd" 東京')
    accounts = [world.managed, world.sibling, world.manager, world.other_managed]
    products = [plain, evil, blank]
    records = []
    for n, (key, direction, country, destination, quantity, rate, cost, moment) in enumerate(HOSTILE_RECORDS * 3):
        account = accounts[n % len(accounts)]
        batch = UsageBatch.objects.create(submitted_by_account=account, source=UsageBatch.Source.API)
        records.append(
            UsageRecord(
                account=account,
                product=products[n % len(products)],
                quantity=Decimal(quantity),
                started_at=datetime.fromisoformat(moment) + timedelta(microseconds=n // len(HOSTILE_RECORDS)),
                idempotency_key=f"{key}{n}" if n >= len(HOSTILE_RECORDS) else key,
                direction=direction,
                country=country,
                destination=destination,
                rate=Decimal(rate),
                cost=Decimal(cost),
                batch=batch,
            )
        )
    UsageRecord.objects.bulk_create(records)
    for n, name in enumerate(HOSTILE_NAMES[1:]):  # more accounts, each with a hostile name and a record
        mode = Account.BillingMode.SEPARATE if n % 2 else Account.BillingMode.ROLLUP
        extra = AccountFactory(name=name, managed_kind=True, manager=world.manager, billing_mode=mode)
        batch = UsageBatch.objects.create(submitted_by_account=extra, source=UsageBatch.Source.API)
        UsageRecord.objects.create(
            account=extra,
            product=evil,
            quantity=Decimal("1.5"),
            started_at=datetime(2025, 3, 5, 1, 2, 3, n, tzinfo=timezone(timedelta(hours=-5))),
            idempotency_key=name,
            destination=name[:32],
            rate=Decimal("0.010000"),
            cost=Decimal("0.015000000000"),
            batch=batch,
        )
    return world


def _python_body(account: Account, params: dict[str, str]) -> bytes:
    """The Python path, called directly: `csv_lines` over the selector's rows, as the view did."""
    form = UsageFilterForm(params, account=account)
    assert form.is_valid(), form.errors
    filters = form.filters()
    columns = exports.record_columns(pricing=can_see_pricing(account), show_account=account.is_manager)
    rows = selectors.usage_record_rows(
        accounts=filters.accounts,
        start=filters.start,
        end=filters.end,
        product=filters.product,
        fields=[field for _, field in columns],
    )
    return "".join(exports.csv_lines([name for name, _ in columns], rows)).encode()


def _streamed(response) -> bytes:
    assert response.status_code == 200 and response.streaming
    return b"".join(response.streaming_content)


def _copied(client, account: Account, params: dict[str, str]) -> bytes:
    """The view's body, and proof that COPY wrote it."""
    response = client.get(reverse("usage_records_csv", args=[account.public_id]), params)
    with CaptureQueriesContext(connection) as queries:
        body = _streamed(response)
    assert [q["sql"] for q in queries.captured_queries if q["sql"].startswith("COPY (SELECT ")], "no COPY ran"
    return body


CASES = [
    ("owner", "manager", {**RANGE, "scope": "all"}),
    ("owner", "manager", {**RANGE, "scope": "managed"}),
    ("owner", "manager", {**RANGE, "scope": "all", "product": "=evil.sku"}),
    ("managed_owner", "managed", RANGE),
    ("manager_acting", "managed", RANGE),
    ("owner", "manager", {"start": "2025-03-15", "end": "2025-03-15", "scope": "all"}),  # one day, one row
    ("owner", "manager", {"start": "2024-01-01", "end": "2024-01-31", "scope": "all"}),  # the header alone
]


@pytest.mark.parametrize("hidden", [False, True], ids=["visible-pricing", "hidden-pricing"])
@pytest.mark.parametrize(("who", "whose", "params"), CASES)
def test_the_copy_body_is_the_python_body_byte_for_byte(hostile, persona, who, whose, params, hidden):
    if hidden:
        Account.objects.filter(pk=hostile.managed.pk).update(pricing_hidden=True)
        hostile.managed.refresh_from_db()
    account = getattr(hostile, whose)
    params = dict(params)
    if params.get("scope") == "managed":
        params["scope"] = str(hostile.managed.public_id)
    copied = _copied(persona(who), account, params)
    python = _python_body(account, params)
    assert copied == python
    rows = list(csv.reader(io.StringIO(copied.decode(), newline="")))
    pricing = not (hidden and whose == "managed")
    assert ({"rate", "cost", "currency"} <= set(rows[0])) is pricing  # hidden pricing: no money at all
    assert ("account_name" in rows[0]) is (whose == "manager")


def test_the_hostile_values_come_out_escaped_and_exact(hostile, persona):
    body = _copied(persona("owner"), hostile.manager, {**RANGE, "scope": "all"})
    assert body == _python_body(hostile.manager, {**RANGE, "scope": "all"})
    text = body.decode()
    assert text.startswith("started_at,account_id,account_name,product,quantity,unit,direction,")
    assert text.endswith("\r\n") and "\r\n" in text
    assert '"\'=HYPERLINK(""http://evil.example"",""x"")"' in text  # quoted, quotes doubled, escaped
    assert '"\'\tTabbed, Inc."' in text and "'+SUM(A1:A9)" in text and "'@cmd" in text
    assert '"Line\nBreak\r\nLtd"' in text and "Ünïcødé 東京 🚀" in text
    assert ",123456789012345678.123456789012," in text  # 30 digits, exact (not rounded to 28)
    assert ",0.000000000001," in text and ",99999999999999.999999," in text
    assert ",'-0.5,'-1.5," in text  # a negative rate and cost are escaped like any "-" cell
    assert "2025-04-02T10:34:56.500001Z" in text  # UTC, microseconds, Z
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 1 + UsageRecord.objects.filter(account__manager=hostile.manager).count()
    assert all(len(r) == len(rows[0]) for r in rows)


@pytest.mark.django_db(transaction=True)
def test_the_server_runs_the_copy_while_the_response_streams(catalogue, hostile, persona, monkeypatch):
    """Not only our own log: PostgreSQL's pg_stat_activity, read from another connection while the
    response is half streamed, shows the COPY as this connection's statement."""
    monkeypatch.setattr(exports, "COPY_ROWS_PER_CHUNK", 2)
    response = persona("owner").get(reverse("usage_records_csv", args=[hostile.manager.public_id]), RANGE)
    try:
        first = next(iter(response.streaming_content))
        pid = connection.connection.info.backend_pid
        other = connection.get_new_connection(connection.get_connection_params())
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
                (query,) = cursor.fetchone()
        finally:
            other.close()
    finally:
        response.close()
    assert first.startswith(b"started_at,account_id,")
    assert query.startswith("COPY (SELECT to_char(c0 AT TIME ZONE 'UTC'")


def test_the_body_streams_in_chunks_of_rows(hostile, persona, monkeypatch):
    monkeypatch.setattr(exports, "COPY_ROWS_PER_CHUNK", 4)
    response = persona("owner").get(reverse("usage_records_csv", args=[hostile.manager.public_id]), RANGE)
    chunks = list(response.streaming_content)
    assert len(chunks) > 5 and all(isinstance(c, bytes) for c in chunks)
    assert all(c.endswith(b"\r\n") for c in chunks)
    assert b"".join(chunks) == _python_body(hostile.manager, RANGE)


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_a_body_without_quotes_is_the_python_body_too(world, persona, monkeypatch, size):
    """Chunks with no quoted cell take `_crlf`'s fast way (every LF ends a row)."""
    monkeypatch.setattr(exports, "COPY_ROWS_PER_CHUNK", size)
    product = Product.objects.get(sku="voice.outbound")
    batch = UsageBatch.objects.create(submitted_by_account=world.managed, source=UsageBatch.Source.API)
    UsageRecord.objects.bulk_create(
        UsageRecord(account=world.managed if n % 2 else world.sibling, product=product, quantity=Decimal(n),
                    started_at=datetime(2025, 3, 1, n, tzinfo=UTC), idempotency_key=f"k{n}", destination="15551234567",
                    rate=Decimal("0.010000"), cost=Decimal(n) / 100, batch=batch)
        for n in range(7)
    )  # fmt: skip
    params = {**RANGE, "scope": "all"}
    body = _copied(persona("owner"), world.manager, params)
    assert b'"' not in body and body.count(b"\r\n") == 8 and b"\n" not in body.replace(b"\r\n", b"")
    assert body == _python_body(world.manager, params)


def test_a_rollup_account_at_resale_prices_keeps_the_python_path(hostile, persona):
    """Prices computed in Python (a roll-up account's resale prices) are not the stored cost: no COPY."""
    from billing.models import ResaleTerms

    ResaleTerms.objects.create(manager=hostile.manager, markup_percent=Decimal("10.00"))
    response = persona("managed_owner").get(reverse("usage_records_csv", args=[hostile.managed.public_id]), RANGE)
    with CaptureQueriesContext(connection) as queries:
        body = _streamed(response)
    assert not [q for q in queries.captured_queries if q["sql"].startswith("COPY")]
    assert b",0.11," in body  # 0.1 at 10 % markup


SLOW_COPY = "COPY (SELECT g, pg_sleep(0.001)::text FROM generate_series(1, 100000) AS g) TO STDOUT WITH (FORMAT csv)"


def _close_early(monkeypatch) -> float:
    """Reads one chunk of a COPY that would take 100 s, then closes it as the server does when the
    client goes away: the seconds it took."""
    monkeypatch.setattr(exports, "COPY_ROWS_PER_CHUNK", 5)
    began = time.monotonic()
    chunks = exports.copy_csv_chunks("default", SLOW_COPY, ())
    try:
        first = next(chunks)
    finally:
        chunks.close()  # (a generator left open mid-COPY would hold the connection's lock)
    assert first == b'1,""\r\n2,""\r\n3,""\r\n4,""\r\n5,""\r\n'  # pg_sleep's void is '', not NULL
    return time.monotonic() - began


def test_a_response_closed_early_cancels_the_copy_and_the_transaction_goes_on(hostile, monkeypatch):
    count = UsageRecord.objects.count()
    assert _close_early(monkeypatch) < 30  # cancelled, not read to the end
    assert connection.connection.info.transaction_status == pq.TransactionStatus.INTRANS  # not aborted
    assert UsageRecord.objects.count() == count


@pytest.mark.django_db(transaction=True)
def test_a_response_closed_early_leaves_an_idle_connection_in_autocommit(monkeypatch):
    assert connection.get_autocommit()
    assert _close_early(monkeypatch) < 30
    assert connection.connection.info.transaction_status == pq.TransactionStatus.IDLE
    assert Account.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_view_response_closed_early_keeps_the_connection_for_the_next_request(
    catalogue, hostile, persona, monkeypatch
):
    """As in production (autocommit, a persistent connection): the server closes the response when
    the client goes away, `close_old_connections` then finds the connection usable and keeps it."""
    monkeypatch.setattr(exports, "COPY_ROWS_PER_CHUNK", 2)
    response = persona("owner").get(reverse("usage_records_csv", args=[hostile.manager.public_id]), RANGE)
    try:
        first = next(iter(response.streaming_content))
        raw = connection.connection
        assert raw.info.transaction_status == pq.TransactionStatus.ACTIVE  # mid-COPY
    finally:
        response.close()  # request_finished -> close_old_connections, as under gunicorn
    assert first.startswith(b"started_at,") and first.count(b"\r\n") == 2
    assert connection.connection is raw and raw.info.transaction_status == pq.TransactionStatus.IDLE
    assert Account.objects.filter(pk=hostile.manager.pk).exists()


def test_every_cell_of_the_records_has_a_sql_twin():
    """A new column whose kind has no SQL twin is refused, never written otherwise than by Python."""
    columns = exports.record_columns(pricing=True, show_account=True)
    statement, _ = exports.copy_select(UsageRecord.objects.all(), columns)
    assert statement.count(" AS ") >= len(columns)
    with pytest.raises(TypeError, match="no SQL twin"):
        exports.copy_select(UsageRecord.objects.all(), [("started_at", "started_at"), ("active", "product__active")])


@pytest.mark.parametrize(
    "value",
    [Decimal("123456789012345678.123456789012"), Decimal("0E-12"), Decimal("12.500000"), Decimal("100"),
     Decimal("-1.50"), Decimal("0.000000000001"), datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)],
)  # fmt: skip
def test_each_cell_rule_reads_the_same_in_sql(value):
    """The SQL twin of a cell, evaluated by PostgreSQL, is the Python rule's text."""
    literal = f"'{value}'::numeric" if isinstance(value, Decimal) else f"'{value.isoformat()}'::timestamptz"
    cell = next(c for c in exports.CELLS if isinstance(value, c.python_type))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {cell.sql.format(literal)}")
        (text,) = cursor.fetchone()
    assert text == exports.escape_cell(value)
