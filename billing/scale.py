"""Scale data for benchmarks: the reference workload of issue 6 (one manager, 3,000 managed accounts,
10 products, 10,000,000 rated usage records in one month) or any smaller size, written in bulk.

- Managed accounts: half roll-up, half separate, a tenth with hidden pricing, one in twenty with
  custom pricing allowed and a custom rate.
- Rates in force: the platform list prices, the manager's negotiated rates (with a change in the
  middle of the month for two products) and the custom rates; every record is rated with the rate
  in force at its start, as `billing.usage.rating.RateBook` decides.
- Traffic: accounts weighted Pareto (alpha 1.2: a few large accounts, a long tail), products by a
  realistic mix, start times uniform over the month.
- Bulk: records stream into PostgreSQL with COPY in chunks (memory stays flat at any size); daily
  and monthly totals are built set-based from the raw records in one pass, so they are exactly
  what ingestion would have kept.

This bypasses `ingest_usage`'s per-batch validation on purpose: it builds a reference workload in
minutes, it is not a way in for real usage.
"""

from __future__ import annotations

import bisect
import itertools
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction

from accounts.actor import Actor
from accounts.models import Account, Membership, Role, User
from accounts.services import create_manager_account
from billing.models import DailyUsage, MonthlyUsage, Product, Rate, UsageBatch, UsageRecord
from billing.usage.rating import RateBook

REFERENCE_MANAGED = 3_000
REFERENCE_RECORDS = 10_000_000
CHUNK = 100_000  # records generated at a time: bounds memory at any size
SIX_PLACES = Decimal("0.000001")


def _minutes(low: int, high: int) -> list[Decimal]:
    return [(Decimal(seconds) / 60).quantize(SIX_PLACES) for seconds in range(low, high + 1)]


def _units(low: int, high: int) -> list[Decimal]:
    return [Decimal(n) for n in range(low, high + 1)]


# (sku, share of records, the quantities it takes, drawn uniformly)
MIX: list[tuple[str, float, list[Decimal]]] = [
    ("voice.outbound", 0.30, _minutes(1, 1800)),
    ("voice.inbound", 0.15, _minutes(1, 1200)),
    ("voice.tollfree.inbound", 0.05, _minutes(1, 900)),
    ("sms.outbound", 0.25, _units(1, 3)),
    ("sms.inbound", 0.12, _units(1, 1)),
    ("mms.outbound", 0.05, _units(1, 1)),
    ("mms.inbound", 0.03, _units(1, 1)),
    ("fax.outbound", 0.03, _units(1, 12)),
    ("number.local", 0.015, _units(1, 1)),
    ("number.tollfree", 0.005, _units(1, 1)),
]
# Negotiated rates change mid-month for these, so a month's records carry two rates each.
CHANGED_MID_MONTH = ("voice.outbound", "sms.outbound")
CUSTOM_RATE_SKU = "sms.outbound"


@dataclass(frozen=True)
class Workload:
    manager: Account
    accounts: list[Account]
    month: date
    records: int


def previous_month(today: date) -> date:
    return date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)


def parse_month(value: str) -> date:
    """ "2026-10" as its first day; ValueError otherwise."""
    year, month = (int(part) for part in value.split("-"))
    return date(year, month, 1)


