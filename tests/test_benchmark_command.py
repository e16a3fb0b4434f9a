"""`manage.py benchmark` end to end on a tiny workload (PostgreSQL + Redis): it builds the workload,
closes its month through a real Celery worker, times the pages, streams a CSV from a real gunicorn,
ingests through the API, writes its JSON; a second run reuses the workload and closes the month
again from scratch. The figures' values are the machine's; what is asserted is that each was
measured over the right thing."""

import json

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from accounts.models import Account
from billing.ledger.selectors import ledger_sum
from billing.models import Balance, Invoice, InvoiceSequence, LedgerEntry, UsageRecord

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TINY = {
    "managed": 5,
    "records": 2000,
    "month": "2025-01",
    "ingest_records": 10_000,
    "requests": 3,
    "csv_rows": 500,
    "web_workers": 1,
    "clients": 1,
    "worker_concurrency": 1,
}


@pytest.fixture
def catalogue():
    """Transactional tests flush the catalogue the data migration loaded."""
    import importlib

    from django.apps import apps

    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)


def run(tmp_path, name: str) -> dict:
    path = tmp_path / name
    call_command("benchmark", **TINY, json=str(path))
    return json.loads(path.read_text())


def test_the_benchmark_runs_end_to_end_and_again(catalogue, tmp_path, capsys):
    if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("the benchmark needs PostgreSQL and Redis (DATABASE_URL, CELERY_BROKER_URL)")
    first = run(tmp_path, "first.json")
    figures = {f["name"]: f for f in first["figures"]}

    assert first["workload"] == {
        "manager": "Benchmark Reseller 5 x 2000 2025-01",
        "managed_accounts": 5,
        "records": 2000,
        "month": "2025-01",
        "products": 10,
    }
    assert {"cpu_cores", "ram_gb", "postgresql", "redis", "date"} <= first["machine"].keys()
    close = figures["monthly close through a Celery worker (Redis)"]
    # 5 managed accounts: 3 roll-up (on the manager's invoice) and 2 separate; 3 resale invoices.
    assert close["extra"] == {"platform_invoices": 3, "resale_invoices": 3, "billed_parties": 3}
    assert close["value"] > 0 and close["target"] == "< 60"
    assert figures["close / bare GROUP BY"]["value"] > 0
    pages = [f for f in first["figures"] if f["name"].startswith("p95 server time")]
    assert len(pages) == 5
    assert all(f["value"] > 0 and f["extra"]["queries"] > 0 and f["extra"]["requests"] == 3 for f in pages)
    csv = figures["peak extra memory streaming the records CSV export"]
    assert csv["extra"]["rows"] >= 500 and csv["value"] is not None
    ingest = figures["ingest throughput, POST /v2/usage_records in batches of 5,000"]
    assert ingest["extra"]["records"] == 10_000 and ingest["extra"]["batches"] == 2
    assert ingest["value"] > 0 and ingest["target"] == ">= 20000"
    assert figures["re-sent batches (all duplicates)"]["value"] > 0
    manager = Account.objects.get(name="Benchmark Reseller 5 x 2000 2025-01")
    posted = 10_000 + ingest["extra"]["warm_up_records"]
    assert UsageRecord.objects.filter(account__manager=manager).count() == 2000 + posted
    out = capsys.readouterr().out
    assert "monthly close through a Celery worker" in out and "JSON in" in out

    numbers = set(Invoice.objects.filter(issuer__isnull=True).values_list("number", flat=True))
    charges = LedgerEntry.objects.filter(kind="usage_charge", period="2025-01-01").count()
    second = run(tmp_path, "second.json")
    again = {f["name"]: f for f in second["figures"]}
    assert "scale-data build of the workload" in figures and "scale-data build of the workload" not in again
    assert again["monthly close through a Celery worker (Redis)"]["extra"] == close["extra"]
    # The close was undone and done again: same invoices, same numbers, no charge posted twice.
    assert set(Invoice.objects.filter(issuer__isnull=True).values_list("number", flat=True)) == numbers
    assert LedgerEntry.objects.filter(kind="usage_charge", period="2025-01-01").count() == charges
    assert InvoiceSequence.objects.get(issuer_key="platform").last_number == 3
    assert UsageRecord.objects.filter(account__manager=manager).count() == 2000 + 2 * posted
    # Every cached balance still equals the sum of its ledger entries after the undo and the catch-up charges.
    for balance in Balance.objects.filter(account__in=[manager, *manager.managed_accounts.all()]):
        assert balance.amount == ledger_sum(balance.account)
