"""Usage records partitioned by month on PostgreSQL (billing.usage.partitions): records land in
their month's partition, a key stays unique per account across months, the coming months are made
ahead, rows stranded in the default partition move into their month, a closed month detaches in
constant time with its totals and invoices untouched, and a month's query reads only its partition.
SQLite keeps one table: the rule of keys is the same there."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from accounts.actor import Actor
from billing.models import CloseRun, MonthlyUsage, UsageRecord
from billing.periods import next_month
from billing.tasks import create_usage_partitions
from billing.usage import partitions
from billing.usage.services import ingest_usage

postgres_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="partitioning is PostgreSQL's")


def ingest(world, rows):
    return ingest_usage(
        submitter=world.manager, rows=rows, source="api", actor=Actor(user=world.users["owner"]), filename=""
    )


def row(key: str, at: datetime, quantity: str = "1") -> dict:
    return {"product": "sms.outbound", "quantity": quantity, "started_at": at.isoformat(), "idempotency_key": key}


def partition_of(record: UsageRecord) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {partitions.parent()} WHERE id = %s",  # noqa: S608
            [record.pk],
        )
        return cursor.fetchone()[0]


def this_month() -> date:
    return timezone.now().date().replace(day=1)


def test_a_key_stored_in_one_month_is_a_duplicate_in_another(world):
    """The idempotency key is unique per account, whatever the start time: the database's unique
    index holds the partition key, so ingestion looks across months itself."""
    now = timezone.now() - timedelta(minutes=1)
    earlier = now - timedelta(days=40)
    assert ingest(world, [row("call-1", earlier)]).accepted == 1
    again = ingest(world, [row("call-1", now), row("call-2", now)])
    assert (again.accepted, again.duplicates) == (1, 1)
    assert sorted(UsageRecord.objects.filter(account=world.manager).values_list("idempotency_key", flat=True)) == [
        "call-1",
        "call-2",
    ]


def test_the_command_says_sqlite_has_one_table(db):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL partitions the table")
    assert partitions.partitions() == [] and partitions.create_ahead(date(2026, 1, 1)) == []
    with pytest.raises(CommandError, match="PostgreSQL only"):
        call_command("usage_partitions")


@postgres_only
def test_the_migration_made_this_month_and_the_next_ones_and_a_default(db):
    months = [p.month for p in partitions.partitions()]
    assert months[-1] is None  # the default partition, last
    first = this_month()
    assert {first, next_month(first), next_month(next_month(first))} <= set(months)


@postgres_only
def test_a_record_lands_in_its_months_partition_and_an_old_month_in_the_default(world):
    now = timezone.now() - timedelta(minutes=1)
    old = datetime(2025, 6, 1, 10, tzinfo=UTC)
    ingest(world, [row("now", now), row("old", old)])
    assert partition_of(UsageRecord.objects.get(idempotency_key="now")) == partitions.name_of(this_month())
    assert partition_of(UsageRecord.objects.get(idempotency_key="old")) == f"{partitions.parent()}_default"


@postgres_only
def test_making_a_month_moves_its_rows_out_of_the_default_partition(world):
    june = datetime(2025, 6, 1, 10, tzinfo=UTC)
    ingest(world, [row("june-1", june), row("june-2", june + timedelta(days=29)), row("july", june + timedelta(30))])
    assert partitions.ensure_month(date(2025, 6, 1)) is True
    assert partitions.ensure_month(date(2025, 6, 1)) is False  # made once
    name = partitions.name_of(date(2025, 6, 1))
    assert {partition_of(r) for r in UsageRecord.objects.filter(idempotency_key__startswith="june")} == {name}
    assert partition_of(UsageRecord.objects.get(idempotency_key="july")) == f"{partitions.parent()}_default"
    # The moved rows keep their keys' rule and indexes: re-sending them adds nothing.
    again = ingest(world, [row("june-1", june), row("june-2", june + timedelta(days=29))])
    assert (again.accepted, again.duplicates) == (0, 2)


@postgres_only
def test_beat_makes_the_coming_months_ahead_once(db):
    later = date(2031, 5, 17)
    made = partitions.create_ahead(later)
    assert made == [date(2031, 5, 1), date(2031, 6, 1), date(2031, 7, 1)]
    assert partitions.create_ahead(later) == []
    assert create_usage_partitions() == []  # this month's and the next ones exist since the migration


@postgres_only
def test_a_closed_month_detaches_in_constant_time_and_its_totals_stay(world):
    june = date(2025, 6, 1)
    ingest(world, [row(f"june-{n}", datetime(2025, 6, 2, 10, tzinfo=UTC) + timedelta(hours=n)) for n in range(3)])
    partitions.ensure_month(june)
    today = timezone.now().date()
    with pytest.raises(partitions.PartitionError, match="not closed"):
        partitions.detach(june, today=today)
    with pytest.raises(partitions.PartitionError, match="not over yet"):
        partitions.detach(this_month(), today=today)
    CloseRun.objects.create(period=june, finished_at=timezone.now())
    totals = list(MonthlyUsage.objects.filter(month=june).values_list("account_id", "quantity", "records"))
    call_command("usage_partitions", detach="2025-06")
    name = partitions.name_of(june)
    assert not UsageRecord.objects.filter(idempotency_key__startswith="june").exists()
    assert list(MonthlyUsage.objects.filter(month=june).values_list("account_id", "quantity", "records")) == totals
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {name}")  # noqa: S608  the archive, outside the usage records
        assert cursor.fetchone()[0] == 3
    with pytest.raises(partitions.PartitionError, match="no partition"):
        partitions.detach(june, today=today)


@postgres_only
def test_a_months_records_query_reads_only_that_months_partition(world):
    month = this_month()
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    query = UsageRecord.objects.filter(started_at__gte=start, started_at__lt=start + timedelta(days=5))
    with connection.cursor() as cursor:
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(line for (line,) in cursor.fetchall())
    scanned = {p.name for p in partitions.partitions() if p.name in plan}
    assert scanned == {partitions.name_of(month)}, plan


@postgres_only
def test_the_command_lists_and_refuses_a_bad_month(db, capsys):
    call_command("usage_partitions", ahead=1)
    out = capsys.readouterr().out
    assert partitions.name_of(this_month()) in out and "default" in out
    with pytest.raises(CommandError, match="2026-10"):
        call_command("usage_partitions", detach="June")
