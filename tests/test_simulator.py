"""The usage simulator and its `simulate_usage` command."""

import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from accounts.models import Account
from billing.models import DailyUsage, UsageBatch, UsageRecord
from billing.usage.services import MAX_BATCH
from billing.usage.simulator import account_profile, account_usage
from tests.factories import AccountFactory

# A fixed end in the past, so that two runs see the same range whatever the clock does between them.
END = "2026-03-15T12:00:00+00:00"
JOINED = datetime(2024, 1, 1, tzinfo=UTC)  # the simulator makes no usage before an account was created


def joined_long_ago(*accounts: Account) -> None:
    Account.objects.update(created_at=JOINED)
    for account in accounts:
        account.created_at = JOINED


E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)  # fixed ids: account profiles come from (seed, public id)


@pytest.fixture
def reseller(db):
    manager = AccountFactory(name="Sim Reseller", manager_kind=True, public_id=uid(1))
    managed = [
        AccountFactory(name=f"Sim Customer {n}", managed_kind=True, manager=manager, public_id=uid(100 + n))
        for n in range(8)
    ]
    disabled = AccountFactory(name="Sim Disabled", managed_kind=True, manager=manager, disabled=True, public_id=uid(2))
    cancelled = AccountFactory(
        name="Sim Cancelled", managed_kind=True, manager=manager, cancelled=True, public_id=uid(3)
    )
    joined_long_ago(manager, *managed, disabled, cancelled)
    return manager, managed, disabled, cancelled


def simulate(*args: str) -> str:
    out = StringIO()
    call_command("simulate_usage", *args, stdout=out)
    return out.getvalue()


def test_the_same_seed_twice_adds_nothing_the_second_time(reseller):
    manager, *_ = reseller
    args = ("--manager", str(manager.public_id), "--days", "5", "--end", END, "--seed", "7")

    first = simulate(*args)
    records = list(
        UsageRecord.objects.order_by("account_id", "idempotency_key").values_list(
            "account_id", "idempotency_key", "quantity"
        )
    )
    totals = list(DailyUsage.objects.order_by("pk").values())
    second = simulate(*args)

    accepted = len(records)
    assert accepted > 500
    assert f"{accepted:,} records accepted, 0 duplicates skipped" in first
    assert f"0 records accepted, {accepted:,} duplicates skipped" in second
    assert UsageRecord.objects.count() == accepted
    assert list(DailyUsage.objects.order_by("pk").values()) == totals


def test_a_later_run_over_an_overlapping_range_only_adds_the_new_days(reseller):
    manager, *_ = reseller
    simulate("--manager", "Sim Reseller", "--days", "4", "--end", "2026-03-13T00:00:00Z")
    before = set(UsageRecord.objects.values_list("account_id", "idempotency_key", "quantity", "started_at"))

    simulate("--manager", "Sim Reseller", "--days", "6", "--end", END)

    after = set(UsageRecord.objects.values_list("account_id", "idempotency_key", "quantity", "started_at"))
    assert before < after  # the same records, unchanged, and more


def test_another_seed_makes_other_traffic(reseller):
    manager, managed, *_ = reseller
    start, end = datetime(2026, 3, 10, tzinfo=UTC), datetime.fromisoformat(END)
    one = list(account_usage(managed[0], start=start, end=end, records_per_day=40, seed=1))
    again = list(account_usage(managed[0], start=start, end=end, records_per_day=40, seed=1))
    other = list(account_usage(managed[0], start=start, end=end, records_per_day=40, seed=2))
    assert one == again
    assert one != other


def test_usage_is_spread_unevenly_across_accounts(reseller):
    manager, managed, *_ = reseller
    simulate("--manager", str(manager.public_id), "--days", "10", "--records-per-day", "20", "--end", END)

    per_account = dict(
        UsageRecord.objects.filter(account__in=managed).values_list("account__name").annotate(n=Count("id"))
    )
    assert len(per_account) == len(managed)
    counts = sorted(per_account.values())
    assert counts[-1] > 4 * counts[0]  # a large account and a small one
    assert counts[-1] > 1.5 * sum(counts) / len(counts)  # the largest well above the mean


def test_disabled_and_cancelled_accounts_get_no_usage(reseller):
    manager, _, disabled, cancelled = reseller

    output = simulate("--account", str(disabled.public_id), "--account", str(cancelled.public_id), "--end", END)
    output += simulate("--manager", str(manager.public_id), "--days", "3", "--end", END)

    assert "Skipping Sim Disabled: disabled." in output
    assert "Skipping Sim Cancelled: cancelled." in output
    assert not UsageRecord.objects.filter(account__in=[disabled, cancelled]).exists()
    assert UsageRecord.objects.exists()


def test_all_takes_every_enabled_account(reseller):
    manager, managed, disabled, cancelled = reseller
    standard = AccountFactory(name="Sim Standard", public_id=uid(4))
    joined_long_ago()

    simulate("--all", "--days", "3", "--end", END, "--records-per-day", "30")

    with_usage = set(UsageRecord.objects.values_list("account_id", flat=True).distinct())
    assert {standard.pk, manager.pk, *(a.pk for a in managed)} <= with_usage
    assert not {disabled.pk, cancelled.pk} & with_usage


