"""The ledger (billing/ledger.py): immutable entries with idempotency keys, a cached balance that
always equals the sum of its entries, the credit limit, roll-up and separate billing, usage charges
posted once per month, transfers, staff adjustments, and the invariant under concurrent debits and
transfers on PostgreSQL."""

import importlib
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Sum

from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from billing.ledger.selectors import billed_party, has_own_balance, ledger_sum
from billing.ledger.services import (
    InsufficientCredit,
    LedgerError,
    adjust_balance,
    balance_of,
    post_entry,
    post_usage_charges,
    post_usage_charges_for,
    transfer_credit,
)
from billing.models import Balance, LedgerEntry, UsageRecord
from billing.money import to_cents
from billing.tasks import charge_usage
from billing.usage import services as usage_module
from billing.usage.services import ingest_usage
from tests.factories import AccountFactory, UserFactory

JUNE = date(2025, 6, 1)
JULY = date(2025, 7, 1)
IN_JUNE = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
POSTGRES_ONLY = "row locks under real concurrency need PostgreSQL (SQLite serialises writers); run with DATABASE_URL"

# --- Helpers -------------------------------------------------------------------------------------------


def credit(account, amount, key="top-up"):
    return post_entry(
        account=account, kind=LedgerEntry.Kind.TOP_UP, amount=Decimal(amount), key=key, description="Top-up"
    )


def debit(account, amount, key="debit", **kwargs):
    # A refund to the customer's card: a debit the credit limit bounds.
    return post_entry(
        account=account, kind=LedgerEntry.Kind.REFUND, amount=-Decimal(amount), key=key, description="Refund", **kwargs
    )


def set_credit_limit(account, limit) -> None:
    balance_of(account)
    Balance.objects.filter(account=account).update(credit_limit=Decimal(limit))


def amount_of(account) -> Decimal:
    return Balance.objects.get(account=account).amount


def assert_balanced(*accounts) -> None:
    """The invariant: the cached balance equals the sum of the account's entries."""
    for account in accounts:
        assert amount_of(account) == ledger_sum(account), account


def state() -> tuple:
    """Everything a refused operation must leave unchanged."""
    return (
        sorted(Balance.objects.values_list("account_id", "amount", "credit_limit")),
        sorted(LedgerEntry.objects.values_list("account_id", "kind", "amount", "idempotency_key")),
        AuditEvent.objects.count(),
    )


def separate_account(manager, name="Separate Customer") -> Account:
    return AccountFactory(managed_kind=True, manager=manager, billing_mode=Account.BillingMode.SEPARATE, name=name)


def usage(key, *, sku="voice.outbound", quantity="1", at=IN_JUNE, account=None) -> dict:
    values = {"product": sku, "quantity": quantity, "started_at": at.isoformat(), "idempotency_key": key}
    if account is not None:
        values["account"] = str(account.public_id)
    return values


def ingest(world, rows, *, submitter=None):
    return ingest_usage(
        submitter=submitter or world.manager, rows=rows, source="api", actor=Actor(user=world.users["owner"])
    )


