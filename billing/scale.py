"""Scale data for benchmarks: many managed accounts and millions of rated usage records, written
in bulk (PostgreSQL COPY), with daily totals built set-based from the raw records.

This bypasses `ingest_usage`'s per-batch validation on purpose: it builds a reference workload in
seconds, not a way in for real usage. The records are rated with the same RateBook, so reports and
invoices over them are what real ingestion would have produced.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction

from accounts.models import Account, Membership, Role, User
from billing.models import DailyUsage, MonthlyUsage, Product, UsageBatch, UsageRecord
from billing.pricing import RateBook

# (sku, share of records, quantity maker)
_MIX = [
    ("voice.outbound", 0.30, lambda r: Decimal(r.randint(1, 1800)) / 60),
    ("voice.inbound", 0.15, lambda r: Decimal(r.randint(1, 1200)) / 60),
    ("voice.tollfree.inbound", 0.05, lambda r: Decimal(r.randint(1, 900)) / 60),
    ("sms.outbound", 0.25, lambda r: Decimal(r.randint(1, 3))),
    ("sms.inbound", 0.12, lambda r: Decimal(1)),
    ("mms.outbound", 0.05, lambda r: Decimal(1)),
    ("mms.inbound", 0.03, lambda r: Decimal(1)),
    ("fax.outbound", 0.03, lambda r: Decimal(r.randint(1, 12))),
    ("number.local", 0.015, lambda r: Decimal(1)),
    ("number.tollfree", 0.005, lambda r: Decimal(1)),
]


def build_managed_accounts(manager: Account, count: int) -> list[Account]:
    """`count` managed accounts with owners: half roll-up, half separate, a tenth with hidden pricing."""
    tag = uuid.uuid4().hex[:8]
    accounts = Account.objects.bulk_create(
        Account(
            name=f"Scale Customer {i:05d}",
            email=f"owner{i}-{tag}@scale.example.com",
            kind=Account.Kind.MANAGED,
            manager=manager,
            billing_mode=Account.BillingMode.ROLLUP if i % 2 == 0 else Account.BillingMode.SEPARATE,
            pricing_hidden=i % 10 == 0,
        )
        for i in range(count)
    )
    users = User.objects.bulk_create(User(email=a.email, password="!") for a in accounts)
    Membership.objects.bulk_create(
        Membership(user=u, account=a, role=Role.OWNER) for u, a in zip(users, accounts, strict=True)
    )
    return accounts


def _weights(rng: random.Random, n: int) -> list[float]:
    """A few large accounts and a long tail (Pareto, alpha 1.2)."""
    return [rng.paretovariate(1.2) for _ in range(n)]


def build_usage(*, accounts: list[Account], start: date, days: int, records: int, seed: int = 7) -> int:
    """`records` rated usage records spread over `accounts` and `days` days from `start` (UTC)."""
    rng = random.Random(seed)
    products = {p.sku: p for p in Product.objects.all()}
    book = RateBook(accounts)
    skus = [sku for sku, _, _ in _MIX]
    shares = [share for _, share, _ in _MIX]
    makers = {sku: maker for sku, _, maker in _MIX}
    picks = rng.choices(range(len(accounts)), weights=_weights(rng, len(accounts)), k=records)
    origin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    span = days * 86400
    with transaction.atomic():
        batch = UsageBatch.objects.create(submitted_by_account=accounts[0].manager or accounts[0], source="simulator")
        rows = _rows(rng, accounts, picks, products, skus, shares, makers, book, origin, span, batch.pk)
        _write(rows)
        _totals_from_records(batch.pk)
        UsageBatch.objects.filter(pk=batch.pk).update(accepted=records)
    _analyze()
    return records


def _analyze() -> None:
    """Fresh planner statistics after a bulk load, as autovacuum would give them a little later."""
    with connection.cursor() as cursor:
        for model in (UsageRecord, DailyUsage, MonthlyUsage, Account):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def _rows(rng, accounts, picks, products, skus, shares, makers, book, origin, span, batch_id):
    now = datetime.now(UTC)
    for n, index in enumerate(picks):
        account = accounts[index]
        sku = rng.choices(skus, weights=shares)[0]
        product = products[sku]
        started = origin + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(1_000_000))
        quantity = makers[sku](rng).quantize(Decimal("0.000001"))
        rate = book.rate_for(account, product.pk, started)
        yield (
            account.pk,
            product.pk,
            quantity,
            started,
            f"scale-{batch_id}-{n}",
            "outbound" if "outbound" in sku else "inbound",
            "US",
            f"+1{rng.randrange(2_000_000_000, 9_999_999_999)}",
            rate,
            quantity * rate,
            batch_id,
            now,
        )


_COLUMNS = (
    "account_id, product_id, quantity, started_at, idempotency_key, direction, country, destination, "
    "rate, cost, batch_id, created_at"
)


def _write(rows) -> None:
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
    """Set-based: per totals table one INSERT ... SELECT ... GROUP BY that adds to existing totals."""
    records = connection.ops.quote_name(UsageRecord._meta.db_table)
    if connection.vendor == "postgresql":
        day = "(started_at AT TIME ZONE 'UTC')::date"
        month = "date_trunc('month', started_at AT TIME ZONE 'UTC')::date"
    else:
        day, month = "date(started_at)", "date(started_at, 'start of month')"
    for model, period, expression in ((DailyUsage, "day", day), (MonthlyUsage, "month", month)):
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (account_id, product_id, {period}, quantity, cost, records) "  # noqa: S608
                f"SELECT account_id, product_id, {expression}, SUM(quantity), SUM(cost), COUNT(*) FROM {records} "
                f"WHERE batch_id = %s GROUP BY account_id, product_id, {expression} "
                f"ON CONFLICT (account_id, product_id, {period}) DO UPDATE SET "
                f"quantity = {table}.quantity + EXCLUDED.quantity, cost = {table}.cost + EXCLUDED.cost, "
                f"records = {table}.records + EXCLUDED.records",
                [batch_id],
            )
