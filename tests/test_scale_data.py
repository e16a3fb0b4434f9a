"""The scale-data builder (`manage.py scale_data`, billing.scale): the reference workload's
proportions at a small size, records rated at the rates in force, totals equal to the raw records,
and (PostgreSQL) the bulk path that rebuilds the usage table's indexes and keys leaves the schema
exactly as it was."""

from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Max, Min, Sum

from accounts.models import Account
from billing import scale
from billing.models import DailyUsage, MonthlyUsage, Product, Rate, UsageRecord
from billing.usage.rating import RateBook

MONTH = date(2025, 3, 1)

pytestmark = pytest.mark.django_db


def build(managed=20, records=3000, **kwargs) -> scale.Workload:
    return scale.build_workload(managed=managed, records=records, month=MONTH, **kwargs)


def test_it_builds_the_reference_proportions_at_a_small_size():
    workload = build(managed=40)
    accounts = Account.objects.filter(manager=workload.manager)
    assert workload.manager.kind == Account.Kind.MANAGER
    assert accounts.count() == 40
    assert accounts.filter(billing_mode=Account.BillingMode.ROLLUP).count() == 20
    assert accounts.filter(billing_mode=Account.BillingMode.SEPARATE).count() == 20
    assert accounts.filter(pricing_hidden=True).count() == 4
    assert accounts.filter(allow_custom_pricing=True).count() == 2
    assert all(a.memberships.filter(role="owner").count() == 1 for a in accounts)
    used = UsageRecord.objects.filter(account__manager=workload.manager)
    assert used.count() == 3000
    assert set(used.values_list("product__sku", flat=True)) == {sku for sku, _, _ in scale.MIX}
    assert Product.objects.filter(active=True).count() == 10
    span = used.aggregate(first=Min("started_at"), last=Max("started_at"))
    assert datetime(2025, 3, 1, tzinfo=UTC) <= span["first"] and span["last"] < datetime(2025, 4, 1, tzinfo=UTC)


def test_a_few_accounts_carry_most_of_the_traffic():
    workload = build(managed=200, records=20_000)
    per_account = sorted(
        Counter(
            UsageRecord.objects.filter(account__manager=workload.manager).values_list("account", flat=True)
        ).values(),
        reverse=True,
    )
    top_tenth = sum(per_account[:20])
    assert top_tenth > 0.35 * 20_000, per_account[:20]  # Pareto: the busiest tenth carries well over a third
    assert per_account[0] > 10 * per_account[len(per_account) // 2]  # and the median account is small


def test_every_record_is_rated_at_the_rate_in_force_at_its_start():
    workload = build()
    records = list(UsageRecord.objects.filter(account__manager=workload.manager).select_related("account__manager"))
    book = RateBook([r.account for r in records])
    assert all(r.rate == book.rate_for(r.account, r.product_id, r.started_at) for r in records)
    assert all(r.cost == r.quantity * r.rate for r in records)
    # The negotiated rate changes on the 15th, and custom rates apply where allowed.
    voice = Product.objects.get(sku="voice.outbound")
    rates = {r.rate for r in records if r.product_id == voice.pk}
    assert len(rates) == 2
    sms = Product.objects.get(sku="sms.outbound")
    custom = Rate.objects.get(account__manager=workload.manager, account__allow_custom_pricing=True, product=sms)
    assert any(
        r.rate == custom.unit_price for r in records if r.account_id == custom.account_id and r.product_id == sms.pk
    )


def _python_sums(period) -> dict:
    sums: dict = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    for account, product, started_at, quantity, cost in UsageRecord.objects.values_list(
        "account_id", "product_id", "started_at", "quantity", "cost"
    ):
        total = sums[(account, product, period(started_at.astimezone(UTC).date()))]
        total[0] += quantity
        total[1] += cost
        total[2] += 1
    return {key: tuple(value) for key, value in sums.items()}


def _assert_same(totals: dict, expected: dict) -> None:
    """Exact on PostgreSQL; SQLite sums decimals as 15-digit floats (README, "Money is Decimal")."""
    assert totals.keys() == expected.keys()
    for key, (quantity, cost, count) in totals.items():
        want = expected[key]
        assert count == want[2], key
        if connection.vendor == "postgresql":
            assert (quantity, cost) == want[:2], key
        else:
            assert abs(quantity - want[0]) < Decimal("1e-6") and abs(Decimal(cost) - want[1]) < Decimal("1e-9"), key


def test_daily_and_monthly_totals_equal_the_raw_records():
    build()
    daily = DailyUsage.objects.values_list("account_id", "product_id", "day", "quantity", "cost", "records")
    _assert_same({row[:3]: row[3:] for row in daily}, _python_sums(lambda day: day))
    monthly = MonthlyUsage.objects.values_list("account_id", "product_id", "month", "quantity", "cost", "records")
    _assert_same({row[:3]: row[3:] for row in monthly}, _python_sums(lambda day: day.replace(day=1)))
    assert set(MonthlyUsage.objects.values_list("month", flat=True)) == {MONTH}


def test_the_command_builds_a_named_workload_and_refuses_a_bad_month(capsys):
    call_command("scale_data", managed=4, records=100, month="2025-02", name="Tiny Reseller")
    manager = Account.objects.get(name="Tiny Reseller")
    assert manager.managed_accounts.count() == 4
    assert MonthlyUsage.objects.filter(account__manager=manager).aggregate(n=Sum("records"))["n"] == 100
    assert "Tiny Reseller" in capsys.readouterr().out
    with pytest.raises(CommandError, match="2026-10"):
        call_command("scale_data", managed=4, records=10, month="October")


def _schema() -> tuple[set, set]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'billing_usagerecord'")
        indexes = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'billing_usagerecord'::regclass"
        )
        constraints = set(cursor.fetchall())
    return indexes, constraints


@pytest.mark.postgres
def test_the_bulk_path_builds_the_same_indexes_and_keys_again(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("the bulk path (COPY, indexes built again) is PostgreSQL's")
    before = _schema()
    assert len(before[0]) >= 5 and len(before[1]) >= 5  # pkey, unique key, time, batch, public id
    monkeypatch.setattr(scale, "REBUILD_INDEXES_FROM", 1)
    build(managed=10, records=2000)
    assert _schema() == before
    assert UsageRecord.objects.count() == 2000
    daily = DailyUsage.objects.values_list("account_id", "product_id", "day", "quantity", "cost", "records")
    _assert_same({row[:3]: row[3:] for row in daily}, _python_sums(lambda day: day))
