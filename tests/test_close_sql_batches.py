"""A close batch's invoices written by SQL on PostgreSQL (issue 16): `builder.invoice_parties` with
`sql=True` (one INSERT ... SELECT of the lines, the totals from one grouped query) makes exactly the
invoices, lines, positions, totals, numbers, terms and audit events of the portable path
(`sql=False`, the lines built in Python, what SQLite runs), and the plan of a close sends the same
parties alone and in batches as the rule `builder.has_rollups` says."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import F

from accounts.models import Account, AuditEvent
from billing.invoices import builder
from billing.invoices.close import close_plan, start_close
from billing.models import Balance, CloseItem, Invoice, InvoiceLine, LedgerEntry
from tests.factories import AccountFactory
from tests.test_close_batches import everything
from tests.test_monthly_close import (
    JUNE,
    backdate,
    parties,  # noqa: F401 (fixture)
    row,
    send,
    top_up,
    use_june,
    use_the_month,
)


def _batch(world) -> list[Account]:
    """Standard and separately billed accounts with names whose code-point order differs from a
    linguistic collation's, usage with rounding lines, one without usage, one with top-ups."""
    names = ["Zulu", "alpha", "beta", "Ärger", "beta", "Émile", "a-b", "ab"]
    standards = [AccountFactory(name=name) for name in names]
    separate = {"managed_kind": True, "manager": world.manager, "billing_mode": Account.BillingMode.SEPARATE}
    separates = [AccountFactory(name=f"Separate {n}", **separate) for n in range(3)]
    backdate()
    use_the_month(world, JUNE, [*standards[1:], *separates], seed=91, count=30)
    at = datetime(2025, 6, 12, 8, 0, tzinfo=UTC)
    # 0.004 + 0.0035 = 0.0075: lines 0.00 + 0.00, section 0.01 (a rounding line)
    send(world, standards[1], [row("x1", at=at, sku="sms.outbound"), row("x2", at=at, sku="voice.inbound")])
    top_up(standards[2], "25.00", at=datetime(2025, 5, 3, tzinfo=UTC), key="may")
    top_up(standards[2], "4.00", at=datetime(2025, 6, 3, tzinfo=UTC), key="june")
    return [*standards, *separates]


def _terms_and_events() -> dict[str, list]:
    invoices = Invoice.objects.values_list("bill_to_id", "issue_date", "due_date", "issuer_details", "bill_to_details")
    lines_per_invoice = Invoice.objects.values_list("bill_to_id", "lines__position").order_by(
        "bill_to_id", "lines__position"
    )
    events = AuditEvent.objects.filter(change_type="invoice.finalized").values_list(
        "account_id", "resource_type", "resource_label", "changes", "change_made_by"
    )
    return {
        "terms": sorted(invoices, key=repr),
        "positions": list(lines_per_invoice),
        "events": sorted(events, key=repr),
    }


def test_a_close_batch_is_the_same_in_sql_and_in_python(world):
    if connection.vendor != "postgresql":
        pytest.skip("the SQL statements are PostgreSQL's; run with DATABASE_URL")
    batch = _batch(world)

    def build(sql: bool) -> tuple:
        with transaction.atomic():
            invoices = builder.invoice_parties(accounts=batch, month=JUNE, sql=sql)
            state = (
                {pk: (i.number, i.total, i.charges) for pk, i in invoices.items()},
                everything(),
                _terms_and_events(),
            )
            transaction.set_rollback(True)
        return state

    in_sql, in_python = build(sql=True), build(sql=False)

    assert in_sql == in_python
    made, written, _ = in_sql
    assert sorted(made) == sorted(a.pk for a in batch)
    assert len(written["lines"]) > 50
    assert any(line[5] is None for line in written["lines"])  # a section needed a rounding line
    totals = {a: t for a, (_, t, _) in made.items()}
    assert totals[batch[0].pk] == 0  # the account without usage: an invoice of zero
    for bill_to, total in totals.items():
        section = sum(line[8] for line in written["lines"] if line[1] == bill_to)
        assert section == total