def month_cost(account, month: date) -> Decimal:
    """The exact cost of the account's raw usage records in the UTC month, summed in Python."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    costs = UsageRecord.objects.filter(account=account, started_at__gte=start, started_at__lt=end)
    return sum(costs.values_list("cost", flat=True), Decimal(0))


def usage_charges(payer, related=None) -> list[tuple[date, Decimal]]:
    entries = LedgerEntry.objects.filter(account=payer, kind=LedgerEntry.Kind.USAGE_CHARGE)
    if related is not None:
        entries = entries.filter(related_account=related)
    return sorted(entries.values_list("period", "amount"))


def charged(payer, related, month: date) -> Decimal:
    entries = LedgerEntry.objects.filter(
        account=payer, kind=LedgerEntry.Kind.USAGE_CHARGE, related_account=related, period=month
    )
    return entries.aggregate(total=Sum("amount"))["total"] or Decimal(0)


# --- post_entry --------------------------------------------------------------------------------------------


def test_credits_and_debits_change_the_cached_balance_which_equals_the_sum(world):
    account = world.standard
    assert balance_of(account).amount == Decimal("0.00")
    posted = credit(account, "100.00")
    assert posted.created
    assert (posted.entry.kind, posted.entry.amount, posted.entry.account_id) == (
        "top_up",
        Decimal("100.00"),
        account.pk,
    )
    assert amount_of(account) == Decimal("100.00")
    debit(account, "30.25", key="d1")
    assert amount_of(account) == Decimal("69.75")
    credit(account, "0.01", key="t2")
    debit(account, "69.76", key="d2")
    assert amount_of(account) == Decimal("0.00")
    assert_balanced(account)
    assert LedgerEntry.objects.filter(account=account).count() == 4


def test_a_repeated_key_returns_the_first_entry_and_changes_nothing_even_with_another_amount(world):
    account = world.standard
    first = credit(account, "40.00", key="stripe:pi_123")
    before = state()
    again = credit(account, "40.00", key="stripe:pi_123")
    other = credit(account, "999.99", key="stripe:pi_123")
    for posted in (again, other):
        assert not posted.created
        assert posted.entry.pk == first.entry.pk
        assert posted.entry.amount == Decimal("40.00")
    assert state() == before
    assert amount_of(account) == Decimal("40.00")
    assert_balanced(account)


def test_keys_are_kept_apart_per_kind(world):
    # A refund of a payment may carry the payment's own key: it is another movement.
    credit(world.standard, "40.00", key="stripe:pi_123")
    refund = debit(world.standard, "5.00", key="stripe:pi_123")
    assert refund.created
    assert amount_of(world.standard) == Decimal("35.00")
    assert_balanced(world.standard)


def test_transfers_and_usage_charges_cannot_be_posted_as_plain_entries(world):
    for kind in (LedgerEntry.Kind.USAGE_CHARGE, LedgerEntry.Kind.TRANSFER_IN, LedgerEntry.Kind.TRANSFER_OUT):
        with pytest.raises(LedgerError):
            post_entry(account=world.standard, kind=kind, amount=Decimal("-1.00"), key="k", description="x")
    assert not LedgerEntry.objects.exists()


def test_bulk_changes_to_entries_are_refused(world):
    credit(world.standard, "10.00")
    with pytest.raises(ValidationError):
        LedgerEntry.objects.filter(account=world.standard).update(amount=Decimal("99.00"))
    with pytest.raises(ValidationError):
        LedgerEntry.objects.filter(account=world.standard).delete()
    assert_balanced(world.standard)


@pytest.mark.parametrize("amount", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_amounts_are_refused(world, amount):
    with pytest.raises(LedgerError):
        credit(world.standard, amount)
    assert not LedgerEntry.objects.exists()


def test_the_same_key_on_another_account_is_another_entry(world):
    credit(world.standard, "10.00", key="same")
    posted = credit(world.manager, "20.00", key="same")
    assert posted.created
    assert (amount_of(world.standard), amount_of(world.manager)) == (Decimal("10.00"), Decimal("20.00"))
    assert_balanced(world.standard, world.manager)


@pytest.mark.parametrize("amount", ["0.001", "1.005", "-2.999", "10.0000001", "0", "0.00", "-0.00"])
def test_amounts_that_are_not_a_non_zero_number_of_cents_are_refused(world, amount):
    account = world.standard
    credit(account, "50.00")
    before = state()
    with pytest.raises(LedgerError) as refused:
        post_entry(account=account, kind=LedgerEntry.Kind.TOP_UP, amount=Decimal(amount), key="bad", description="x")
    assert refused.value.field == "amount"
    assert not isinstance(refused.value, InsufficientCredit)
    assert state() == before
    assert_balanced(account)


def test_amounts_in_cents_with_fewer_decimals_are_accepted(world):
    credit(world.standard, "10.5", key="a")
    credit(world.standard, "3", key="b")
    assert amount_of(world.standard) == Decimal("13.50")
    assert_balanced(world.standard)


def test_a_debit_beyond_balance_plus_credit_limit_is_refused_and_changes_nothing(world):
    account = world.standard
    credit(account, "100.00")
    set_credit_limit(account, "50.00")
    before = state()
    with pytest.raises(InsufficientCredit) as refused:
        debit(account, "150.01", key="too-much")
    assert refused.value.field == "amount"
    assert "150.01" in refused.value.message and "150.00" in refused.value.message
    assert state() == before
    assert amount_of(account) == Decimal("100.00")
    # The refused attempt did not use up its key: the same key posts once there is credit.
    credit(account, "0.01", key="more")
    assert debit(account, "150.01", key="too-much").created
    assert amount_of(account) == Decimal("-50.00")
    assert_balanced(account)


def test_a_debit_may_take_the_balance_down_to_minus_the_credit_limit_exactly_and_not_a_cent_further(world):
    account = world.standard
    credit(account, "100.00")
    set_credit_limit(account, "50.00")
    assert debit(account, "150.00", key="all-of-it").created
    assert amount_of(account) == Decimal("-50.00")
    assert balance_of(account).available_credit == Decimal("0.00")
    before = state()
    with pytest.raises(InsufficientCredit):
        debit(account, "0.01", key="one-cent")
    assert state() == before
    assert_balanced(account)


def test_without_a_credit_limit_a_debit_may_not_go_below_zero(world):
    account = world.standard
    credit(account, "5.00")
    with pytest.raises(InsufficientCredit):
        debit(account, "5.01")
    debit(account, "5.00")
    assert amount_of(account) == Decimal("0.00")
    assert_balanced(account)


def test_allow_overdraft_lets_a_usage_charge_pass_the_credit_limit(world):
    account = world.standard
    credit(account, "10.00")
    set_credit_limit(account, "5.00")
    posted = adjust_balance(
        account=account, amount=Decimal("-25.00"), reason="Usage owed", key="owed", actor=Actor.platform_staff()
    )
    assert posted.created
    assert amount_of(account) == Decimal("-15.00")
    assert balance_of(account).available_credit == Decimal("-10.00")
    # Below the limit, an ordinary debit is refused.
    with pytest.raises(InsufficientCredit):
        debit(account, "0.01")
    assert_balanced(account)


# --- Immutability ----------------------------------------------------------------------------------------


def test_an_existing_entry_cannot_be_saved_again(world):
    entry = credit(world.standard, "10.00").entry
    entry.amount = Decimal("1000.00")
    with pytest.raises(ValidationError):
        entry.save()
    entry.refresh_from_db()
    assert entry.amount == Decimal("10.00")
    assert_balanced(world.standard)


def test_an_entry_cannot_be_deleted(world):
    entry = credit(world.standard, "10.00").entry
    with pytest.raises(ValidationError):
        entry.delete()
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()
    assert_balanced(world.standard)


# --- Roll-up and separate billing ----------------------------------------------------------------------


def test_a_rollup_managed_account_has_no_balance_of_its_own(world):
    managed = world.managed
    assert managed.billing_mode == Account.BillingMode.ROLLUP
    assert not has_own_balance(managed)
    assert billed_party(managed) == world.manager
    with pytest.raises(LedgerError):
        balance_of(managed)
    with pytest.raises(LedgerError):
        credit(managed, "10.00")
    with pytest.raises(LedgerError):
        adjust_balance(account=managed, amount=Decimal("1.00"), reason="x", key="k", actor=Actor.platform_staff(None))
    assert not Balance.objects.filter(account=managed).exists()
    assert not LedgerEntry.objects.filter(account=managed).exists()


def test_manager_standard_and_separate_accounts_have_their_own_balance(world):
    separate = separate_account(world.manager)
    for account in (world.manager, world.standard, separate):
        assert has_own_balance(account)
        assert billed_party(account) == account
        assert balance_of(account).account_id == account.pk


def test_rollup_usage_is_charged_to_the_manager_naming_the_managed_account(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ingest(world, [usage("m1", quantity="12.5", account=world.managed), usage("own", quantity="3")])
    assert usage_charges(world.manager, related=world.managed) == [(JUNE, -to_cents(month_cost(world.managed, JUNE)))]
    assert usage_charges(world.manager, related=world.managed) == [(JUNE, Decimal("-0.13"))]
    assert usage_charges(world.manager, related=world.manager) == [(JUNE, Decimal("-0.03"))]
    assert not LedgerEntry.objects.filter(account=world.managed).exists()
    assert not Balance.objects.filter(account=world.managed).exists()
    assert amount_of(world.manager) == Decimal("-0.16")
    assert_balanced(world.manager)


def test_a_separate_accounts_usage_is_charged_to_its_own_balance(world, django_capture_on_commit_callbacks):
    separate = separate_account(world.manager)
    with django_capture_on_commit_callbacks(execute=True):
        ingest(world, [usage("s1", quantity="250", account=separate)])
    assert usage_charges(separate) == [(JUNE, Decimal("-2.50"))]
    assert LedgerEntry.objects.get(account=separate).related_account == separate
    assert not LedgerEntry.objects.filter(account=world.manager).exists()
    assert amount_of(separate) == Decimal("-2.50")
    assert_balanced(separate)


# --- Usage charges ---------------------------------------------------------------------------------------


def charge_tasks(callbacks) -> int:
    """How many of the after-commit callbacks queue the usage charge."""
    return sum(c.__qualname__.startswith("_charge_after_commit.") for c in callbacks)


def test_usage_is_charged_after_ingest_rounded_half_up_once_on_the_month_total(
    world, django_capture_on_commit_callbacks
):
    account = world.standard
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ingest(world, [usage("v1", quantity="12.5")], submitter=account)
    assert charge_tasks(callbacks) == 1  # (the account's blocked alert e-mail is queued too)
    assert month_cost(account, JUNE) == Decimal("0.125")  # half up 0.13; half even would be 0.12
    assert usage_charges(account) == [(JUNE, Decimal("-0.13"))]
    entry = LedgerEntry.objects.get(account=account)
    assert (entry.related_account, entry.period) == (account, JUNE)
    assert post_usage_charges(account=account, month=JUNE) is None
    assert usage_charges(account) == [(JUNE, Decimal("-0.13"))]
    assert_balanced(account)


def test_the_charge_rounds_the_months_total_not_each_record(world, django_capture_on_commit_callbacks):
    account = world.standard
    # Four messages at 0.004: each rounds to 0.00, together they cost 0.016.
    rows = [usage(f"sms{i}", sku="sms.outbound") for i in range(4)]
    with django_capture_on_commit_callbacks(execute=True):
        ingest(world, rows, submitter=account)
    assert month_cost(account, JUNE) == Decimal("0.016")
    assert charged(account, account, JUNE) == -to_cents(month_cost(account, JUNE)) == Decimal("-0.02")
    assert_balanced(account)


def test_more_usage_later_in_the_month_is_charged_only_the_difference(world, django_capture_on_commit_callbacks):
    account = world.standard
    steps = [
        ([usage("a", quantity="12.5")], [Decimal("-0.13")]),  # month total 0.125 -> 0.13
        ([usage(f"b{i}", sku="sms.outbound") for i in range(3)], [Decimal("-0.01")]),  # 0.137 -> 0.14
        ([usage("c", quantity="0.2")], []),  # 0.139 -> still 0.14: nothing to post
        ([usage("d", quantity="100", at=IN_JUNE + timedelta(days=15))], [Decimal("-1.00")]),  # 1.139 -> 1.14
    ]
    for rows, expected_new in steps:
        before = set(LedgerEntry.objects.values_list("pk", flat=True))
        with django_capture_on_commit_callbacks(execute=True):
            ingest(world, rows, submitter=account)
        new = LedgerEntry.objects.exclude(pk__in=before)
        assert list(new.values_list("amount", flat=True)) == expected_new
        assert charged(account, account, JUNE) == -to_cents(month_cost(account, JUNE))
        assert_balanced(account)
    assert amount_of(account) == Decimal("-1.14")


def test_two_months_are_charged_separately_and_the_month_boundary_is_utc_midnight(
    world, django_capture_on_commit_callbacks
):
    account = world.standard
    first_of_july = datetime(2025, 7, 1, tzinfo=UTC)
    rows = [
        usage("june-last", quantity="2", at=first_of_july - timedelta(microseconds=1)),  # 23:59:59.999999
        usage("july-first", quantity="5", at=first_of_july),
        usage("june-early", quantity="1", at=datetime(2025, 6, 1, tzinfo=UTC)),
    ]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ingest(world, rows, submitter=account)
    assert charge_tasks(callbacks) == 1
    assert usage_charges(account) == [(JUNE, Decimal("-0.03")), (JULY, Decimal("-0.05"))]
    # Later June usage changes June's charge only.
    with django_capture_on_commit_callbacks(execute=True):
        ingest(world, [usage("june-more", quantity="100")], submitter=account)
    assert charged(account, account, JUNE) == Decimal("-1.03") == -to_cents(month_cost(account, JUNE))
    assert charged(account, account, JULY) == Decimal("-0.05") == -to_cents(month_cost(account, JULY))
    assert post_usage_charges(account=account, month=JUNE) is None
    assert post_usage_charges(account=account, month=JULY) is None
    assert amount_of(account) == Decimal("-1.08")
    assert_balanced(account)


def test_a_charge_is_never_double_posted_when_the_task_runs_twice(world):
    account = world.standard
    ingest(world, [usage("v", quantity="33.3")], submitter=account)  # on-commit task not run: no commit here
    assert not LedgerEntry.objects.exists()
    charge_usage(account.pk, JUNE.isoformat())
    charge_usage(account.pk, JUNE.isoformat())
    assert usage_charges(account) == [(JUNE, Decimal("-0.33"))]
    charge_usage.apply(args=(account.pk, JUNE.isoformat())).get()
    assert usage_charges(account) == [(JUNE, Decimal("-0.33"))]
    assert_balanced(account)


def test_a_rollup_charge_is_never_double_posted_when_the_task_runs_twice(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ingest(world, [usage("m", quantity="7", account=world.managed)])
    charge_usage(world.managed.pk, JUNE.isoformat())
    charge_usage(world.managed.pk, JUNE.isoformat())
    assert usage_charges(world.manager, related=world.managed) == [(JUNE, Decimal("-0.07"))]
    assert_balanced(world.manager)


def test_a_month_without_usage_posts_nothing(world):
    assert post_usage_charges(account=world.standard, month=JUNE) is None
    assert not LedgerEntry.objects.exists()


def test_a_usage_charge_may_take_the_balance_below_the_credit_limit(world, django_capture_on_commit_callbacks):
    account = world.standard
    credit(account, "1.00")
    set_credit_limit(account, "1.00")
    with django_capture_on_commit_callbacks(execute=True):
        ingest(world, [usage("big", quantity="500")], submitter=account)  # 5.00
    assert amount_of(account) == Decimal("-4.00")
    assert_balanced(account)


# --- Transfers ---------------------------------------------------------------------------------------------


@pytest.fixture
def transfer_world(world):
    """The manager with 100.00 and a credit limit of 20.00, and a separately billed managed account."""
    credit(world.manager, "100.00")
    set_credit_limit(world.manager, "20.00")
    world.separate = separate_account(world.manager)
    return world


def transfer(world, amount, *, key="t1", managed=None, manager=None):
    return transfer_credit(
        manager=manager or world.manager,
        managed=managed or world.separate,
        amount=Decimal(amount),
        key=key,
        actor=Actor(user=world.users["owner"]),
    )


def test_a_transfer_posts_both_legs_and_is_audited(transfer_world):
    world = transfer_world
    posted = transfer(world, "30.00")
    assert posted.created
    out = LedgerEntry.objects.get(account=world.manager, kind=LedgerEntry.Kind.TRANSFER_OUT)
    into = LedgerEntry.objects.get(account=world.separate, kind=LedgerEntry.Kind.TRANSFER_IN)
    assert posted.entry == out
    assert (out.amount, out.related_account) == (Decimal("-30.00"), world.separate)
    assert (into.amount, into.related_account) == (Decimal("30.00"), world.manager)
    assert out.created_by == into.created_by == world.users["owner"]
    assert amount_of(world.manager) == Decimal("70.00")
    assert amount_of(world.separate) == Decimal("30.00")
    assert_balanced(world.manager, world.separate)
    event = AuditEvent.objects.get(change_type="balance.transferred")
    assert (event.account, event.related_account, event.user) == (world.manager, world.separate, world.users["owner"])
    assert event.resource_id == str(out.public_id)
    assert event.changes == [{"field": "amount", "from": None, "to": "30.00"}]


def test_a_transfer_may_use_the_managers_credit_limit_exactly(transfer_world):
    world = transfer_world
    transfer(world, "120.00")
    assert amount_of(world.manager) == Decimal("-20.00")
    assert amount_of(world.separate) == Decimal("120.00")
    assert_balanced(world.manager, world.separate)


def test_a_repeated_transfer_key_transfers_once(transfer_world):
    world = transfer_world
    first = transfer(world, "25.00", key="click-1")
    before = state()
    again = transfer(world, "25.00", key="click-1")
    other_amount = transfer(world, "60.00", key="click-1")
    assert not again.created and not other_amount.created
    assert again.entry.pk == other_amount.entry.pk == first.entry.pk
    assert state() == before
    assert AuditEvent.objects.filter(change_type="balance.transferred").count() == 1
    assert (amount_of(world.manager), amount_of(world.separate)) == (Decimal("75.00"), Decimal("25.00"))
    # A new key is a new transfer.
    assert transfer(world, "25.00", key="click-2").created
    assert (amount_of(world.manager), amount_of(world.separate)) == (Decimal("50.00"), Decimal("50.00"))
    assert_balanced(world.manager, world.separate)


def test_a_transfer_to_a_rollup_account_is_refused(transfer_world):
    world = transfer_world
    before = state()
    with pytest.raises(LedgerError):
        transfer(world, "10.00", managed=world.managed)
    assert state() == before


def test_a_transfer_to_another_managers_account_is_refused(transfer_world):
    world = transfer_world
    theirs = separate_account(world.other_manager, name="Theirs")
    before = state()
    for target in (theirs, world.standard, world.other_manager):
        with pytest.raises(LedgerError):
            transfer(world, "10.00", managed=target)
    assert state() == before
    assert not Balance.objects.filter(account=theirs).exists()


@pytest.mark.parametrize("amount", ["0", "0.00", "-5.00", "-0.01", "0.001", "10.005"])
def test_a_transfer_of_a_non_positive_or_fractional_cent_amount_is_refused(transfer_world, amount):
    world = transfer_world
    before = state()
    with pytest.raises(LedgerError) as refused:
        transfer(world, amount)
    assert refused.value.field == "amount"
    assert state() == before


def test_a_transfer_above_the_maximum_is_refused(transfer_world, settings):
    world = transfer_world
    settings.BILLING_MAX_TRANSFER = Decimal("50.00")
    before = state()
    with pytest.raises(LedgerError) as refused:
        transfer(world, "50.01")
    assert refused.value.field == "amount"
    assert not isinstance(refused.value, InsufficientCredit)  # refused for the maximum, not the credit
    assert state() == before
    assert transfer(world, "50.00").created


def test_a_transfer_beyond_the_managers_available_credit_is_refused(transfer_world):
    world = transfer_world
    before = state()
    with pytest.raises(InsufficientCredit):
        transfer(world, "120.01")
    assert state() == before
    assert not Balance.objects.filter(account=world.separate).exists()
    assert not AuditEvent.objects.filter(change_type="balance.transferred").exists()
    # The key was not used up by the refused attempt.
    assert transfer(world, "120.00").created


# --- Staff adjustments -------------------------------------------------------------------------------------


def test_an_adjustment_is_audited_as_made_by_the_platform(world):
    staff = UserFactory(email="staff@platform.example.com", is_staff=True)
    credit(world.standard, "10.00")
    posted = adjust_balance(
        account=world.standard,
        amount=Decimal("-2.50"),
        reason="  Duplicate top-up  ",
        key="ticket-42",
        actor=Actor.platform_staff(staff),
    )
    assert posted.created
    entry = posted.entry
    assert (entry.kind, entry.amount, entry.created_by) == ("adjustment", Decimal("-2.50"), staff)
    assert "Duplicate top-up" in entry.description
    assert amount_of(world.standard) == Decimal("7.50")
    event = AuditEvent.objects.get(change_type="balance.adjusted")
    assert (event.account, event.user, event.change_made_by) == (world.standard, staff, AuditEvent.MadeBy.PLATFORM)
    assert event.resource_id == str(entry.public_id)
    assert {"field": "reason", "from": None, "to": "Duplicate top-up"} in event.changes
    assert {"field": "amount", "from": None, "to": "-2.50"} in event.changes
    # The same key again: no second entry, no second audit event.
    again = adjust_balance(
        account=world.standard,
        amount=Decimal("-2.50"),
        reason="again",
        key="ticket-42",
        actor=Actor.platform_staff(staff),
    )
    assert not again.created
    assert AuditEvent.objects.filter(change_type="balance.adjusted").count() == 1
    assert amount_of(world.standard) == Decimal("7.50")
    assert_balanced(world.standard)


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_an_adjustment_requires_a_reason(world, reason):
    credit(world.standard, "10.00")
    before = state()
    with pytest.raises(LedgerError) as refused:
        adjust_balance(
            account=world.standard, amount=Decimal("5.00"), reason=reason, key="k", actor=Actor.platform_staff(None)
        )
    assert refused.value.field == "reason"
    assert state() == before


def test_an_adjustment_may_go_below_the_credit_limit(world):
    set_credit_limit(world.standard, "10.00")
    adjust_balance(
        account=world.standard,
        amount=Decimal("-25.00"),
        reason="Chargeback",
        key="cb-1",
        actor=Actor.platform_staff(None),
    )
    assert amount_of(world.standard) == Decimal("-25.00")
    assert balance_of(world.standard).available_credit == Decimal("-15.00")
    assert_balanced(world.standard)


# --- Concurrency (PostgreSQL) ----------------------------------------------------------------------------


def _run_together(jobs) -> tuple[list, list, list]:
    """Runs each job in its own thread and connection, all released at once by a barrier.
    Returns (results, InsufficientCredit refusals, any other error)."""
    barrier = threading.Barrier(len(jobs))
    results: list = []
    refused: list = []
    errors: list = []

    def run(job):
        try:
            barrier.wait(timeout=30)
            results.append(job())
        except InsufficientCredit as exc:
            refused.append(exc)
        except Exception as exc:  # a deadlock or any other error fails the test
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads), "a ledger write hung (deadlock?)"
    return results, refused, errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_50_concurrent_debits_never_take_the_balance_below_minus_the_credit_limit(world):
    if connection.vendor != "postgresql":
        pytest.skip(POSTGRES_ONLY)
    account = world.standard
    credit(account, "100.00")
    set_credit_limit(account, "50.00")
    jobs = [lambda n=n: debit(account, "5.00", key=f"debit-{n}") for n in range(50)]
    results, refused, errors = _run_together(jobs)
    assert errors == []
    assert (len(results), len(refused)) == (30, 20)
    assert all(posted.created for posted in results)
    assert amount_of(account) == Decimal("-50.00")
    assert ledger_sum(account) == Decimal("-50.00")
    assert LedgerEntry.objects.filter(account=account, kind=LedgerEntry.Kind.REFUND).count() == 30


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_transfers_to_two_managed_accounts_keep_every_balance_exact(world):
    if connection.vendor != "postgresql":
        pytest.skip(POSTGRES_ONLY)
    manager = world.manager
    credit(manager, "50.00")
    set_credit_limit(manager, "25.00")  # available 75.00: exactly 10 transfers of 7.50
    # The managed accounts have no balance row yet: the racing transfers also create them.
    first, second = separate_account(manager, "First"), separate_account(manager, "Second")
    actor = Actor(user=world.users["owner"])

    def send(n):
        target = first if n % 2 else second
        return transfer_credit(manager=manager, managed=target, amount=Decimal("7.50"), key=f"t{n}", actor=actor)

    results, refused, errors = _run_together([lambda n=n: send(n) for n in range(20)])
    assert errors == []
    assert (len(results), len(refused)) == (10, 10)
    assert amount_of(manager) == Decimal("-25.00")
    assert amount_of(first) + amount_of(second) == Decimal("75.00")
    for account in (first, second):
        transfers_in = LedgerEntry.objects.filter(account=account, kind=LedgerEntry.Kind.TRANSFER_IN).count()
        assert amount_of(account) == Decimal("7.50") * transfers_in
    assert LedgerEntry.objects.filter(account=manager, kind=LedgerEntry.Kind.TRANSFER_OUT).count() == 10
    assert AuditEvent.objects.filter(change_type="balance.transferred").count() == 10
    assert_balanced(manager, first, second)


@pytest.fixture
def catalogue(transactional_db):
    """The products and list prices: each transactional test flushes the tables a migration filled."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_charge_task_running_several_times_at_once_posts_once(catalogue, world, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip(POSTGRES_ONLY)
    # Hold back the on-commit charge, so that the racing tasks are the first to charge the month.
    monkeypatch.setattr(usage_module, "_charge_after_commit", lambda records, batch_id: None)
    ingest(
        world, [usage("m", quantity="12.5", account=world.managed), usage("n", quantity="40", account=world.managed)]
    )
    assert not LedgerEntry.objects.exists()
    results, refused, errors = _run_together(
        [lambda: charge_usage(world.managed.pk, JUNE.isoformat()) for _ in range(8)]
    )
    assert (errors, refused) == ([], [])
    assert usage_charges(world.manager, related=world.managed) == [(JUNE, Decimal("-0.53"))]
    assert charged(world.manager, world.managed, JUNE) == -to_cents(month_cost(world.managed, JUNE))
    assert_balanced(world.manager)


