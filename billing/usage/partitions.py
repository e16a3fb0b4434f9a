"""Usage records partitioned by month of start on PostgreSQL (declarative RANGE partitioning on
`started_at`, one partition a UTC calendar month); SQLite keeps one table and every function here
is a no-op on it.

- The migration that partitions the table (billing 0015) makes a partition for every month that
  holds records and for the months ahead; `create_ahead`, sent daily by beat
  (`billing.tasks.create_usage_partitions`), keeps `MONTHS_AHEAD` months ahead ready, so ingestion
  never runs DDL. A record of a month with no partition (months before the first, or if beat has
  not run) lands in the default partition; `ensure_month` later moves such rows into their month's
  own partition.
- Queries that name a start-time range (ingestion's totals, the records pages, the close's checks,
  the bare GROUP BY) touch only the partitions of those months (partition pruning); reports and the
  close read the daily and monthly totals, never the records.
- `detach` takes a closed month out of the table in constant time (a catalogue change, no rows
  copied): its records stay in a table of their own for `pg_dump -t` and `DROP TABLE`, while the
  month's totals, invoices and ledger stay, so reports and invoices of that month are unchanged.
  Only the records pages and the records CSV of that month then show nothing.

The partition key must be in every unique index: the primary key is (id, started_at) in the
database (ids still come from one sequence, so `id` stays unique) and the idempotency key is
unique per (account, key, started_at); ingestion looks a key up across every month itself, so a key
stays unique per account (billing.usage.services).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db import connection, transaction

from billing.models import CloseRun, UsageRecord
from billing.periods import next_month

MONTHS_AHEAD = 2
DEFAULT = "default"


class PartitionError(Exception):
    """A partition cannot be made or detached; the message says why."""


@dataclass(frozen=True)
class Partition:
    name: str
    month: date | None  # None for the default partition
    rows: int  # the planner's estimate (pg_class.reltuples), -1 before the first ANALYZE


def parent() -> str:
    return UsageRecord._meta.db_table


def name_of(month: date) -> str:
    return f"{parent()}_{month:%Y_%m}"


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [parent()])
        return cursor.fetchone() is not None


def _bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = next_month(month)
    return start, datetime(following.year, following.month, 1, tzinfo=UTC)


def partitions() -> list[Partition]:
    """The partitions attached now, months in order, the default one last."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples::bigint FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
            [parent()],
        )
        rows = cursor.fetchall()
    found = []
    for relname, tuples in rows:
        suffix = relname.removeprefix(f"{parent()}_")
        if suffix == DEFAULT:
            found.append(Partition(relname, None, tuples))
        else:
            year, month = suffix.split("_")
            found.append(Partition(relname, date(int(year), int(month), 1), tuples))
    return sorted(found, key=lambda p: (p.month is None, p.month or date.min))


def _attached(cursor, name: str) -> bool:  # type: ignore[no-untyped-def]
    cursor.execute(
        "SELECT 1 FROM pg_inherits WHERE inhparent = to_regclass(%s) AND inhrelid = to_regclass(%s)",
        [parent(), name],
    )
    return cursor.fetchone() is not None


def ensure_month(month: date) -> bool:
    """The month's partition, made if missing (True when made). Rows of that month already in the
    default partition are moved into it in the same transaction."""
    if not is_partitioned():
        return False
    month = month.replace(day=1)
    name = name_of(month)
    quote = connection.ops.quote_name
    start, end = _bounds(month)
    with transaction.atomic(), connection.cursor() as cursor:
        # One maker at a time (two beat runs, or beat and a migration): the second finds it made.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"partition {parent()}"])
        if _attached(cursor, name):
            return False
        default = quote(f"{parent()}_{DEFAULT}")
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {default} WHERE started_at >= %s AND started_at < %s)",  # noqa: S608
            [start, end],
        )
        (stranded,) = cursor.fetchone()
        if not stranded:
            cursor.execute(
                f"CREATE TABLE {quote(name)} PARTITION OF {quote(parent())} FOR VALUES FROM (%s) TO (%s)",
                [start, end],
            )
            return True
        # Rows of this month landed in the default partition: a new partition of the month would
        # contradict them, so they move into a table that is then attached as that partition
        # (ATTACH builds its indexes and keys to match the parent's).
        cursor.execute(f"LOCK TABLE {quote(parent())} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"CREATE TABLE {quote(name)} (LIKE {quote(parent())} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {default} WHERE started_at >= %s AND started_at < %s RETURNING *) "  # noqa: S608
            f"INSERT INTO {quote(name)} SELECT * FROM moved",
            [start, end],
        )
        cursor.execute(
            f"ALTER TABLE {quote(parent())} ATTACH PARTITION {quote(name)} FOR VALUES FROM (%s) TO (%s)",
            [start, end],
        )
        return True


def create_ahead(today: date, *, ahead: int = MONTHS_AHEAD) -> list[date]:
    """This month's partition and the next `ahead` months', made where missing; the months made."""
    made, month = [], today.replace(day=1)
    for _ in range(ahead + 1):
        if ensure_month(month):
            made.append(month)
        month = next_month(month)
    return made


def detach(month: date, *, today: date) -> str:
    """Takes a closed month's partition out of the usage records in constant time; its rows stay
    in the table named in the answer, to be archived (`pg_dump -t`) and dropped by the operator."""
    if not is_partitioned():
        raise PartitionError("Usage records are partitioned by month on PostgreSQL only.")
    month = month.replace(day=1)
    if month >= today.replace(day=1):
        raise PartitionError(f"{month:%Y-%m} is not over yet: only a closed month can be detached.")
    if not CloseRun.objects.filter(period=month, finished_at__isnull=False).exists():
        raise PartitionError(f"{month:%Y-%m} is not closed (no finished monthly close): its invoices need its records.")
    name = name_of(month)
    quote = connection.ops.quote_name
    with transaction.atomic(), connection.cursor() as cursor:
        if not _attached(cursor, name):
            raise PartitionError(f"{month:%Y-%m} has no partition of its own attached ({name}).")
        cursor.execute(f"ALTER TABLE {quote(parent())} DETACH PARTITION {quote(name)}")
    return name