def month_days(month: date) -> int:
    return (date(month.year + month.month // 12, month.month % 12 + 1, 1) - month).days


def build_workload(
    *,
    managed: int = REFERENCE_MANAGED,
    records: int = REFERENCE_RECORDS,
    month: date,
    seed: int = 7,
    name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Workload:
    """A new manager with `managed` managed accounts, its rates, and `records` usage records in `month`."""
    tag = uuid.uuid4().hex[:8]
    manager = create_manager_account(
        name=name or f"Scale Reseller {month:%Y-%m} {tag}",
        owner_email=f"scale-{tag}@scale.example.com",
        owner_password=None,
        limit=max(managed, REFERENCE_MANAGED),
        actor=Actor.platform_staff(),
    )
    accounts = build_managed_accounts(manager, managed)
    build_rates(manager, accounts, month)
    if progress:
        progress(f"{managed:,} managed accounts and their rates")
    build_usage(accounts=accounts, start=month, days=month_days(month), records=records, seed=seed, progress=progress)
    return Workload(manager, accounts, month, records)


def build_managed_accounts(manager: Account, count: int) -> list[Account]:
    """`count` managed accounts with owners: half roll-up, half separate, a tenth with hidden pricing,
    one in twenty with custom pricing allowed."""
    tag = uuid.uuid4().hex[:8]
    accounts = Account.objects.bulk_create(
        Account(
            name=f"Scale Customer {i:05d}",
            email=f"owner{i}-{tag}@scale.example.com",
            kind=Account.Kind.MANAGED,
            manager=manager,
            billing_mode=Account.BillingMode.ROLLUP if i % 2 == 0 else Account.BillingMode.SEPARATE,
            pricing_hidden=i % 10 == 0,
            allow_custom_pricing=i % 20 == 7,
        )
        for i in range(count)
    )
    users = User.objects.bulk_create(User(email=a.email, password="!") for a in accounts)
    Membership.objects.bulk_create(
        Membership(user=u, account=a, role=Role.OWNER) for u, a in zip(users, accounts, strict=True)
    )
    return accounts


def build_rates(manager: Account, accounts: list[Account], month: date) -> None:
    """The manager's negotiated rates (90% of list from the month before; 85% from the 15th for
    CHANGED_MID_MONTH) and a custom rate (80% of list) for each account allowed custom pricing."""
    before = datetime(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1, tzinfo=UTC)
    middle = datetime(month.year, month.month, 15, tzinfo=UTC)
    book = RateBook([manager])
    rates = []
    for product in Product.objects.filter(active=True):
        listed = book.rate_for(manager, product.pk, before)
        if listed is None:
            continue
        rates.append(Rate(product=product, account=manager, unit_price=_share(listed, "0.9"), effective_from=before))
        if product.sku in CHANGED_MID_MONTH:
            rates.append(
                Rate(product=product, account=manager, unit_price=_share(listed, "0.85"), effective_from=middle)
            )
        if product.sku == CUSTOM_RATE_SKU:
            rates += [
                Rate(product=product, account=a, unit_price=_share(listed, "0.8"), effective_from=before)
                for a in accounts
                if a.allow_custom_pricing
            ]
    Rate.objects.bulk_create(rates)


def _share(price: Decimal, factor: str) -> Decimal:
    return (price * Decimal(factor)).quantize(SIX_PLACES)


def build_usage(
    *,
    accounts: list[Account],
    start: date,
    days: int,
    records: int,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> int:
    """`records` rated usage records spread over `accounts` and `days` days from `start` (UTC), with
    their daily and monthly totals, in one transaction."""
    origin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    say = progress or (lambda message: None)
    bulk = connection.vendor == "postgresql" and records >= REBUILD_INDEXES_FROM
    with transaction.atomic():
        batch = UsageBatch.objects.create(submitted_by_account=accounts[0].manager or accounts[0], source="simulator")
        rows = _rows(random.Random(seed), accounts, origin, days * 86400, records, batch.pk, progress)
        with _indexes_rebuilt_after(UsageRecord._meta.db_table, enabled=bulk, progress=say):
            _write(rows)
        _totals_from_records(batch.pk)
        say("daily and monthly totals")
        UsageBatch.objects.filter(pk=batch.pk).update(accepted=records)
    say("committed (foreign keys checked)")
    _analyze()
    say("planner statistics")
    return records


# From this many records, a PostgreSQL load drops the usage table's secondary indexes and foreign
# keys and builds them again afterwards (sorted index builds and one set-based check per key are far
# faster than maintaining them row by row). It is one transaction: nothing is lost if it stops, but
# the table is locked for writing meanwhile. Benchmark databases only.
REBUILD_INDEXES_FROM = 500_000


@contextmanager
def _indexes_rebuilt_after(table: str, *, enabled: bool, progress: Callable[[str], None]) -> Iterator[None]:
    if not enabled:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # checks pending on these tables run now: DDL waits for none
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('f', 'u') ORDER BY contype DESC, conname",
            [table],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) ORDER BY 1",
            [table],
        )
        # A partitioned table's index reads "ON ONLY" (the parent alone); made again, it must cover
        # every partition (billing.usage.partitions).
        indexes = [(name, definition.replace(" ON ONLY ", " ON ")) for name, definition in cursor.fetchall()]
        quoted = connection.ops.quote_name(table)
        for name, _, _ in constraints:
            cursor.execute(f"ALTER TABLE {quoted} DROP CONSTRAINT {connection.ops.quote_name(name)}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
    yield
    progress("records written")
    with connection.cursor() as cursor:
        for _, definition in indexes:
            cursor.execute(definition)
        # Unique constraints first ('u' sorts after 'f' descending), then the foreign keys, each
        # checked by PostgreSQL in one query over the table.
        for name, definition, _ in constraints:
            cursor.execute(f"ALTER TABLE {quoted} ADD CONSTRAINT {connection.ops.quote_name(name)} {definition}")
    progress(f"{len(indexes)} indexes and {len(constraints)} constraints built again")


class _Rates:
    """The rate of every (account, product) in each stretch of [origin, end) between the instants
    at which some rate changes: one bisect per record instead of a RateBook look-up."""

    def __init__(self, accounts: list[Account], products: list[Product], origin: datetime, end: datetime):
        changes = Rate.objects.filter(effective_from__gt=origin, effective_from__lt=end)
        self.changes = sorted(set(changes.values_list("effective_from", flat=True)))
        book = RateBook(accounts)
        self.table = [
            [[book.rate_for(a, p.pk, moment) for moment in (origin, *self.changes)] for p in products] for a in accounts
        ]

    def rate(self, account: int, product: int, moment: datetime) -> Decimal | None:
        return self.table[account][product][bisect.bisect_right(self.changes, moment)]


# One usage record as COPY writes it, in the order of _COLUMNS.
_RecordRow = tuple[int, int, Decimal, datetime, str, str, str, str, Decimal, Decimal, int, datetime]
_Mix = list[tuple[Product, list[Decimal]]]


def _rows(
    rng: random.Random,
    accounts: list[Account],
    origin: datetime,
    span: int,
    records: int,
    batch_id: int,
    progress: Callable[[str], None] | None,
) -> Iterator[_RecordRow]:
    """Queries first (the connection is busy with COPY while the rows stream), then the rows."""
    by_sku = {p.sku: p for p in Product.objects.all()}
    mix = [(by_sku[sku], quantities) for sku, _, quantities in MIX]
    products = [product for product, _ in mix]
    rates = _Rates(accounts, products, origin, origin + timedelta(seconds=span))
    return _stream(rng, accounts, mix, rates, origin, span, records, batch_id, progress)


def _stream(
    rng: random.Random,
    accounts: list[Account],
    mix: _Mix,
    rates: _Rates,
    origin: datetime,
    span: int,
    records: int,
    batch_id: int,
    progress: Callable[[str], None] | None,
) -> Iterator[_RecordRow]:
    products = [product for product, _ in mix]
    account_weights = list(itertools.accumulate(rng.paretovariate(1.2) for _ in accounts))
    product_weights = list(itertools.accumulate(share for _, share, _ in MIX))
    directions = ["inbound" if "inbound" in p.sku else "outbound" for p in products]
    now = datetime.now(UTC)
    for first in range(0, records, CHUNK):
        count = min(CHUNK, records - first)
        picks = rng.choices(range(len(accounts)), cum_weights=account_weights, k=count)
        kinds = rng.choices(range(len(products)), cum_weights=product_weights, k=count)
        for n, (account, kind) in enumerate(zip(picks, kinds, strict=True), start=first):
            started = origin + timedelta(microseconds=rng.randrange(span * 1_000_000))
            quantity = rng.choice(mix[kind][1])
            rate = rates.rate(account, kind, started)
            if rate is None:
                raise ValueError(f"{products[kind].sku} has no price at {started}; load the catalogue first.")
            yield (
                accounts[account].pk,
                products[kind].pk,
                quantity,
                started,
                f"scale-{batch_id}-{n}",
                directions[kind],
                "US",
                f"+1{rng.randrange(2_000_000_000, 9_999_999_999)}",
                rate,
                quantity * rate,
                batch_id,
                now,
            )
        if progress and ((first + count) % 1_000_000 == 0 or first + count == records):
            progress(f"{first + count:,} of {records:,} records")


def _analyze() -> None:
    """Fresh planner statistics after a bulk load, as autovacuum would give them a little later."""
    with connection.cursor() as cursor:
        for model in (UsageRecord, DailyUsage, MonthlyUsage, Account):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


_COLUMNS = (
    "account_id, product_id, quantity, started_at, idempotency_key, direction, country, destination, "
    "rate, cost, batch_id, created_at"
)


def _write(rows: Iterator[_RecordRow]) -> None:
    table = UsageRecord._meta.db_table
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    names = [c.strip() for c in _COLUMNS.split(",")]
    chunk = []
    for row in rows:
        chunk.append(UsageRecord(**dict(zip(names, row, strict=True))))
        if len(chunk) == 5000:
            UsageRecord.objects.bulk_create(chunk)
            chunk = []
    if chunk:
        UsageRecord.objects.bulk_create(chunk)


def _totals_from_records(batch_id: int) -> None:
    """Set-based and additive (ON CONFLICT adds to existing totals). On PostgreSQL one pass over the
    raw records into a temporary table of daily sums; the monthly totals sum those."""
    records = connection.ops.quote_name(UsageRecord._meta.db_table)
    daily = connection.ops.quote_name(DailyUsage._meta.db_table)
    monthly = connection.ops.quote_name(MonthlyUsage._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            for table, period, expression in (
                (daily, "day", "date(started_at)"),
                (monthly, "month", "date(started_at, 'start of month')"),
            ):
                cursor.execute(
                    f"INSERT INTO {table} (account_id, product_id, {period}, quantity, cost, records) "  # noqa: S608
                    f"SELECT account_id, product_id, {expression}, SUM(quantity), SUM(cost), COUNT(*) "
                    f"FROM {records} WHERE batch_id = %s GROUP BY 1, 2, 3 {_adding(table, period)}",
                    [batch_id],
                )
            return
        cursor.execute(
            "CREATE TEMPORARY TABLE scale_daily ON COMMIT DROP AS "  # noqa: S608
            "SELECT account_id, product_id, (started_at AT TIME ZONE 'UTC')::date AS day, "
            f"SUM(quantity) AS quantity, SUM(cost) AS cost, COUNT(*) AS records FROM {records} "
            "WHERE batch_id = %s GROUP BY 1, 2, 3",
            [batch_id],
        )
        cursor.execute(
            f"INSERT INTO {daily} (account_id, product_id, day, quantity, cost, records) "  # noqa: S608
            f"SELECT account_id, product_id, day, quantity, cost, records FROM scale_daily {_adding(daily, 'day')}"
        )
        cursor.execute(
            f"INSERT INTO {monthly} (account_id, product_id, month, quantity, cost, records) "  # noqa: S608
            "SELECT account_id, product_id, date_trunc('month', day)::date, SUM(quantity), SUM(cost), SUM(records) "
            f"FROM scale_daily GROUP BY 1, 2, 3 {_adding(monthly, 'month')}"
        )
        # ON COMMIT DROP covers a failure; dropped now, an enclosing transaction may build again.
        cursor.execute("DROP TABLE scale_daily")


def _adding(table: str, period: str) -> str:
    return (
        f"ON CONFLICT (account_id, product_id, {period}) DO UPDATE SET "
        f"quantity = {table}.quantity + EXCLUDED.quantity, cost = {table}.cost + EXCLUDED.cost, "
        f"records = {table}.records + EXCLUDED.records"
    )
