"""Usage records partitioned by month of start on PostgreSQL (issue 16 item 4; billing.usage.partitions).

PostgreSQL: the table becomes `PARTITION BY RANGE (started_at)` with one partition per month that
holds records, this month's and the next `MONTHS_AHEAD`, and a default partition; the rows are
copied across in this migration's transaction (it holds the table's lock meanwhile: about a minute
per 10 million records on the reference machine, BENCHMARKS.md). Every unique index of a partitioned
table must hold the partition key, so the primary key becomes (id, started_at) in the database (ids
still come from one sequence) and the idempotency key's constraint (account, key, started_at), on
every database so that the rule reads the same everywhere; ingestion still finds a key stored in any
month (billing.usage.services). SQLite keeps one table and only the constraint changes.
"""

from datetime import UTC, date, datetime

from django.db import migrations, models

from billing.periods import next_month

TABLE = "billing_usagerecord"
OLD_TABLE = "billing_usagerecord_unpartitioned"
NAME = "usage_idempotency_key_per_account"
MONTHS_AHEAD = 2  # billing.usage.partitions.MONTHS_AHEAD when this was written; beat keeps it up after

NEW = models.UniqueConstraint(fields=("account", "idempotency_key", "started_at"), name=NAME)


class _ElsewhereThanPostgreSQL:
    """The constraint change on every database but PostgreSQL, where the partitioning below makes it."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)  # type: ignore[misc]

    def database_backwards(self, app_label, schema_editor, from_state, to_state):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)  # type: ignore[misc]


class RemoveConstraintElsewhere(_ElsewhereThanPostgreSQL, migrations.RemoveConstraint):
    pass


class AddConstraintElsewhere(_ElsewhereThanPostgreSQL, migrations.AddConstraint):
    pass


def _utc(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def _definitions(cursor, table: str) -> tuple[list[tuple[str, str]], list[str]]:  # type: ignore[no-untyped-def]
    """The table's foreign keys (name, definition) and the definitions of its indexes that no
    constraint owns, to be made again on the new table under the same names."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype = 'f' ORDER BY conname",
        [table],
    )
    keys = cursor.fetchall()
    cursor.execute(
        "SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x WHERE x.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) "
        "ORDER BY x.indexrelid",
        [table],
    )
    indexes = [row[0].replace(" ON ONLY ", " ON ") for row in cursor.fetchall()]
    return keys, indexes


def partition(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no trigger events pending on the table: DDL may run
        keys, indexes = _definitions(cursor, TABLE)
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD_TABLE}")
        cursor.execute(
            f"CREATE TABLE {TABLE} (LIKE {OLD_TABLE} INCLUDING DEFAULTS INCLUDING STORAGE) "
            "PARTITION BY RANGE (started_at)"
        )
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', started_at AT TIME ZONE 'UTC')::date FROM {OLD_TABLE}"  # noqa: S608
        )
        months = {row[0] for row in cursor.fetchall()}
        month = datetime.now(UTC).date().replace(day=1)
        for _ in range(MONTHS_AHEAD + 1):
            months.add(month)
            month = next_month(month)
        for month in sorted(months):
            cursor.execute(
                f"CREATE TABLE {TABLE}_{month:%Y_%m} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)",
                [_utc(month), _utc(next_month(month))],
            )
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD_TABLE}")  # noqa: S608
        cursor.execute(f"DROP TABLE {OLD_TABLE}")  # its indexes, keys and identity sequence with it
        cursor.execute(f"CREATE SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
        cursor.execute(f"SELECT setval('{TABLE}_id_seq', coalesce(max(id), 0) + 1, false) FROM {TABLE}")  # noqa: S608
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, started_at)")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {NAME} UNIQUE (account_id, idempotency_key, started_at)")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT usage_quantity_not_negative CHECK (quantity >= 0)")
        for definition in indexes:
            cursor.execute(definition)
        for name, definition in keys:
            cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}")
        cursor.execute(f"ANALYZE {TABLE}")


def unpartition(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        keys, indexes = _definitions(cursor, TABLE)
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD_TABLE}")
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {OLD_TABLE} INCLUDING STORAGE)")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD_TABLE}")  # noqa: S608
        cursor.execute(f"DROP TABLE {OLD_TABLE} CASCADE")  # the partitions and the sequence with it
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), coalesce(max(id), 0) + 1, false) FROM {TABLE}"  # noqa: S608
        )
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {NAME} UNIQUE (account_id, idempotency_key)")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT usage_quantity_not_negative CHECK (quantity >= 0)")
        for definition in indexes:
            cursor.execute(definition)
        for name, definition in keys:
            cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}")


class Migration(migrations.Migration):
    dependencies = [("billing", "0014_invoice_terms")]

    operations = [
        RemoveConstraintElsewhere(model_name="usagerecord", name=NAME),
        AddConstraintElsewhere(model_name="usagerecord", constraint=NEW),
        migrations.RunPython(partition, unpartition, elidable=False),
    ]