def test_staff_credit_limit_changes_are_audited_and_keep_the_amount(world):
    from billing.ledger.services import set_credit_limit

    staff = UserFactory(is_staff=True)
    credit(world.standard, "10.00")
    set_credit_limit(account=world.standard, limit=Decimal("25.00"), actor=Actor.platform_staff(staff))
    set_credit_limit(account=world.standard, limit=Decimal("25.00"), actor=Actor.platform_staff(staff))
    event = AuditEvent.objects.get(change_type="balance.credit_limit_changed")
    assert event.changes == [{"field": "credit_limit", "from": "0.00", "to": "25.00"}]
    assert (event.user, event.change_made_by) == (staff, "platform")
    assert balance_of(world.standard).available_credit == Decimal("35.00")
    with pytest.raises(LedgerError):
        set_credit_limit(account=world.standard, limit=Decimal("-1"), actor=Actor.platform_staff(staff))


def test_the_bulk_usage_charge_of_a_managers_roll_up_accounts_agrees_with_the_one_by_one_charge(world):
    """The close charges a manager's roll-up accounts in one set-based step: same amounts, same keys,
    so either way round, and repeated, nothing is charged twice; later usage is charged as the difference."""
    from billing.models import MonthlyUsage, Product

    month = date(2025, 6, 1)
    voice = Product.objects.get(sku="voice.outbound")
    MonthlyUsage.objects.create(
        account=world.managed, product=voice, month=month, quantity=1, records=1, cost=Decimal("1.005")
    )
    MonthlyUsage.objects.create(
        account=world.sibling, product=voice, month=month, quantity=1, records=1, cost=Decimal("0.004")
    )

    assert post_usage_charges_for(payer=world.manager, accounts=[world.managed, world.sibling], month=month) == 1
    assert post_usage_charges(account=world.managed, month=month) is None  # already charged, same key
    assert post_usage_charges_for(payer=world.manager, accounts=[world.managed, world.sibling], month=month) == 0
    MonthlyUsage.objects.filter(account=world.managed).update(cost=Decimal("2.50"))
    assert post_usage_charges(account=world.managed, month=month).created
    assert post_usage_charges_for(payer=world.manager, accounts=[world.managed], month=month) == 0

    charges = LedgerEntry.objects.filter(account=world.manager, kind=LedgerEntry.Kind.USAGE_CHARGE)
    assert sorted(charges.values_list("amount", flat=True)) == [Decimal("-1.49"), Decimal("-1.01")]
    balance = Balance.objects.get(account=world.manager)
    assert balance.amount == Decimal("-2.50") == ledger_sum(world.manager)


