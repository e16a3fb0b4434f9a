"""The monthly close: a run per month with one item per billed party, planned in batches, each
party's progress recorded so that a re-run or a retried task does only what is left."""

from __future__ import annotations

import logging
from datetime import date

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef
from django.utils import timezone

from accounts.models import Account
from billing.invoices import builder
from billing.models import (
    CloseItem,
    CloseRun,
    Invoice,
)

logger = logging.getLogger(__name__)


def start_close(month: date) -> CloseRun:
    """The close run of the month with one item per billed party (repeatable: new parties are added,
    existing items kept)."""
    run, _ = CloseRun.objects.get_or_create(period=month)
    if connection.vendor == "postgresql":
        _add_items_sql(run, month)
        return run
    known = set(run.items.values_list("account_id", flat=True))
    CloseItem.objects.bulk_create(
        [
            CloseItem(run=run, account_id=pk)
            for pk in builder.billed_parties(month).values_list("pk", flat=True)
            if pk not in known
        ],
        ignore_conflicts=True,
    )
    return run


def _add_items_sql(run: CloseRun, month: date) -> None:
    """`start_close`'s items on PostgreSQL: one INSERT ... SELECT of `builder.billed_parties`, the
    existing items kept (ON CONFLICT DO NOTHING on the one-item-per-party constraint), no list of
    thousands of parties through Python."""
    parties, params = builder.billed_parties(month).order_by().values("pk").query.sql_with_params()
    table = connection.ops.quote_name(CloseItem._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (run_id, account_id, status, attempts, error, updated_at) "  # noqa: S608 (the model's table, the ORM's query)
            f"SELECT %s, p.id, %s, 0, '', %s FROM ({parties}) AS p(id) ON CONFLICT DO NOTHING",
            [run.pk, CloseItem.Status.PENDING, timezone.now(), *params],
        )


def close_plan(run: CloseRun, batch_size: int | None = None) -> tuple[list[list[int]], list[int]]:
    """How the run's parties not done yet are closed: (batches of up to `batch_size` parties without
    roll-up accounts, in pk order; managers with roll-up accounts, each closed alone)."""
    size = batch_size or settings.CLOSE_BATCH_SIZE
    pending = run.items.exclude(status=CloseItem.Status.DONE)
    # Two plain queries, not an EXISTS per party: PostgreSQL runs a correlated EXISTS over the
    # accounts table as a scan per row (seconds at thousands of parties).
    managers = set(builder.rollup_managers(run.period, pending.values("account_id")))
    plain: list[int] = []
    alone: list[int] = []
    for pk in pending.order_by("account_id").values_list("account_id", flat=True):
        (alone if pk in managers else plain).append(pk)
    return [plain[i : i + size] for i in range(0, len(plain), size)], alone


def close_item(*, run_id: int, account_id: int) -> Invoice:
    run = CloseRun.objects.get(pk=run_id)
    CloseItem.objects.filter(run=run, account_id=account_id).update(attempts=F("attempts") + 1)
    invoice = _close_one(run, account_id)
    _finish(run)
    return invoice


def _close_one(run: CloseRun, account_id: int) -> Invoice:
    account = Account.objects.select_related("manager").get(pk=account_id)
    invoice = builder.invoice_party(account=account, month=run.period)
    CloseItem.objects.filter(run=run, account_id=account_id).update(status=CloseItem.Status.DONE, error="")
    return invoice


def close_items(*, run_id: int, account_ids: list[int]) -> dict[int, Exception]:
    """A batch of the run's parties (none with roll-up accounts), closed set-based in one
    transaction with their close items; if that fails, each party alone (its own transaction, the
    `builder.invoice_party` path), so one bad party never holds back the others. Each attempt counts once
    per party. Returns the parties that failed, with their errors (recorded on their items)."""
    run = CloseRun.objects.get(pk=run_id)
    ids = sorted(set(account_ids))
    CloseItem.objects.filter(run=run, account_id__in=ids).update(attempts=F("attempts") + 1)
    failures: dict[int, Exception] = {}
    try:
        _close_batch(run, ids)
    except Exception as failure:
        logger.warning("Close batch of %d part(ies) failed (%r); closing them one by one", len(ids), failure)
        for account_id in ids:
            try:
                _close_one(run, account_id)
            except Exception as error:
                record_failure(run_id=run.pk, account_id=account_id, error=repr(error))
                failures[account_id] = error
    _finish(run)
    return failures


@transaction.atomic
def _close_batch(run: CloseRun, account_ids: list[int]) -> dict[int, Invoice]:
    accounts = list(Account.objects.filter(pk__in=account_ids).order_by("pk"))
    invoices = builder.invoice_parties(accounts=accounts, month=run.period)
    CloseItem.objects.filter(run=run, account_id__in=account_ids).update(status=CloseItem.Status.DONE, error="")
    return invoices


def _finish(run: CloseRun) -> None:
    # The run is finished when no item is left undone: one UPDATE, whichever task is the last.
    undone = CloseItem.objects.filter(run=OuterRef("pk")).exclude(status=CloseItem.Status.DONE)
    CloseRun.objects.filter(pk=run.pk, finished_at__isnull=True).exclude(Exists(undone)).update(
        finished_at=timezone.now()
    )


def record_failure(*, run_id: int, account_id: int, error: str) -> None:
    CloseItem.objects.filter(run_id=run_id, account_id=account_id).update(
        status=CloseItem.Status.FAILED, error=error[:2000]
    )


def close_progress(month: date) -> dict[str, int]:
    run = CloseRun.objects.filter(period=month).first()
    if run is None:
        return {"total": 0, "done": 0, "failed": 0}
    counts = dict(run.items.values_list("status").annotate(n=Count("pk")).order_by())
    return {
        "total": sum(counts.values()),
        "done": counts.get(CloseItem.Status.DONE, 0),
        "failed": counts.get(CloseItem.Status.FAILED, 0),
    }
