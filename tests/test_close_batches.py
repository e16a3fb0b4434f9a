"""The monthly close in batches (billing.invoicing.close_plan / close_items / invoice_parties,
billing.tasks.close_batch): parties without roll-up accounts are closed CLOSE_BATCH_SIZE at a time,
set-based in one transaction, and make exactly the invoices, lines, ledger entries and balances the
one-by-one path (invoice_party) makes; a batch with a bad party falls back to one by one so the
others are done; two batches racing over the same parties make one invoice each (PostgreSQL); a
manager's roll-up lines and reseller invoices written by SQL on PostgreSQL equal the ones built in
Python. Expected invoices are checked against the raw usage records (tests/test_monthly_close.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from billing.invoices import builder, resale
from billing.invoices.builder import billed_parties
from billing.invoices.close import close_item, close_items, close_plan, close_progress, start_close
from billing.ledger import selectors as ledger_selectors
from billing.ledger import services as ledger
from billing.models import (
    AutoRecharge,
    Balance,
    CloseItem,
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    LedgerEntry,
    ResaleTerms,
)
from billing.tasks import close_month
from tests.factories import AccountFactory
from tests.test_monthly_close import (
    JUNE,
    POSTGRES_ONLY,
    assert_month_closed,
    assert_numbers_gap_free,
    backdate,
    parties,  # noqa: F401 (fixture)
    row,
    run_together,
    send,
    top_up,
    use_june,
    use_the_month,
)


def everything() -> dict[str, list]:
    """Every figure a close writes, without ids and timestamps: what both paths must agree on."""
    invoices = Invoice.objects.values_list(
        "issuer_id", "bill_to_id", "period", "number", "status", "currency", "opening_balance", "credits",
        "charges", "closing_balance", "total", "markup_percent",
    )  # fmt: skip
    lines = InvoiceLine.objects.values_list(
        "invoice__issuer_id", "invoice__bill_to_id", "invoice__period", "account_id", "account_name", "product_id",
        "description", "quantity", "amount", "position",
    )  # fmt: skip
    entries = LedgerEntry.objects.values_list(
        "account_id", "kind", "amount", "currency", "idempotency_key", "description", "related_account_id", "period"
    )
    return {
        "invoices": sorted(invoices, key=repr),
        "lines": sorted(lines, key=repr),
        "entries": sorted(entries, key=repr),
        "balances": sorted(Balance.objects.values_list("account_id", "amount")),
        "sequences": sorted(InvoiceSequence.objects.values_list("issuer_key", "last_number")),
    }


@pytest.fixture
def crowd(world, parties):  # noqa: F811
    """The world's parties plus a dozen standard and separately billed accounts (one without usage,
    one with a stale draft, one already charged for part of its usage, top-ups for the statements),
    all used in June; returns every billed party."""
    standards = [AccountFactory(name=f"Crowd {n:02d}") for n in range(8)]
    separate = {"managed_kind": True, "manager": world.manager, "billing_mode": Account.BillingMode.SEPARATE}
    separates = [AccountFactory(name=f"Separate {n}", **separate) for n in range(4)]
    backdate()
    use_june(world)
    use_the_month(world, JUNE, [*standards[1:], *separates], seed=42, count=12)
    early = standards[2]
    ledger.post_usage_charges(account=early, month=JUNE)  # charged as the on-commit task does ...
    send(world, early, [row("later", at=datetime(2025, 6, 29, tzinfo=UTC), sku="sms.outbound", quantity="3.5")])
    top_up(standards[3], "25.00", at=datetime(2025, 5, 3, tzinfo=UTC), key="may")
    top_up(standards[3], "4.00", at=datetime(2025, 6, 3, tzinfo=UTC), key="june")
    top_up(separates[0], "9.99", at=datetime(2025, 6, 30, 23, tzinfo=UTC), key="june")
    Invoice.objects.create(bill_to=standards[4], period=JUNE)  # a draft left behind by a dead build
    return [*parties, *standards, *separates]


def close_in_plan_order(month, *, one_by_one: bool, size: int = 3) -> None:
    run = start_close(month)
    batches, alone = close_plan(run, size)
    for account_id in alone:
        close_item(run_id=run.pk, account_id=account_id)
    for account_ids in batches:
        if one_by_one:
            for account_id in account_ids:
                close_item(run_id=run.pk, account_id=account_id)
        else:
            assert close_items(run_id=run.pk, account_ids=account_ids) == {}


def test_batches_make_exactly_the_invoices_lines_and_ledger_of_the_one_by_one_close(world, crowd):
    with transaction.atomic():
        close_in_plan_order(JUNE, one_by_one=True)
        one_by_one = everything()
        transaction.set_rollback(True)
    assert not Invoice.objects.exclude(status=Invoice.Status.DRAFT).exists()  # back to before the close

    close_in_plan_order(JUNE, one_by_one=False)

    assert everything() == one_by_one
    assert_month_closed(JUNE, crowd)
    assert_numbers_gap_free()
    for account in crowd:
        balance = Balance.objects.filter(account=account).values_list("amount", flat=True).first()
        assert (balance or Decimal(0)) == ledger_selectors.ledger_sum(account), account


def test_the_plan_batches_parties_without_rollups_and_keeps_managers_with_rollups_alone(world, crowd, settings):
    settings.CLOSE_BATCH_SIZE = 5
    run = start_close(JUNE)

    batches, alone = close_plan(run)

    assert alone == sorted([world.manager.pk, world.other_manager.pk])
    plain = sorted(p.pk for p in crowd if p.pk not in alone)
    assert [pk for batch in batches for pk in batch] == plain
    assert len(batches) == -(-len(plain) // 5) and all(len(batch) == 5 for batch in batches[:-1])

    assert close_month.delay(JUNE.isoformat()).get() == len(crowd)  # counted in parties, queued in batches
    assert_month_closed(JUNE, crowd)
    assert close_plan(run) == ([], [])  # a re-run queues nothing
    assert close_month.delay(JUNE.isoformat()).get() == 0


def test_a_batch_takes_a_constant_number_of_queries(world):
    """Set-based: 2 parties or 10 cost the same statements, the auto-recharge check included
    (billing.payments answers the posting's debits with one query)."""
    backdate()
    many = [AccountFactory(name=f"Many {n:02d}") for n in range(12)]
    backdate()
    use_the_month(world, JUNE, many, seed=9, count=4)
    run = start_close(JUNE)

    def queries(account_ids) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert close_items(run_id=run.pk, account_ids=account_ids) == {}
        return len(captured)

    queries([many[0].pk])  # the first invoice of the platform makes its sequence row
    few = queries([a.pk for a in many[1:3]])
    assert queries([a.pk for a in many[3:]]) == few
    assert Invoice.objects.filter(bill_to__in=many, period=JUNE, status=Invoice.Status.FINALIZED).count() == 12


def test_a_batch_with_a_bad_party_falls_back_to_one_by_one_and_the_others_are_done(world, crowd):
    """A June usage charge on the bad party that no June usage explains (posted by hand, balance and
    all): its invoice would not equal its charges, so the close refuses it, in the batch and alone."""
    bad = next(p for p in crowd if p.name == "Crowd 05")
    stray = Decimal("-1.23")
    with transaction.atomic():
        LedgerEntry.objects.create(
            account=bad, kind=LedgerEntry.Kind.USAGE_CHARGE, amount=stray, idempotency_key="stray",
            description="By hand", related_account=world.standard, period=JUNE,
        )  # fmt: skip
        Balance.objects.filter(account=bad).update(amount=F("amount") + stray)
    run = start_close(JUNE)
    batches, alone = close_plan(run, 100)
    for account_id in alone:
        close_item(run_id=run.pk, account_id=account_id)
    (batch,) = batches
    assert bad.pk in batch

    failures = close_items(run_id=run.pk, account_ids=batch)

    assert list(failures) == [bad.pk] and isinstance(failures[bad.pk], AssertionError)
    item = CloseItem.objects.get(run=run, account=bad)
    assert (item.status, item.attempts) == (CloseItem.Status.FAILED, 1)
    assert "differ from the ledger's usage charges" in item.error
    assert close_progress(JUNE) == {"total": len(crowd), "done": len(crowd) - 1, "failed": 1}
    assert not Invoice.objects.filter(bill_to=bad).exists()
    assert set(CloseItem.objects.filter(run=run).exclude(account=bad).values_list("attempts", flat=True)) == {1}
    invoiced = Invoice.objects.filter(period=JUNE, issuer__isnull=True)
    assert sorted(invoiced.values_list("bill_to_id", flat=True)) == sorted(p.pk for p in crowd if p != bad)
    assert_numbers_gap_free()  # the failed batch's numbers were rolled back, the fallback drew its own


def test_a_batch_posts_each_debit_through_the_ledgers_auto_recharge_trigger(
    world, crowd, django_capture_on_commit_callbacks
):
    payer = next(p for p in crowd if p.name == "Crowd 06")
    top_up(payer, "10.00", at=datetime(2025, 6, 1, tzinfo=UTC), key="june")
    AutoRecharge.objects.create(account=payer, enabled=True, threshold=Decimal("10.00"), amount=Decimal("50.00"))
    run = start_close(JUNE)
    (batch, *_), _ = close_plan(run, 100)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert close_items(run_id=run.pk, account_ids=batch) == {}

    charge = LedgerEntry.objects.get(account=payer, kind=LedgerEntry.Kind.USAGE_CHARGE, period=JUNE)
    assert charge.amount < 0
    queued = [(c.args[0], c.args[1]) for c in callbacks if getattr(c, "args", None)]
    assert queued == [(payer.pk, f"entry:{charge.pk}")]  # only the party whose debit crossed its threshold


def test_bulk_own_usage_charges_agree_with_one_by_one_and_mix(world, crowd):
    some = [p for p in crowd if p.name.startswith("Crowd")]
    ledger.post_usage_charges(account=some[1], month=JUNE)
    posted = ledger.post_own_usage_charges(accounts=some, month=JUNE)
    assert ledger.post_own_usage_charges(accounts=some, month=JUNE) == 0
    for account in some:
        assert ledger.post_usage_charges(account=account, month=JUNE) is None  # same keys, nothing new
        assert Balance.objects.get(account=account).amount == ledger_selectors.ledger_sum(account)
    # Crowd 00 has no usage and Crowd 01 was charged in full; Crowd 02 only for its later usage.
    assert posted == len(some) - 2
    early = LedgerEntry.objects.filter(account=some[2], kind=LedgerEntry.Kind.USAGE_CHARGE).order_by("pk")
    assert early.count() == 2 and sum(e.amount for e in early) == ledger_selectors.ledger_sum(some[2])
    with pytest.raises(ledger.LedgerError):
        ledger.post_own_usage_charges(accounts=[world.managed], month=JUNE)  # a roll-up account has no balance


# --- PostgreSQL ------------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_batches_racing_over_the_same_parties_make_one_invoice_each(catalogue, world):  # noqa: F811
    if connection.vendor != "postgresql":
        pytest.skip(POSTGRES_ONLY)
    crowd = [AccountFactory(name=f"Racer {n:02d}") for n in range(14)]
    backdate()
    use_the_month(world, JUNE, crowd, seed=21, count=5)
    run = start_close(JUNE)
    batches, alone = close_plan(run, 100)
    (ids,) = batches
    assert len(ids) == len(crowd) + 1 and alone == sorted([world.manager.pk, world.other_manager.pk])
    rng = random.Random(5)

    errors = run_together(
        [
            lambda: close_items(run_id=run.pk, account_ids=ids),
            lambda: close_items(run_id=run.pk, account_ids=ids[::-1]),
            lambda: close_items(run_id=run.pk, account_ids=rng.sample(ids, 8)),
            lambda: close_item(run_id=run.pk, account_id=ids[3]),
            lambda: close_item(run_id=run.pk, account_id=world.manager.pk),
            lambda: close_item(run_id=run.pk, account_id=world.other_manager.pk),
        ]
    )

    assert errors == []
    everyone = [world.manager, world.other_manager, world.standard, *crowd]
    assert sorted(billed_parties(JUNE).values_list("pk", flat=True)) == sorted(a.pk for a in everyone)
    assert_month_closed(JUNE, everyone)
    assert_numbers_gap_free(in_order=False)
    for account in everyone:
        assert Balance.objects.get(account=account).amount == ledger_selectors.ledger_sum(account)
        assert LedgerEntry.objects.filter(account=account, kind=LedgerEntry.Kind.USAGE_CHARGE).count() <= (
            1 + Account.objects.filter(manager=account, billing_mode=Account.BillingMode.ROLLUP).count()
        )


def test_a_managers_rollup_lines_and_resale_invoices_are_the_same_in_sql_and_in_python(world):
    if connection.vendor != "postgresql":
        pytest.skip("the SQL statements are PostgreSQL's; run with DATABASE_URL")
    # Names whose code-point order differs from a linguistic collation's; two alike, told apart by pk.
    names = ["Zulu", "alpha", "beta", "Ärger", "beta", "Émile", "a-b", "ab"]
    rollups = [AccountFactory(managed_kind=True, manager=world.manager, name=name) for name in names]
    backdate()
    use_the_month(world, JUNE, [world.manager, world.managed, *rollups], seed=77, count=25)
    ResaleTerms.objects.create(manager=world.manager, markup_percent=Decimal("12.35"))

    def build(sql: bool) -> tuple:
        with transaction.atomic():
            invoice = Invoice.objects.create(bill_to=world.manager, period=JUNE)
            total = builder.add_lines(invoice, world.manager, JUNE, sql=sql)
            issued = resale.issue_resale_invoices(world.manager, JUNE, sql=sql)
            state = (total, everything()["lines"], everything()["invoices"], [i.number for i in issued])
            transaction.set_rollback(True)
        return state

    in_sql, in_python = build(sql=True), build(sql=False)

    assert in_sql == in_python
    total, lines, invoices, numbers = in_sql
    assert len(lines) > 100 and total > 0 and len(numbers) == len(rollups) + 2
    assert any(line[5] is None for line in lines if line[0] is None)  # some section needed a rounding line
    assert any(line[5] is None for line in lines if line[0] is not None)  # and some reseller invoice
