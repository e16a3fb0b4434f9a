"""Undoing a month's close for benchmark and scale workloads (`manage.py benchmark` closes the same
month again on every run), through the invoices' and the ledger's own services: nothing of the
month's close is left, every cached balance still equals its entries, closing again gives the same
invoices and numbers, and production refuses."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.test import override_settings

from accounts.models import Account
from billing.invoices.services import InvoiceStateError, discard_close
from billing.ledger.selectors import ledger_sum
from billing.ledger.services import LedgerError, discard_usage_charges
from billing.models import Balance, CloseItem, CloseRun, Invoice, InvoiceLine, InvoiceSequence, LedgerEntry
from tests.factories import AccountFactory
from tests.test_monthly_close import JULY, JUNE, backdate, close, send, snapshot, top_up, use_the_month

pytestmark = pytest.mark.django_db


@pytest.fixture
def june_closed(world):
    """June used by every kind of account (roll-up, separate, manager, standard), a top-up, and closed."""
    world.cedar = AccountFactory(
        name="Cedar Separate", managed_kind=True, manager=world.manager, billing_mode=Account.BillingMode.SEPARATE
    )
    backdate()
    top_up(world.manager, "40.00", at=datetime(2025, 6, 3, tzinfo=UTC), key="june")
    use_the_month(world, JUNE, [world.manager, world.managed, world.sibling, world.cedar, world.standard], seed=3)
    send(world, world.other_managed, [_row("o1", sku="sms.outbound")])
    close(JUNE)
    return world


def _row(key: str, *, sku: str) -> dict:
    return {"product": sku, "quantity": "3", "started_at": "2025-06-12T08:00:00Z", "idempotency_key": key}


def discard(month=JUNE, accounts=None) -> tuple[int, int]:
    accounts = list(Account.objects.order_by("pk")) if accounts is None else accounts
    invoices = discard_close(month=month, account_ids=[a.pk for a in accounts])
    return invoices, discard_usage_charges(accounts=accounts, month=month)


def invoices_of(month) -> dict:
    """What a close must give again: per (issuer, bill-to), the number and every figure."""
    fields = ("number", "status", "opening_balance", "credits", "charges", "closing_balance", "total")
    return {
        (i.issuer_id, i.bill_to_id): (*(getattr(i, f) for f in fields), _lines(i))
        for i in Invoice.objects.filter(period=month)
    }


def _lines(invoice: Invoice) -> list:
    return list(invoice.lines.order_by("position").values_list("account_id", "product_id", "quantity", "amount"))


def usage_charges(month) -> int:
    return LedgerEntry.objects.filter(kind=LedgerEntry.Kind.USAGE_CHARGE, period=month).count()


def assert_balances_equal_their_entries() -> None:
    for balance in Balance.objects.select_related("account"):
        assert balance.amount == ledger_sum(balance.account), balance


def test_discarding_the_close_leaves_nothing_of_the_month(june_closed):
    closed = invoices_of(JUNE)
    assert len(closed) == 7  # 4 platform invoices (manager, other manager, standard, Cedar), 3 reseller invoices
    assert usage_charges(JUNE) and InvoiceLine.objects.filter(invoice__period=JUNE).exists()

    invoices, charges = discard()

    assert invoices == 7 and charges > 0
    assert not Invoice.objects.filter(period=JUNE).exists()
    assert not InvoiceLine.objects.exists()
    assert not CloseRun.objects.filter(period=JUNE).exists() and not CloseItem.objects.exists()
    assert usage_charges(JUNE) == 0
    assert_balances_equal_their_entries()
    assert Balance.objects.get(account=june_closed.manager).amount == Decimal("40.00")  # the top-up stays
    assert set(InvoiceSequence.objects.values_list("last_number", flat=True)) == {0}


def test_closing_again_gives_the_same_invoices_numbers_and_totals(june_closed):
    closed, charged = invoices_of(JUNE), usage_charges(JUNE)
    balances = sorted(Balance.objects.values_list("account_id", "amount"))

    discard()
    close(JUNE)

    assert invoices_of(JUNE) == closed
    assert usage_charges(JUNE) == charged
    assert sorted(Balance.objects.values_list("account_id", "amount")) == balances
    assert_balances_equal_their_entries()


def test_numbers_go_back_only_when_they_are_the_latest_of_their_sequence(june_closed):
    use_the_month(june_closed, JULY, [june_closed.manager, june_closed.managed], seed=4)
    close(JULY)
    sequences = dict(InvoiceSequence.objects.values_list("issuer_key", "last_number"))
    july = invoices_of(JULY)

    discard(JUNE)  # July's numbers come after June's: giving June's back would give numbers out twice

    assert dict(InvoiceSequence.objects.values_list("issuer_key", "last_number")) == sequences
    assert not Invoice.objects.filter(period=JUNE).exists() and invoices_of(JULY) == july
    assert_balances_equal_their_entries()
    close(JUNE)
    june = Invoice.objects.filter(period=JUNE, issuer__isnull=True).values_list("number", flat=True)
    assert sorted(june) == [f"MC-{n:07d}" for n in range(sequences["platform"] + 1, sequences["platform"] + 5)]


def test_it_refuses_a_close_run_that_covers_other_accounts(june_closed):
    before = snapshot()

    with pytest.raises(InvoiceStateError, match="covers other accounts"):
        discard_close(month=JUNE, account_ids=[june_closed.manager.pk, june_closed.managed.pk])

    assert snapshot() == before


@override_settings(MC_ENV="production")
def test_it_refuses_in_production(june_closed):
    before = snapshot()

    with pytest.raises(InvoiceStateError, match="benchmark and scale databases only"):
        discard_close(month=JUNE, account_ids=list(Account.objects.values_list("pk", flat=True)))
    with pytest.raises(LedgerError, match="benchmark and scale databases only"):
        discard_usage_charges(accounts=list(Account.objects.all()), month=JUNE)

    assert snapshot() == before
