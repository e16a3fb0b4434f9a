"""Usage reports at scale: 3,000 managed accounts and 1,000,000 usage records in one month.

`./dev bench` with DATABASE_URL on PostgreSQL runs the reference size; on SQLite it runs a tenth
of the records (say BENCH_RECORDS to choose). Prints median and p95 server time (in-process test
client: middleware, view, template; no network) and query counts, and the peak extra memory of
streaming the month's records as CSV.
"""

import gc
import os
import statistics
import time
import tracemalloc
from datetime import date

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.actor import Actor
from accounts.services import create_manager_account
from billing.scale import build_managed_accounts, build_usage

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

REQUESTS = 50
MONTH = date(2026, 10, 1)
PERIOD = {"start": "2026-10-01", "end": "2026-10-31"}


def _records() -> int:
    default = 1_000_000 if connection.vendor == "postgresql" else 100_000
    return int(os.environ.get("BENCH_RECORDS", default))


def _time(client: Client, url: str, params: dict) -> tuple[int, float, float, int]:
    client.get(url, params)
    timings = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        response = client.get(url, params)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    with CaptureQueriesContext(connection) as queries:
        client.get(url, params)
    return len(queries), statistics.median(timings), statistics.quantiles(timings, n=20)[18], len(response.content)


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_reports_with_3000_managed_accounts_and_a_million_records():
    records = _records()
    manager = create_manager_account(
        name="Bench Reseller", owner_email="bench@example.com", owner_password=None, actor=Actor.platform_staff()
    )
    owner = manager.memberships.get().user
    began = time.monotonic()
    accounts = build_managed_accounts(manager, 3000)
    build_usage(accounts=accounts, start=MONTH, days=31, records=records)
    print(f"\nbuilt 3,000 managed accounts and {records:,} records in {time.monotonic() - began:.1f} s")
    busiest = max(accounts, key=lambda a: a.daily_usage.count())
    client = Client()
    client.force_login(owner)
    report = reverse("usage_report", args=[manager.public_id])
    cases = {
        "one managed account, by day": {**PERIOD, "scope": busiest.public_id, "group_by": "day"},
        "one managed account, by product": {**PERIOD, "scope": busiest.public_id, "group_by": "product"},
        "all managed accounts, by day": {**PERIOD, "scope": "all", "group_by": "day"},
        "all managed accounts, by product": {**PERIOD, "scope": "all", "group_by": "product"},
        "all managed accounts, by account": {**PERIOD, "scope": "all", "group_by": "account"},
        "all managed accounts, by month": {**PERIOD, "scope": "all", "group_by": "month"},
    }
    print(f"Usage report, {connection.vendor}, {records:,} records, {REQUESTS} requests each")
    print(f"{'report':36} {'queries':>7} {'median ms':>10} {'p95 ms':>8}")
    counts = set()
    for label, params in cases.items():
        count, median, p95, _ = _time(client, report, params)
        counts.add(count)
        print(f"{label:36} {count:7d} {median:10.1f} {p95:8.1f}")
        if connection.vendor == "postgresql":
            assert p95 < 200, f"{label}: p95 {p95:.1f} ms"
    assert max(counts) <= 8, f"query counts: {counts}"
    records_page = reverse("usage_records", args=[manager.public_id])
    for label, params in {
        "records page, one managed account": {**PERIOD, "scope": busiest.public_id},
        "records page, all managed accounts": {**PERIOD, "scope": "all"},
    }.items():
        count, median, p95, _ = _time(client, records_page, params)
        print(f"{label:36} {count:7d} {median:10.1f} {p95:8.1f}")

    # Memory while streaming: the Python heap's peak (tracemalloc: every object the export creates)
    # and the growth of the process's resident memory (which also covers the driver's buffers).
    gc.collect()
    baseline, rss_growth, rows, first_byte = _rss_kb(), 0, 0, None
    tracemalloc.start()
    start = time.perf_counter()
    response = client.get(reverse("usage_records_csv", args=[manager.public_id]), {**PERIOD, "scope": "all"})
    for chunk in response.streaming_content:
        first_byte = first_byte or time.perf_counter() - start
        rows += chunk.count(b"\n")
        if rows % 20_000 < 50:
            rss_growth = max(rss_growth, _rss_kb() - baseline)
    elapsed = time.perf_counter() - start
    heap_peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024
    tracemalloc.stop()
    rss_growth = max(rss_growth, _rss_kb() - baseline) / 1024
    print(
        f"CSV of all records: {rows - 1:,} rows in {elapsed:.1f} s, tracemalloc on (first byte {first_byte:.2f} s); "
        f"Python heap peak {heap_peak:.1f} MB, resident memory growth {rss_growth:.1f} MB"
    )
    assert rows - 1 == records
    assert heap_peak < 100 and rss_growth < 100
