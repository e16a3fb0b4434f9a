"""Usage batches sent again: a client retrying after a timeout, a queue redelivering, an operator
re-running an import. 1,000 replays of already-accepted batches, through `ingest_usage` and
through `POST /v2/usage_records`, mixed, a share of them at once from several threads (each its own
PostgreSQL connection), add nothing: no record, batch, total, charge or audit event. The month then
closes with `assert_reconciled` (tests/faults/conftest.py) holding.

PostgreSQL only: concurrent writers are the point, and SQLite serialises them."""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from accounts.models import AuditEvent
from accounts.services import create_api_key
from billing.models import Balance, DailyUsage, LedgerEntry, MonthlyUsage, UsageBatch, UsageRecord
from billing.usage.services import ingest_usage
from tests.faults.conftest import MONTH, assert_reconciled, build_workload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REPLAYS = 1000
AT_ONCE = 400  # of which sent from THREADS threads at the same time
THREADS = 4


def state() -> tuple:
    """Everything a replay must leave exactly as it was."""
    return (
        UsageRecord.objects.count(),
        sorted(UsageBatch.objects.values_list("pk", "accepted", "duplicates")),
        sorted(DailyUsage.objects.values_list("account_id", "product_id", "day", "quantity", "cost", "records")),
        sorted(MonthlyUsage.objects.values_list("account_id", "product_id", "month", "quantity", "cost", "records")),
        sorted(LedgerEntry.objects.values_list("pk", "account_id", "kind", "amount", "period")),
        sorted(Balance.objects.values_list("account_id", "amount")),
        AuditEvent.objects.count(),
    )


@pytest.fixture
def accepted(postgres_only, catalogue, world, settings):
    """A workload sent in small batches (each of them accepted once), and an API key per submitter."""
    settings.API_RATE_LIMIT_PER_MINUTE = 100_000  # the replays are the point, not the rate limit
    work = build_workload(world, managed=30, standards=3, per_account=3, batch_size=10)
    keys = {}
    for submitter, _ in work.batches:
        if submitter.pk not in keys:
            keys[submitter.pk] = create_api_key(account=submitter, name="Replays", actor=work.actor)[1]
    return work, keys


def replay(work, keys, number: int) -> None:
    """Replay number `number`: a batch already accepted, as sent or reordered, by either way in."""
    submitter, rows = work.batches[number % len(work.batches)]
    if number % 3 == 2:
        rows = random.Random(number).sample(rows, len(rows))  # the same records in another order
    if number % 2:
        response = Client().post(
            "/v2/usage_records",
            data=json.dumps({"records": rows}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {keys[submitter.pk]}",
        )
        assert response.status_code == 200, response.content[:300]
        body = response.json()["data"]
        assert (body["accepted"], body["duplicates"], body["id"]) == (0, len(rows), None), body
    else:
        result = ingest_usage(submitter=submitter, rows=rows, source="api", actor=work.actor)
        assert (result.accepted, result.duplicates, result.batch) == (0, len(rows), None), result


def test_1000_replays_of_accepted_batches_through_the_service_and_the_api_add_nothing(accepted):
    work, keys = accepted
    assert len(work.batches) >= 10 and work.records >= 80
    before = state()

    for number in range(REPLAYS - AT_ONCE):
        replay(work, keys, number)

    def replay_in_own_connection(number: int) -> None:
        try:
            replay(work, keys, number)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(replay_in_own_connection, range(REPLAYS - AT_ONCE, REPLAYS)))

    assert state() == before
    out = StringIO()
    call_command("close_month", month=f"{MONTH:%Y-%m}", inline=True, stdout=out)
    assert ", 0 failed" in out.getvalue()
    assert_reconciled(MONTH, records=work.records)


def test_a_new_batch_sent_from_several_threads_at_once_is_stored_once(accepted):
    """The first delivery racing its own retries: exactly one of them stores the records, the others
    count them as duplicates (the unique key per account and the retry in ingest_usage)."""
    work, keys = accepted
    submitter = work.manager
    rows = [{**row, "idempotency_key": f"race-{row['idempotency_key']}"} for row in work.batches[0][1]]
    barrier = threading.Barrier(THREADS)
    results: list[tuple[int, int]] = []

    def send(number: int) -> None:
        try:
            barrier.wait(timeout=30)
            if number % 2:
                response = Client().post(
                    "/v2/usage_records",
                    data=json.dumps({"records": rows}),
                    content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {keys[submitter.pk]}",
                )
                assert response.status_code in (200, 201), response.content[:300]
                body = response.json()["data"]
                results.append((body["accepted"], body["duplicates"]))
            else:
                result = ingest_usage(submitter=submitter, rows=rows, source="api", actor=work.actor)
                results.append((result.accepted, result.duplicates))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(send, range(THREADS)))

    assert len(results) == THREADS
    assert sum(accepted for accepted, _ in results) == len(rows)
    assert all(accepted + duplicates == len(rows) for accepted, duplicates in results)
    work.batches.append((submitter, rows))  # accepted once, in all
    call_command("close_month", month=f"{MONTH:%Y-%m}", inline=True, stdout=StringIO())
    assert_reconciled(MONTH, records=work.records)
