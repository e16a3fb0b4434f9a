"""A lock per (payer, month) between ingestion and the monthly close.

Ingestion takes it shared (any number of batches at once), the close of that payer's month takes it
exclusive: a close waits for batches in flight to commit and then sees their usage; a batch that
arrives during or after the close waits, then finds the month invoiced and is refused. PostgreSQL
transaction-level advisory locks; on SQLite every write transaction is already exclusive.
"""

from collections.abc import Iterable
from datetime import date

from django.db import connection


def _keys(payer_id: int, month: date) -> tuple[int, int]:
    return payer_id, month.year * 100 + month.month


def hold_shared(pairs: Iterable[tuple[int, date]]) -> None:
    if connection.vendor != "postgresql":
        return
    keys = sorted({_keys(payer_id, month) for payer_id, month in pairs})
    if not keys:
        return
    # One round trip for all of a batch's pairs (a batch can name hundreds of accounts), in key order.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock_shared(a, b)) FROM "
            "(SELECT a, b FROM unnest(%s::int[], %s::int[]) AS k(a, b) ORDER BY a, b) AS ordered",
            [[a for a, _ in keys], [b for _, b in keys]],
        )


def hold_exclusive(payer_id: int, month: date) -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", _keys(payer_id, month))


def hold_exclusive_many(payer_ids: Iterable[int], month: date) -> None:
    """`hold_exclusive` for a batch of payers of one month (the close's batches): one round trip,
    taken in key order, so two batches over overlapping payers queue instead of deadlocking."""
    if connection.vendor != "postgresql":
        return
    keys = sorted({_keys(payer_id, month) for payer_id in payer_ids})
    if not keys:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(a, b)) FROM "
            "(SELECT a, b FROM unnest(%s::int[], %s::int[]) AS k(a, b) ORDER BY a, b) AS ordered",
            [[a for a, _ in keys], [b for _, b in keys]],
        )
