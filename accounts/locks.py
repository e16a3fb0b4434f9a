"""Row locks, taken one way everywhere: `SELECT ... FOR NO KEY UPDATE` in primary-key order, so that
two transactions locking overlapping rows queue behind each other instead of deadlocking (a transfer
and a reverse transfer at once, two closes of overlapping batches).

NO KEY: the lockers of a row exclude each other, but a transaction that inserts rows referencing a
locked row (usage records, ledger entries and audit events of a locked account) is not held up by
it: PostgreSQL's foreign-key check takes FOR KEY SHARE, which FOR UPDATE would block and FOR NO KEY
UPDATE does not. (Plain FOR UPDATE deadlocked a spend-limit check with usage batches committing
for the same accounts: tests/test_row_locks.py.) We never change a primary key or delete a locked
row, which is what FOR UPDATE would add. SQLite has no row locks: it serialises writers."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)
Rows = models.Manager[M] | models.QuerySet[M]


def lock_rows(queryset: Rows[M]) -> list[M]:
    """Every row of `queryset`, locked until the transaction ends, in primary-key order."""
    return list(queryset.select_for_update(no_key=True).order_by("pk"))


def lock_row(queryset: Rows[M], **lookup: Any) -> M:
    """The one row matching `lookup`, locked (DoesNotExist when there is none)."""
    return queryset.select_for_update(no_key=True).get(**lookup)


def lock_first(queryset: Rows[M], **lookup: Any) -> M | None:
    """The row matching `lookup`, locked, or None when there is none."""
    return queryset.select_for_update(no_key=True).filter(**lookup).order_by("pk").first()


def lock_or_create(queryset: Rows[M], **lookup: Any) -> M:
    """The row matching `lookup`, locked; created first when missing (a racing creator's row is
    then the one locked: the unique constraint behind `lookup` makes get_or_create retry the get)."""
    row, _ = queryset.select_for_update(no_key=True).get_or_create(**lookup)
    return row
