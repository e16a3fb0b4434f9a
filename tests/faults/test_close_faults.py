"""The monthly close under real faults, with real processes: `celery -A portal worker` subprocesses
(prefork, two children) on a Redis server of the test's own, and `manage.py close_month` run as an
operator runs it. A worker SIGKILLed half-way, two closes of the same month at once, and Redis
restarted in the middle of a close; after each, `assert_reconciled` (tests/faults/conftest.py).

PostgreSQL only (SQLite serialises writers, and the file-system broker has no server to lose)."""

from __future__ import annotations

import re
import time

import pytest

from billing.invoices.builder import billed_parties
from billing.invoices.close import close_progress
from billing.models import Invoice
from tests.faults.conftest import (
    FAULT_BATCH_SIZE,
    MONTH,
    assert_balances_equal_ledger,
    assert_invoices_equal_rated_usage,
    assert_reconciled,
    build_workload,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CLOSE = ("close_month", "--month", f"{MONTH:%Y-%m}")
TIMEOUT = 120  # seconds for any one phase; the whole close of ~300 parties takes a few


def queued_count(output: str) -> int:
    match = re.search(r"Queued (\d+) billed part\(ies\)", output)
    assert match, output
    return int(match[1])


def done(month=MONTH) -> int:
    return close_progress(month)["done"]


def assert_nothing_half_written(month=MONTH) -> None:
    """What a crash may leave: finished invoices, each whole; never a draft or a half invoice."""
    assert not Invoice.objects.exclude(status=Invoice.Status.FINALIZED).exists()
    assert_invoices_equal_rated_usage(month, complete=False)
    assert_balances_equal_ledger()


@pytest.fixture
def crowd(postgres_only, catalogue, world):
    """A few hundred billed parties (see build_workload)."""
    return build_workload(world, managed=420)


def test_a_worker_sigkilled_half_way_is_replaced_and_the_rerun_finishes_the_close(crowd, redis_server, processes):
    """The production worker (prefork, 2 children, acks_late) is SIGKILLed, group and all, when some
    but not all parties are invoiced; a new worker takes the rest of the queue.

    What the broker does with the killed worker's own tasks: with acks_late they were never
    acknowledged, and Redis hands an unacknowledged message out again only after the transport's
    visibility timeout (CELERY_VISIBILITY_TIMEOUT, 15 minutes), so the new worker alone leaves
    those parties (at most one or two batches per pool child) pending. The operator re-runs the close
    (`manage.py close_month --month ...`), which queues only the parties not done; the stale
    messages, redelivered an hour later, find their invoices made and change nothing."""
    total = billed_parties(MONTH).count()
    assert total >= 250
    first = processes.worker("first")
    assert queued_count(processes.run_manage("close", *CLOSE)) == total

    wait_for(lambda: done() >= total // 4, timeout=TIMEOUT, what="a quarter of the close", every=0.02,
             logs=processes.logs)  # fmt: skip
    processes.kill(first)
    killed_at = done()
    stranded_messages = redis_server.unacked()  # delivered to the dead worker, never acknowledged
    print(f"killed at {killed_at} of {total}; {stranded_messages} message(s) held by the dead worker")
    assert 0 < killed_at < total, "the worker was not killed half-way"
    assert_nothing_half_written()

    began = time.monotonic()
    processes.worker("second")
    # The new worker drains the queue; it is idle again when the only unacknowledged messages left
    # are the dead worker's.
    wait_for(lambda: redis_server.queued() == 0 and redis_server.unacked() == stranded_messages,
             timeout=TIMEOUT, what="the second worker to drain the queue", logs=processes.logs)  # fmt: skip
    pending = total - done()
    assert pending <= stranded_messages * FAULT_BATCH_SIZE, "a party was lost that no unacknowledged message covers"
    assert_nothing_half_written()

    rerun = processes.run_manage("rerun", *CLOSE)
    assert queued_count(rerun) == pending  # only the parties not done are queued again
    wait_for(lambda: done() == total, timeout=TIMEOUT, what="the close to finish", logs=processes.logs)
    print(f"{pending} part(ies) left to the re-run; finished {time.monotonic() - began:.1f} s after the kill")

    counted = assert_reconciled(MONTH, records=crowd.records)
    assert counted["parties"] == total
    print(counted)


@pytest.mark.parametrize("how", ["inline", "queued"])
def test_two_closes_of_the_same_month_started_at_once_make_one_invoice_per_party(
    postgres_only, catalogue, world, redis_server, processes, how
):
    """Two operators (or beat and an operator) start the close of the same month at the same time:
    two `close_month --inline` processes invoicing every party side by side, or two queueing
    commands feeding two workers (four pool children), so every party is queued twice."""
    work = build_workload(world, managed=90)
    total = billed_parties(MONTH).count()
    if how == "queued":
        processes.worker("one")
        processes.worker("two")
    extra = ("--inline",) if how == "inline" else ()
    closes = [processes.manage(f"close-{n}", *CLOSE, *extra) for n in (1, 2)]
    for process in closes:
        assert process.wait(timeout=TIMEOUT) == 0, processes.logs()
    outputs = [processes.log(process) for process in closes]
    if how == "inline":
        # Each process went over every party; whichever finished last saw all of them done.
        assert any(f"{total} of {total} done, 0 failed" in out for out in outputs), outputs
        assert not any("failed:" in out for out in outputs), outputs
    else:
        assert sorted(queued_count(out) for out in outputs)[-1] == total, outputs
        wait_for(lambda: done() == total and redis_server.queued() == 0 and redis_server.unacked() == 0,
                 timeout=TIMEOUT, what="both queues of the close to be worked off", logs=processes.logs)  # fmt: skip

    assert_reconciled(MONTH, records=work.records)
    numbers = sorted(Invoice.objects.filter(issuer__isnull=True).values_list("number", flat=True))
    assert numbers == [f"MC-{n:07d}" for n in range(1, total + 1)]  # no number drawn twice or skipped


def test_redis_restarted_during_a_close_then_the_operator_reruns_it(crowd, redis_server, processes):
    """Redis (non-persistent, as configured here) goes down half-way through a close and comes back
    empty on the same port: the queued close tasks are gone. The worker reconnects by itself;
    the parties whose tasks were lost stay pending in the close run (`close_progress` shows them).

    What an operator does after a Redis outage: re-run the close, `manage.py close_month --month
    YYYY-MM`. It queues only the parties not done; the tasks lost with Redis are recovered that way,
    and nothing already invoiced is invoiced again."""
    total = billed_parties(MONTH).count()
    processes.worker("survivor")
    assert queued_count(processes.run_manage("close", *CLOSE)) == total

    wait_for(lambda: done() >= total // 4, timeout=TIMEOUT, what="a quarter of the close", every=0.02,
             logs=processes.logs)  # fmt: skip
    redis_server.stop()
    at_outage = done()
    assert 0 < at_outage < total, "Redis was not stopped half-way"
    time.sleep(1.0)  # the worker notices the lost connection
    redis_server.start()  # same port, empty
    assert redis_server.queued() == 0

    # Whatever the worker had in hand finishes; the lost tasks never run.
    time.sleep(3.0)
    stalled = done()
    assert stalled < total, "the tasks lost with Redis ran all the same?"
    assert_nothing_half_written()

    rerun = processes.run_manage("rerun", *CLOSE)
    assert 0 < queued_count(rerun) <= total - stalled  # only parties not done (one in hand may just have finished)
    wait_for(lambda: done() == total, timeout=TIMEOUT, what="the re-run close to finish (worker reconnected?)",
             logs=processes.logs)  # fmt: skip
    print(f"Redis stopped at {at_outage} of {total}; {total - stalled} part(ies) recovered by the re-run")

    assert_reconciled(MONTH, records=crowd.records)