def test_one_message_charges_many_accounts_set_based_and_a_failing_group_falls_back(world, monkeypatch):
    """Ingestion sends a batch's (account, month) pairs in messages of many: own-balance accounts
    are charged together, each manager's roll-up accounts together; a group that fails is charged
    one account at a time instead, and a repeated message posts nothing."""
    from billing.tasks import charge_usage_many

    Account.objects.filter(pk=world.sibling.pk).update(billing_mode=Account.BillingMode.SEPARATE)
    world.sibling.refresh_from_db()
    ingest(world, [usage("s", quantity="10")], submitter=world.standard)
    ingest(world, [usage("m", quantity="7", account=world.managed), usage("b", quantity="3", account=world.sibling)])
    ingest(world, [usage("o", quantity="2", account=world.other_managed)], submitter=world.other_manager)
    assert not LedgerEntry.objects.exists()  # no commit here: the on-commit messages never went
    pairs = [[a.pk, JUNE.isoformat()] for a in (world.standard, world.managed, world.sibling, world.other_managed)]

    assert charge_usage_many(pairs) == 4
    assert charge_usage_many(pairs) == 0
    assert usage_charges(world.standard) == [(JUNE, Decimal("-0.10"))]
    assert usage_charges(world.sibling) == [(JUNE, Decimal("-0.03"))]
    assert usage_charges(world.manager, related=world.managed) == [(JUNE, Decimal("-0.07"))]
    assert usage_charges(world.other_manager, related=world.other_managed) == [(JUNE, Decimal("-0.02"))]
    for payer in (world.standard, world.sibling, world.manager, world.other_manager):
        assert_balanced(payer)

    # A group that fails (here: every own-balance group) is charged one by one, the others as usual.
    ingest(world, [usage("s2", quantity="10")], submitter=world.standard)
    ingest(world, [usage("m2", quantity="10", account=world.managed)])

    def broken(**kwargs):
        raise RuntimeError("lock timeout")

    monkeypatch.setattr("billing.ledger.services.post_own_usage_charges", broken)
    assert charge_usage_many(pairs) == 1  # the manager's group; the standard account went one by one
    assert usage_charges(world.standard) == [(JUNE, Decimal("-0.10")), (JUNE, Decimal("-0.10"))]
    assert charged(world.manager, world.managed, JUNE) == Decimal("-0.17")
    assert_balanced(world.standard)
    assert_balanced(world.manager)