def test_it_never_produces_future_records(reseller):
    manager, *_ = reseller
    tomorrow = (timezone.now() + timedelta(days=1)).isoformat()

    simulate("--manager", str(manager.public_id), "--days", "2")
    simulate("--manager", str(manager.public_id), "--days", "2", "--end", tomorrow, "--seed", "3")

    assert UsageRecord.objects.aggregate(last=Max("started_at"))["last"] <= timezone.now()


def test_records_look_like_real_traffic(reseller):
    manager, managed, *_ = reseller
    simulate("--manager", str(manager.public_id), "--days", "15", "--records-per-day", "20", "--end", END)
    records = UsageRecord.objects.select_related("product")

    products = Counter(records.values_list("product__sku", flat=True))
    assert {"voice.outbound", "voice.inbound", "sms.outbound", "sms.inbound", "number.local"} <= set(products)
    voice = records.filter(product__sku__startswith="voice.")
    assert voice.exclude(quantity=voice.first().quantity.to_integral_value()).exists()  # 2.5 minutes
    for record in records.exclude(product__sku__startswith="number.")[:500]:
        assert E164.match(record.destination), record.destination
        assert record.direction in ("inbound", "outbound")
        assert re.fullmatch(r"[A-Z]{2}", record.country)
        assert re.fullmatch(r"sim0-\d{8}-\d{6}", record.idempotency_key)
    numbers = records.filter(product__sku="number.local")
    assert numbers.count() == len(managed)  # one per account for March, on the 1st
    assert {(r.started_at.day, r.started_at.hour) for r in numbers} == {(1, 0)}
    weekdays = Counter(r.started_at.weekday() for r in records.exclude(product__sku__startswith="number."))
    assert weekdays[1] > 1.5 * weekdays[6]  # Tuesdays are busier than Sundays


def test_records_are_rated_and_daily_totals_match_them(reseller):
    manager, *_ = reseller
    simulate("--manager", str(manager.public_id), "--days", "3", "--end", END)

    assert not UsageRecord.objects.filter(cost__lt=0).exists()
    sums = UsageRecord.objects.aggregate(q=Sum("quantity"), n=Count("id"))
    totals = DailyUsage.objects.aggregate(q=Sum("quantity"), n=Sum("records"))
    assert totals["n"] == sums["n"]
    assert abs(totals["q"] - sums["q"]) < Decimal("0.000001")
    assert set(UsageBatch.objects.values_list("source", flat=True)) == {"simulator"}
    assert set(UsageBatch.objects.values_list("submitted_by_account", flat=True)) == {manager.pk}


def test_batches_hold_at_most_the_batch_limit(reseller):
    _, managed, *_ = reseller
    largest = max(managed, key=lambda a: account_profile(a, seed=0).weight)
    per_day = str(round(8000 / account_profile(largest, seed=0).weight))
    simulate("--account", str(largest.public_id), "--days", "2", "--records-per-day", per_day, "--end", END)

    sizes = list(UsageBatch.objects.values_list("accepted", flat=True))
    assert len(sizes) >= 2
    assert max(sizes) <= MAX_BATCH
    span = UsageRecord.objects.aggregate(first=Min("started_at"), last=Max("started_at"))
    assert span["last"] <= datetime.fromisoformat(END)


def test_it_names_what_it_cannot_find(reseller):
    with pytest.raises(CommandError, match="No single manager account"):
        simulate("--manager", "Nobody Reseller")
    with pytest.raises(CommandError, match="No account with the public id"):
        simulate("--account", "not-a-uuid")
    with pytest.raises(CommandError):
        simulate("--days", "3")  # which accounts?


def test_the_simulator_leaves_invoiced_months_alone_so_a_second_run_after_a_close_works(world):
    """`./dev run` simulates 90 days and closes last month; run again, it must not send usage for
    the closed month (which ingestion refuses) but still fill the open days."""
    from datetime import UTC, datetime

    from billing.invoices.builder import invoice_party
    from billing.models import UsageRecord
    from billing.usage.simulator import account_usage, simulate_usage

    # An account's size is drawn from its random public id (down to 2 % of the mean), so the rate is
    # high enough that even the smallest account has traffic on June 10-12.
    start, end = datetime(2025, 5, 20, tzinfo=UTC), datetime(2025, 6, 10, tzinfo=UTC)
    joined_long_ago(world.standard)
    simulate_usage(accounts=[world.standard], start=start, end=end, records_per_day=400)
    invoice_party(account=world.standard, month=datetime(2025, 5, 1).date())
    before = UsageRecord.objects.filter(account=world.standard, started_at__lt=datetime(2025, 6, 1, tzinfo=UTC)).count()
    later = datetime(2025, 6, 12, tzinfo=UTC)
    new_days = list(account_usage(world.standard, start=end, end=later, records_per_day=400, seed=0))
    new_days = [r for r in new_days if datetime.fromisoformat(r["started_at"]) > end]

    again = simulate_usage(accounts=[world.standard], start=start, end=later, records_per_day=400)

    assert again.accepted == len(new_days) > 0  # June 10-12, still open
    may = UsageRecord.objects.filter(account=world.standard, started_at__lt=datetime(2025, 6, 1, tzinfo=UTC))
    assert may.count() == before
