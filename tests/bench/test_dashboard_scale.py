"""The manager's overview at 3,000 managed accounts: query count and server time.

`./dev bench` (SQLite: 100,000 records a month) or with DATABASE_URL on PostgreSQL (1,000,000; say
BENCH_RECORDS to choose). The page reads month to date, so its figure depends on the day of the
month the bench runs; the overview's reads are also timed at the end of a whole month of usage
(last month, through the selectors' `today`), the most the daily totals ever hold for it. Server
time is measured in-process through Django's test client (middleware, view, template; no network).
"""

import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.actor import Actor
from accounts.permissions import permissions_for
from accounts.services import create_manager_account
from billing.models import DailyUsage
from billing.scale import build_managed_accounts, build_rates, build_usage, month_days
from reporting import dashboard
from reporting.dashboard import manager_overview
from tests.conftest import make_managed_accounts
from tests.factories import account_with_owner

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

REQUESTS = 50


def _records() -> int:
    default = 1_000_000 if connection.vendor == "postgresql" else 100_000
    return int(os.environ.get("BENCH_RECORDS", default))


def _count(call) -> int:
    """The queries of one call (the log emptied first: the bulk load filled its 9,000 places)."""
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as queries:
        call()
    return len(queries)


def _timings(call, count: int = REQUESTS) -> tuple[float, float]:
    call()  # warm caches (templates, session)
    timings = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings), statistics.quantiles(timings, n=20)[18]


def test_the_managers_overview_with_3000_managed_accounts():
    records = _records()
    manager = create_manager_account(
        name="Bench Overview", owner_email="overview@example.com", owner_password=None, actor=Actor.platform_staff()
    )
    owner = manager.memberships.get().user
    today = datetime.now(UTC).date()
    this_month = today.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    began = time.monotonic()
    accounts = build_managed_accounts(manager, 3000)
    build_rates(manager, accounts, last_month)
    build_usage(accounts=accounts, start=last_month, days=month_days(last_month), records=records)
    build_usage(accounts=accounts, start=this_month, days=today.day, records=records, seed=8)
    daily = DailyUsage.objects.filter(account__manager=manager).count()
    print(
        f"\nbuilt 3,000 managed accounts, {records:,} records last month and {records:,} in the {today.day} days "
        f"of this one ({daily:,} daily totals) in {time.monotonic() - began:.1f} s"
    )
    client = Client()
    client.force_login(owner)
    url = reverse("dashboard", args=[manager.public_id])

    small_manager, small_owner = account_with_owner(manager_kind=True)
    build_usage(accounts=make_managed_accounts(small_manager, 3), start=this_month, days=today.day, records=30)
    small = Client()
    small.force_login(small_owner)
    small_url = reverse("dashboard", args=[small_manager.public_id])
    small.get(small_url)
    client.get(url)
    small_queries, queries = _count(lambda: small.get(small_url)), _count(lambda: client.get(url))
    response = client.get(url)
    assert response.status_code == 200
    assert "3,000 of 3,000 managed accounts in use" in response.content.decode()

    median, page_p95 = _timings(lambda: client.get(url))
    print(f"Manager's overview, {connection.vendor}, {REQUESTS} requests")
    print(f"{'case':52} {'queries':>7} {'median ms':>10} {'p95 ms':>8}")
    print(f"{f'the page, day {today.day} of the month':52} {queries:7d} {median:10.1f} {page_p95:8.1f}")
    print(f"{'the page, a manager with 3 managed accounts':52} {small_queries:7d}")
    can = permissions_for(membership=manager.memberships.get())
    reads_now = _count(lambda: manager_overview(manager=manager, can=can))
    median, p95 = _timings(lambda: manager_overview(manager=manager, can=can), count=20)
    print(f"{'its reads, today':52} {reads_now:7d} {median:10.1f} {p95:8.1f}")
    end = last_month.replace(day=month_days(last_month))
    reads = _count(lambda: manager_overview(manager=manager, can=can, today=end))
    median, p95 = _timings(lambda: manager_overview(manager=manager, can=can, today=end), count=20)
    print(f"{'its reads at the end of a whole month (' + str(end) + ')':52} {reads:7d} {median:10.1f} {p95:8.1f}")
    month = (last_month, end)
    parts = {
        "  spend by day (daily totals)": lambda: dashboard.manager_spend(manager=manager, start=month[0], end=month[1]),
        "  top 10 (monthly totals)": lambda: dashboard.top_accounts_by_spend(manager=manager, month=last_month),
        "  needing attention (balances)": lambda: dashboard.accounts_needing_attention(manager=manager, balances=True),
    }
    for label, part in parts.items():
        median, p95 = _timings(part, count=20)
        print(f"{label:52} {_count(part):7d} {median:10.1f} {p95:8.1f}")
    assert queries == small_queries, f"{queries} queries at 3,000 managed accounts, {small_queries} at 3"
    if connection.vendor == "postgresql":
        assert page_p95 < 500, f"the page's p95 {page_p95:.1f} ms"
