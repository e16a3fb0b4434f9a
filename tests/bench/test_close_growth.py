"""`manage.py benchmark --growth` (issue 16 item 3) on a tiny workload: the close measured at three
sizes, each in a month of its own and against its floor measured in the same run: a tenth of the
records, the records, and five managers' accounts sharing the records. What is asserted is that
each point measured the close of the right parties and rows; the growth verdicts are the machine's.

Run with `./dev bench -k growth` and DATABASE_URL (PostgreSQL), CELERY_BROKER_URL (Redis). The
reference sizes (3,000 accounts, 1,000,000 vs 10,000,000 records, 15,000 accounts) are
`manage.py benchmark --growth` with its defaults (BENCHMARKS.md)."""

import importlib
import json

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_the_growth_mode_closes_three_sizes_against_their_floors(tmp_path):
    if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("the benchmark needs PostgreSQL and Redis (DATABASE_URL, CELERY_BROKER_URL)")
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)  # flushed by transactional tests
    path = tmp_path / "growth.json"
    call_command(
        "benchmark",
        growth=True,
        managed=4,
        records=2000,
        month="2025-03",
        worker_concurrency=1,
        json=str(path),
    )
    report = json.loads(path.read_text())
    rows = {row["point"]: row for row in report["growth"]}
    assert [(r["month"], r["managers"], r["managed_accounts"], r["records"]) for r in rows.values()] == [
        ("2025-02", 1, 4, 200),
        ("2025-03", 1, 4, 2000),
        ("2025-01", 5, 20, 2000),
    ]
    # 4 managed accounts: 2 roll-up on their manager's invoice, 2 billed alone; the manager.
    assert [r["billed_parties"] for r in rows.values()] == [3, 3, 15]
    for row in rows.values():
        assert row["close_seconds"] > 0 and row["floor_seconds"] > 0
        assert row["ratio"] == row["close_seconds"] / row["floor_seconds"]
        written = row["rows_written"]
        assert written["invoices"] == row["billed_parties"] + 2 * row["managers"]  # platform + resale
        assert written["usage_charges"] == row["managed_accounts"]
    figures = {f["name"]: f for f in report["figures"]}
    records = figures["close at 10x the raw records / close at 1x (same accounts)"]
    assert records["target"] == "<= 1.2" and records["value"] > 0
    parties = figures["close at 5.0x the billed parties, per party / at 1x"]
    assert parties["target"] == "<= 1" and parties["value"] > 0
