"""Daily totals (account, product, UTC day) always equal the sums of the raw usage records:
after ingest, re-ingest, many batches, across the UTC day boundary, and under concurrent
ingests on PostgreSQL."""

import random
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count, Sum

from accounts.actor import Actor
from billing.models import DailyUsage, MonthlyUsage, Product, Rate, UsageBatch, UsageRecord
from billing.usage import services as usage
from billing.usage.services import ingest_usage

DAY = datetime(2025, 6, 1, tzinfo=UTC)


def row(key, *, sku="voice.outbound", quantity="1", at=DAY, account=None) -> dict:
    values = {"product": sku, "quantity": quantity, "started_at": at.isoformat(), "idempotency_key": key}
    if account is not None:
        values["account"] = str(account.public_id)
    return values


def ingest(world, rows, submitter=None):
    return ingest_usage(
        submitter=submitter or world.manager, rows=rows, source="api", actor=Actor(user=world.users["owner"])
    )


def python_sums() -> dict:
    """(account, product, UTC day) -> [quantity, cost, count], summed in Python Decimal."""
    sums: dict = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    for account, product, started_at, quantity, cost in UsageRecord.objects.values_list(
        "account_id", "product_id", "started_at", "quantity", "cost"
    ):
        total = sums[(account, product, started_at.astimezone(UTC).date())]
        total[0] += quantity
        total[1] += cost
        total[2] += 1
    return {key: tuple(value) for key, value in sums.items()}


def database_sums(account, product, day: date) -> tuple:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    sums = UsageRecord.objects.filter(
        account_id=account, product_id=product, started_at__gte=start, started_at__lt=start + timedelta(days=1)
    ).aggregate(quantity=Sum("quantity"), cost=Sum("cost"), records=Count("id"))
    return sums["quantity"], sums["cost"], sums["records"]


def daily_totals() -> dict:
    return {
        (account, product, day): (quantity, cost, records)
        for account, product, day, quantity, cost, records in DailyUsage.objects.values_list(
            "account_id", "product_id", "day", "quantity", "cost", "records"
        )
    }


def monthly_totals() -> dict:
    return {
        (account, product, month): (quantity, cost, records)
        for account, product, month, quantity, cost, records in MonthlyUsage.objects.values_list(
            "account_id", "product_id", "month", "quantity", "cost", "records"
        )
    }


def monthly_python_sums() -> dict:
    sums: dict = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    for (account, product, day), (quantity, cost, count) in python_sums().items():
        total = sums[(account, product, day.replace(day=1))]
        total[0] += quantity
        total[1] += cost
        total[2] += count
    return {key: tuple(value) for key, value in sums.items()}


def assert_totals_equal_raw_records() -> dict:
    totals = daily_totals()
    assert totals == python_sums()
    assert monthly_totals() == monthly_python_sums()
    for (account, product, day), total in totals.items():
        assert total == database_sums(account, product, day), (account, product, day)
    return totals


def varied_quantity(rng: random.Random) -> str:
    """Voice minutes with six decimals: the digits that float arithmetic would lose."""
    return f"{rng.randint(0, 120)}.{rng.randint(0, 999_999):06d}"


# --- Totals equal raw records ---------------------------------------------------------------------


def test_totals_equal_raw_records_after_one_ingest(world):
    rows = [row(f"c{i}", quantity=q) for i, q in enumerate(["1.5", "0.000001", "12.345678", "0"])]
    ingest(world, rows)
    totals = assert_totals_equal_raw_records()
    voice = Product.objects.get(sku="voice.outbound").pk
    assert totals == {(world.manager.pk, voice, DAY.date()): (Decimal("13.845679"), Decimal("0.13845679"), 4)}


def test_totals_are_unchanged_by_a_resent_batch_and_grow_only_by_new_records(world):
    rows = [row(f"c{i}", quantity=f"{i}.25", at=DAY + timedelta(hours=i)) for i in range(10)]
    ingest(world, rows)
    (first,) = assert_totals_equal_raw_records().values()
    assert first == (Decimal("47.5"), Decimal("0.475"), 10)
    ingest(world, rows)
    (again,) = assert_totals_equal_raw_records().values()
    assert again == first
    ingest(world, [*rows, row("c10", quantity="0.5", at=DAY + timedelta(hours=10))])
    (grown,) = assert_totals_equal_raw_records().values()
    assert grown == (Decimal("48"), Decimal("0.48"), 11)