def test_the_portable_batch_path_still_runs_where_sql_is_the_default(world):
    """On PostgreSQL the default is SQL; the portable path stays callable (SQLite's) and both give
    one finalized invoice per party with lines adding up to its total."""
    batch = _batch(world)
    invoices = builder.invoice_parties(accounts=batch, month=JUNE, sql=False)
    assert sorted(invoices) == sorted(a.pk for a in batch)
    for invoice in invoices.values():
        assert invoice.status == Invoice.Status.FINALIZED
        assert sum(invoice.lines.values_list("amount", flat=True)) == invoice.total == invoice.charges


def test_the_plan_sends_managers_with_rollups_alone_and_the_rest_in_batches(world, parties):  # noqa: F811
    backdate()
    use_june(world)
    run = start_close(JUNE)
    batches, alone = close_plan(run, 2)
    expected_alone = sorted(
        Account.objects.filter(pk__in=run.items.values("account_id"))
        .filter(builder.has_rollups(JUNE))
        .values_list("pk", flat=True)
    )
    assert alone == expected_alone == sorted([world.manager.pk, world.other_manager.pk])
    plain = [pk for batch in batches for pk in batch]
    assert plain == sorted(set(run.items.values_list("account_id", flat=True)) - set(alone))
    assert all(len(batch) <= 2 for batch in batches)


def test_start_close_makes_one_pending_item_per_billed_party_and_keeps_existing_ones(world, parties):  # noqa: F811
    """PostgreSQL's INSERT ... SELECT and the portable bulk insert alike."""
    backdate()
    use_june(world)
    run = start_close(JUNE)
    items = run.items.order_by("account_id").values_list("account_id", "status", "attempts", "error")
    expected = list(builder.billed_parties(JUNE).values_list("pk", flat=True))
    assert list(items) == [(pk, CloseItem.Status.PENDING, 0, "") for pk in expected]
    done = run.items.order_by("account_id").first()
    assert done is not None
    run.items.filter(pk=done.pk).update(status=CloseItem.Status.DONE, attempts=1)
    late = AccountFactory(name="Late Standard")
    backdate(accounts=[late])

    again = start_close(JUNE)

    assert again.pk == run.pk
    assert sorted(again.items.values_list("account_id", flat=True)) == sorted([*expected, late.pk])
    assert again.items.get(pk=done.pk).status == CloseItem.Status.DONE  # kept as it was
    assert again.items.filter(status=CloseItem.Status.PENDING).count() == len(expected)


@pytest.mark.parametrize("sql", [True, False])
def test_a_batch_whose_lines_differ_from_the_ledgers_charges_is_refused_whole(world, sql):
    """A usage charge no usage explains: both paths refuse the batch (the SQL one after checking the
    lines it wrote against the ledger's charges) and the transaction leaves nothing behind."""
    if sql and connection.vendor != "postgresql":
        pytest.skip("the SQL statements are PostgreSQL's; run with DATABASE_URL")
    batch = _batch(world)
    bad = batch[3]
    with transaction.atomic():
        LedgerEntry.objects.create(
            account=bad, kind=LedgerEntry.Kind.USAGE_CHARGE, amount=Decimal("-1.23"), idempotency_key="stray",
            description="By hand", related_account=world.standard, period=JUNE,
        )  # fmt: skip
        Balance.objects.filter(account=bad).update(amount=F("amount") - Decimal("1.23"))

    with pytest.raises(AssertionError, match="differ from the ledger's usage charges"):
        builder.invoice_parties(accounts=batch, month=JUNE, sql=sql)

    assert not Invoice.objects.filter(period=JUNE).exists()
    assert not InvoiceLine.objects.exists()
    assert not AuditEvent.objects.filter(change_type="invoice.finalized").exists()
