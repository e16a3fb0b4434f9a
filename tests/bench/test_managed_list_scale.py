"""The managed-accounts list with 3,000 managed accounts: query count and server time.

Run with `./dev bench` (SQLite) or with DATABASE_URL set to PostgreSQL. Server time is measured
in-process through Django's test client (the full middleware and template stack, no network).
"""

import statistics
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.conftest import make_managed_accounts
from tests.factories import account_with_owner

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

REQUESTS = 50
QUERIES = {
    "default (page 1, newest first)": {},
    "last page (120)": {"page": 120},
    "search 'customer 01'": {"q": "customer 01"},
    "sort by name, disabled only": {"sort": "name", "status": "disabled"},
}


def _measure(client: Client, url: str, params: dict) -> tuple[int, float, float]:
    client.get(url, params)  # warm caches (templates, session)
    timings = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        response = client.get(url, params)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        client.get(url, params)
    return len(queries), statistics.median(timings), statistics.quantiles(timings, n=20)[18]


def test_managed_list_with_3000_managed_accounts():
    manager, owner = account_with_owner(manager_kind=True)
    small_manager, small_owner = account_with_owner(manager_kind=True)
    make_managed_accounts(manager, 3000)
    make_managed_accounts(small_manager, 5)
    client, small_client = Client(), Client()
    client.force_login(owner)
    small_client.force_login(small_owner)
    url = reverse("managed_list", args=[manager.public_id])
    small_queries, _, _ = _measure(small_client, reverse("managed_list", args=[small_manager.public_id]), {})

    print(f"\nManaged-accounts list, 3,000 managed accounts, {connection.vendor}, {REQUESTS} requests each")
    print(f"{'view':36} {'queries':>7} {'median ms':>10} {'p95 ms':>8}")
    for label, params in QUERIES.items():
        count, median, p95 = _measure(client, url, params)
        print(f"{label:36} {count:7d} {median:10.1f} {p95:8.1f}")
        assert count == small_queries, f"{label}: {count} queries with 3,000 accounts, {small_queries} with 5"
        assert p95 < 200, f"{label}: p95 {p95:.1f} ms"
    print(f"(same page with 5 managed accounts: {small_queries} queries)")