def test_totals_equal_raw_records_across_days_products_and_accounts(world):
    rng = random.Random(20250601)
    Rate.objects.create(
        product=Product.objects.get(sku="voice.outbound"),
        account=world.manager,
        unit_price=Decimal("0.004125"),
        effective_from=DAY + timedelta(days=2, hours=12),  # a rate change in the middle of a day
    )
    skus = ["voice.outbound", "voice.inbound", "sms.outbound", "number.local"]
    accounts = [None, world.managed, world.sibling]
    for batch in range(6):
        rows = [
            row(
                f"b{batch}-{i}",
                sku=rng.choice(skus),
                quantity=varied_quantity(rng),
                at=DAY + timedelta(seconds=rng.randint(0, 5 * 86400 - 1), microseconds=rng.randint(0, 999_999)),
                account=rng.choice(accounts),
            )
            for i in range(150)
        ]
        ingest(world, rows)
    standard_rows = [row(f"s{i}", quantity=varied_quantity(rng), at=DAY + timedelta(hours=i)) for i in range(60)]
    ingest(world, standard_rows, submitter=world.standard)
    ingest(world, standard_rows[:30], submitter=world.standard)  # a partial re-send
    totals = assert_totals_equal_raw_records()
    assert len(totals) > 40  # many (account, product, day) rows, not one
    assert sum(records for _, _, records in totals.values()) == UsageRecord.objects.count() == 960
    assert {account for account, _, _ in totals} == {
        world.manager.pk,
        world.managed.pk,
        world.sibling.pk,
        world.standard.pk,
    }


@pytest.mark.postgres
def test_a_large_daily_total_keeps_every_decimal(world):
    """Many six-decimal quantities at a six-decimal rate sum to a total with more significant
    digits than a double holds (about 15): the total must still be exact."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite keeps decimals as 15-significant-digit REALs; PostgreSQL is the system of record for money")
    Rate.objects.create(
        product=Product.objects.get(sku="voice.outbound"),
        account=world.manager,
        unit_price=Decimal("0.004125"),
        effective_from=DAY - timedelta(days=1),
    )
    rng = random.Random(7)
    rows = [row(f"c{i}", quantity=f"{rng.randint(100, 999)}.{rng.randint(0, 999_999):06d}") for i in range(2000)]
    ingest(world, rows)
    expected_quantity = sum((Decimal(r["quantity"]) for r in rows), Decimal(0))
    expected_cost = sum((Decimal(r["quantity"]) * Decimal("0.004125") for r in rows), Decimal(0))
    assert len(expected_cost.as_tuple().digits) > 15
    total = DailyUsage.objects.get()
    assert (total.quantity, total.cost, total.records) == (expected_quantity, expected_cost, 2000)
    assert_totals_equal_raw_records()


# --- The UTC day boundary -----------------------------------------------------------------------------


def test_the_last_microsecond_of_a_utc_day_and_the_next_midnight_are_different_days(world):
    midnight = datetime(2025, 6, 2, tzinfo=UTC)
    ingest(world, [row("late", at=midnight - timedelta(microseconds=1), quantity="2"), row("early", at=midnight)])
    totals = {
        day: (quantity, records) for (_, _, day), (quantity, _, records) in assert_totals_equal_raw_records().items()
    }
    assert totals == {date(2025, 6, 1): (Decimal("2"), 1), date(2025, 6, 2): (Decimal("1"), 1)}


def test_a_time_with_an_offset_lands_on_its_utc_day(world):
    rows = [
        {"product": "sms.outbound", "quantity": "1", "started_at": "2025-06-02T01:30:00+02:00", "idempotency_key": "a"},
        {"product": "sms.outbound", "quantity": "2", "started_at": "2025-06-01T22:30:00-05:00", "idempotency_key": "b"},
        {"product": "sms.outbound", "quantity": "4", "started_at": "2025-06-02T00:00:00+00:00", "idempotency_key": "c"},
    ]
    ingest(world, rows)
    days = {day: quantity for (_, _, day), (quantity, _, _) in assert_totals_equal_raw_records().items()}
    # a: 2025-06-01 23:30 UTC; b: 2025-06-02 03:30 UTC; c: midnight UTC.
    assert days == {date(2025, 6, 1): Decimal("1"), date(2025, 6, 2): Decimal("6")}


# --- Concurrent ingests (PostgreSQL) ------------------------------------------------------------------

WRITERS = 6
ROWS_PER_WRITER = 40


def _concurrent_ingests(world) -> tuple[list, list]:
    """WRITERS threads each send their own batch for the same account, product and day, and two
    more send one identical batch, all released at once. Returns ([(name, result)], unexpected errors)."""
    batches = [
        [row(f"w{w}-{i}", quantity=f"{w + 1}.{i:06d}", at=DAY + timedelta(seconds=i)) for i in range(ROWS_PER_WRITER)]
        for w in range(WRITERS)
    ]
    same = [row(f"same-{i}", quantity="0.333333", at=DAY + timedelta(minutes=i)) for i in range(ROWS_PER_WRITER)]
    named = [(f"writer {w}", rows) for w, rows in enumerate(batches)] + [("same", same), ("same", same)]
    barrier = threading.Barrier(len(named))
    results: list = []
    errors: list = []

    def send(name, rows):
        try:
            barrier.wait(timeout=20)
            results.append((name, ingest(world, rows)))
        except Exception as exc:  # any error at all is a failure the test reports
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=pair) for pair in named]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "an ingest hung (deadlock?)"
    return results, errors


def _seed_the_day(world) -> None:
    # An existing total row for the day, so every writer updates the same row (the case where a
    # read-modify-write would lose updates), not only races to insert it.
    ingest(world, [row("seed", quantity="1")])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_ingests_keep_totals_exact_and_store_a_doubled_batch_once(catalogue, world):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises them); run with DATABASE_URL=postgres://")
    # Eight transactions add to one (account, product, day) row at once. The upsert adds inside
    # the database under the row lock, so each sees the others' committed sums; a read-modify-write
    # would lose additions and fail the equality below (demonstrated by the next test).
    _seed_the_day(world)
    results, errors = _concurrent_ingests(world)
    assert errors == []
    assert len(results) == WRITERS + 2
    assert sorted((r.accepted, r.duplicates) for name, r in results if name == "same") == [
        (0, ROWS_PER_WRITER),
        (ROWS_PER_WRITER, 0),
    ]
    assert [(r.accepted, r.duplicates) for name, r in results if name != "same"] == [(ROWS_PER_WRITER, 0)] * WRITERS
    assert UsageRecord.objects.filter(idempotency_key__startswith="same-").count() == ROWS_PER_WRITER
    assert UsageRecord.objects.count() == 1 + (WRITERS + 1) * ROWS_PER_WRITER
    assert UsageBatch.objects.count() == 1 + WRITERS + 1
    (total,) = assert_totals_equal_raw_records().values()
    assert total[2] == 1 + (WRITERS + 1) * ROWS_PER_WRITER


def _read_modify_write_totals(records) -> None:
    """The broken way: read the total, add in Python, write it back. Two writers that read the same
    row before either commits both write `old + mine`, and one addition is lost."""
    sums: dict = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    for r in records:
        total = sums[(r.account.pk, r.product.pk, r.started_at.date())]
        total[0] += r.quantity
        total[1] += r.quantity * r.rate
        total[2] += 1
    for (account, product, day), (quantity, cost, count) in sums.items():
        current = DailyUsage.objects.filter(account_id=account, product_id=product, day=day).first()
        time.sleep(0.2)  # widen the window between read and write, as a busy server would
        DailyUsage.objects.filter(pk=current.pk).update(
            quantity=current.quantity + quantity, cost=current.cost + cost, records=current.records + count
        )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_concurrency_check_catches_a_read_modify_write_upsert(catalogue, world, monkeypatch):
    """Proof that the test above can fail: with the upsert replaced by read-modify-write, the same
    race loses updates and the totals no longer equal the raw records. The real upsert adds in the
    database (`quantity = quantity + EXCLUDED.quantity`) under the row lock, so it cannot."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises them); run with DATABASE_URL=postgres://")
    _seed_the_day(world)
    monkeypatch.setattr(usage, "_add_to_totals", _read_modify_write_totals)
    _, errors = _concurrent_ingests(world)
    assert errors == []
    (total,) = daily_totals().values()
    assert total[2] < UsageRecord.objects.count()  # additions were lost
    assert daily_totals() != python_sums()


