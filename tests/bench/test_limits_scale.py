"""The manager's spend-limits page at 3,000 managed accounts, each with a limit: query count and
server time against the floor of a page (the login page, in the same run).

`./dev bench` (SQLite: 30,000 records this month) or with DATABASE_URL on PostgreSQL (300,000; say
BENCH_RECORDS to choose). Half the accounts are billed by roll-up (a 12.5 % markup, and a resale
rate for two products this month), half separately. Every account has a limit on all products (a
third with a daily amount too), a third one on a product as well. The page reads month to date,
so the work grows with the day of the month. Server time is measured in-process through Django's
test client (middleware, view, template; no network).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mc_limits \\
        .venv/bin/python -m pytest -q -s -p no:randomly -m slow tests/bench/test_limits_scale.py
"""

import os
import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.actor import Actor
from accounts.services import create_manager_account
from billing.models import DailyUsage, MonthlyUsage, Product, ResaleRate, ResaleTerms
from billing.scale import build_managed_accounts, build_rates, build_usage
from controls.models import SpendLimit
from tests.conftest import make_managed_accounts
from tests.factories import account_with_owner

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

REQUESTS = int(os.environ.get("BENCH_REQUESTS", 30))


def _records() -> int:
    default = 300_000 if connection.vendor == "postgresql" else 30_000
    return int(os.environ.get("BENCH_RECORDS", default))


def _count(client: Client, url: str, params: dict | None = None) -> int:
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, params or {}).status_code == 200
    return len(queries)


def _timings(client: Client, url: str, params: dict | None = None) -> tuple[float, float]:
    client.get(url, params or {})  # warm caches (templates, session, plans)
    timings = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        response = client.get(url, params or {})
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return statistics.median(timings), statistics.quantiles(timings, n=20)[18]


def _limits(accounts, products: list[Product]) -> list[SpendLimit]:
    limits = []
    for i, account in enumerate(accounts):
        daily = Decimal(5 + i % 40) if i % 3 == 0 else None
        monthly = Decimal(20 + (i * 37) % 400)
        limits.append(SpendLimit(account=account, set_by="manager", monthly_amount=monthly, daily_amount=daily))
        if i % 3 == 1:
            product = products[i % len(products)]
            limits.append(SpendLimit(account=account, set_by="manager", product=product, monthly_amount=monthly / 4))
    return SpendLimit.objects.bulk_create(limits)


def test_the_limits_page_with_3000_managed_accounts_each_with_a_limit():
    records = _records()
    manager = create_manager_account(
        name="Bench Limits", owner_email="limits@example.com", owner_password=None, actor=Actor.platform_staff()
    )
    owner = manager.memberships.get().user
    today = datetime.now(UTC).date()
    this_month = today.replace(day=1)
    began = time.monotonic()
    accounts = build_managed_accounts(manager, 3000)
    build_rates(manager, accounts, this_month)
    build_usage(accounts=accounts, start=this_month, days=today.day, records=records)
    products = list(Product.objects.filter(active=True).order_by("sku"))
    ResaleTerms.objects.create(manager=manager, markup_percent=Decimal("12.50"))
    for product in products[:2]:
        ResaleRate.objects.create(
            manager=manager, product=product, unit_price=Decimal("0.011"), effective_from=this_month
        )
    limits = _limits(accounts, products)
    monthly = MonthlyUsage.objects.filter(account__manager=manager, month=this_month).count()
    daily = DailyUsage.objects.filter(account__manager=manager, day=today).count()
    print(
        f"\nbuilt 3,000 managed accounts with {len(limits):,} spend limits and {records:,} records in the "
        f"{today.day} days of this month ({monthly:,} monthly totals, {daily:,} of today) "
        f"in {time.monotonic() - began:.1f} s"
    )
    client = Client()
    client.force_login(owner)
    url = reverse("controls_limits", args=[manager.public_id])

    small_manager, small_owner = account_with_owner(manager_kind=True)
    few = make_managed_accounts(small_manager, 3)
    build_usage(accounts=few, start=this_month, days=today.day, records=30)
    _limits(few, products)
    small = Client()
    small.force_login(small_owner)
    small_url = reverse("controls_limits", args=[small_manager.public_id])

    login_median, login_p95 = _timings(Client(), reverse("account_login"))
    cases = {
        "nearest first (page 1)": {},
        "nearest first, last page (60)": {"page": 60},
        "by spend this month": {"sort": "-month_spend"},
        "by name": {"sort": "name"},
    }
    print(f"Spend-limits page, {connection.vendor}, {REQUESTS} requests each")
    print(f"{'case':36} {'queries':>7} {'median ms':>10} {'p95 ms':>8} {'x login':>8}")
    print(f"{'login page, anonymous (the floor)':36} {'':7} {login_median:10.1f} {login_p95:8.1f}")
    small_queries = _count(small, small_url)
    worst = 0.0
    for label, params in cases.items():
        queries = _count(client, url, params)
        median, p95 = _timings(client, url, params)
        worst = max(worst, p95)
        print(f"{label:36} {queries:7d} {median:10.1f} {p95:8.1f} {p95 / login_p95:8.1f}")
        assert queries == _count(small, small_url, params) == small_queries, label
    print(f"(the page with 3 managed accounts: {small_queries} queries)")
    # The target (issue 16) is p95 <= 5x the login page: not met yet (386-404 ms, 82-86x, on
    # 2026-12-04, PostgreSQL, load average about 1): the ranking query prices ~24,000 monthly and
    # ~16,000 daily totals a request. Printed for the record; the query count is what is asserted.
    print(f"worst p95 {worst:.1f} ms = {worst / login_p95:.1f}x the login page (target <= 5x)")
