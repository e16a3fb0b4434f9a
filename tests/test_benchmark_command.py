"""`manage.py benchmark` end to end on a tiny workload (PostgreSQL + Redis): it builds the workload,
closes its month through a real Celery worker, times the pages, streams a CSV from a real gunicorn,
ingests through the API with a Celery worker charging the usage, measures each figure's floor in
the same run (a COPY of the same rows, the close's rows written in SQL, the login page, COPY TO
STDOUT), writes its JSON; a second run reuses the workload and closes the month again from
scratch. The figures' values are the machine's; what is asserted is that each was measured over the
right thing, against its floor."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from accounts.models import Account
from billing.ledger.selectors import ledger_sum
from billing.models import Balance, Invoice, InvoiceSequence, LedgerEntry, MonthlyUsage, UsageRecord
from billing.money import to_cents

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
    assert {k: close["extra"][k] for k in ("platform_invoices", "resale_invoices", "billed_parties")} == {
        "platform_invoices": 3,
        "resale_invoices": 3,
        "billed_parties": 3,
    }
    # The close's floor wrote as many rows as the close: its invoices, their lines, its usage charges.
    rows = close["extra"]["rows"]
    assert rows["invoices"] == 6 and rows["platform_lines"] > 0 and rows["resale_lines"] > 0
    assert rows["usage_charges"] == 5
    floor = figures["close's floor: that GROUP BY + the close's rows written in SQL (rolled back)"]
    assert 0 < floor["value"] == close["floor"] and close["ratio"] == close["value"] / floor["value"]
    assert close["target"] == "<= 2" and close["passed"] is (close["ratio"] <= 2)
    assert figures["close's input: one GROUP BY over the month's monthly totals"]["value"] > 0
    assert figures["bare SQL GROUP BY account, product over the month's raw records"]["value"] > 0

    # Every page against the login page's p95, measured in the same run; the login page has no floor.
    pages = [f for f in first["figures"] if f["name"].startswith("p95 server time")]
    login = figures["p95 server time: login page, anonymous (the floor of a page)"]
    assert login["floor"] is None and login["value"] > 0
    judged = [f for f in pages if f is not login]
    labels = {f["name"].removeprefix("p95 server time: ") for f in judged}
    assert {"manager's overview (dashboard)", "spend limits of the managed accounts", "webhook delivery log"} <= labels
    assert {
        f"managed account hub (the busiest): {tab}" for tab in ("overview", "usage", "audit", "spend limits")
    } <= labels
    assert len(judged) == 17
    assert all(f["value"] > 0 and f["extra"]["requests"] == 3 for f in pages)
    assert all(f["extra"]["queries"] > 0 for f in judged)  # the anonymous login page may need none
    assert all(f["floor"] == login["value"] and f["target"] == "<= 5" for f in judged)

    csv = figures["peak extra memory streaming the records CSV export"]
    assert csv["extra"]["rows"] >= 500 and csv["value"] is not None and csv["target"] == "< 30"
    export = figures["CSV export of the records, streamed from gunicorn"]
    assert export["extra"]["rows"] == csv["extra"]["rows"] and export["floor"] > 0 and export["target"] == ">= 0.5"

    ingest = figures["ingest end to end: stored, in totals, charged (worker running)"]
    assert ingest["extra"]["records"] == 10_000 and ingest["extra"]["batches"] == 2
    assert ingest["value"] > 0 and ingest["target"] == ">= 0.6"
    assert ingest["extra"]["end_to_end_seconds"] >= ingest["extra"]["accepted_seconds"] > 0
    with_keys = figures["floor: COPY of the same rows, same indexes and foreign keys"]
    assert ingest["floor"] == with_keys["value"] > 0
    assert figures["floor: COPY of the same rows, same indexes, no foreign keys"]["value"] > 0
    accepted = figures["ingest, accepted only: POST /v2/usage_records in batches of 5,000"]
    assert accepted["value"] >= ingest["value"] and accepted["target"] == ""
    assert figures["re-sent batches (all duplicates)"]["value"] > 0
    # The scratch tables of the floors are gone.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'bench_%%'")
        assert cursor.fetchone() == (0,)
    manager = Account.objects.get(name="Benchmark Reseller 5 x 2000 2025-01")
    posted = 10_000 + ingest["extra"]["warm_up_records"]
    assert UsageRecord.objects.filter(account__manager=manager).count() == 2000 + posted
    out = capsys.readouterr().out
    assert "monthly close through a Celery worker" in out and "JSON in" in out
    assert "x GROUP BY + the same rows in SQL)" in out and "load average" in out

    numbers = set(Invoice.objects.filter(issuer__isnull=True).values_list("number", flat=True))
    charges = LedgerEntry.objects.filter(kind="usage_charge", period="2025-01-01").count()
    second = run(tmp_path, "second.json")
    again = {f["name"]: f for f in second["figures"]}
    build = "scale-data build of Benchmark Reseller 5 x 2000 2025-01"
    assert build in figures and build not in again
    assert again["monthly close through a Celery worker (Redis)"]["extra"] == close["extra"]
    # The close was undone and done again: same invoices, same numbers, no charge posted twice.
    assert set(Invoice.objects.filter(issuer__isnull=True).values_list("number", flat=True)) == numbers
    assert LedgerEntry.objects.filter(kind="usage_charge", period="2025-01-01").count() == charges
    assert InvoiceSequence.objects.get(issuer_key="platform").last_number == 3
    assert UsageRecord.objects.filter(account__manager=manager).count() == 2000 + 2 * posted
    # Every accepted record was charged by the worker during the run: the ledger holds the month to date.
    this_month = datetime.now(UTC).date().replace(day=1)
    for account in manager.managed_accounts.all():
        costs = MonthlyUsage.objects.filter(account=account, month=this_month).values_list("cost", flat=True)
        due = to_cents(sum(costs, Decimal(0)))
        charged = LedgerEntry.objects.filter(related_account=account, kind="usage_charge", period=this_month)
        assert -sum(charged.values_list("amount", flat=True)) == due
    # Every cached balance still equals the sum of its ledger entries after the undo and the charges.
    for balance in Balance.objects.filter(account__in=[manager, *manager.managed_accounts.all()]):
        assert balance.amount == ledger_sum(balance.account)