def test_monthly_totals_split_at_the_utc_month_boundary(world):
    last_instant = datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)
    ingest(world, [row("jan", at=last_instant), row("feb", at=last_instant + timedelta(microseconds=1))])
    months = sorted(month for (_, _, month) in monthly_totals())
    assert months == [date(2026, 1, 1), date(2026, 2, 1)]
    assert_totals_equal_raw_records()


@pytest.mark.parametrize("group_by", ["day", "month", "product", "account"])
def test_reports_over_partial_and_whole_months_equal_the_raw_records(world, group_by):
    from billing.usage.selectors import usage_summary, usage_totals

    moments = [
        datetime(2026, 1, 14, 23, 0, tzinfo=UTC),  # before the range
        datetime(2026, 1, 15, 0, 0, tzinfo=UTC),  # first day: a partial month, read from daily totals
        datetime(2026, 1, 31, 12, 0, tzinfo=UTC),
        datetime(2026, 2, 1, 0, 0, tzinfo=UTC),  # February is whole: read from monthly totals
        datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 10, 23, 59, 59, 999999, tzinfo=UTC),  # last day: partial March
        datetime(2026, 3, 11, 0, 0, tzinfo=UTC),  # after the range
    ]
    rows = [row(f"m{n}", at=moment, quantity=f"{n + 1}.5") for n, moment in enumerate(moments)]
    rows += [row(f"s{n}", sku="sms.outbound", at=moment, quantity="2") for n, moment in enumerate(moments)]
    ingest(world, rows)

    summary = usage_summary(
        accounts=[world.manager.pk], start=date(2026, 1, 15), end=date(2026, 3, 10), product=None, group_by=group_by
    )

    inside = UsageRecord.objects.filter(
        started_at__gte=datetime(2026, 1, 15, tzinfo=UTC), started_at__lt=datetime(2026, 3, 11, tzinfo=UTC)
    )
    expected = inside.aggregate(q=Sum("quantity"), c=Sum("cost"), n=Count("id"))
    totals = usage_totals(summary)
    assert (totals.quantity, totals.cost, totals.records) == (expected["q"], expected["c"], expected["n"])
    if group_by == "month":
        assert [r.label for r in summary] == ["2026-01", "2026-02", "2026-03"]
