"""The benchmark of issue 6: the reference workload measured in one run (`manage.py benchmark`).

Each measurement returns `Figure`s (a value against its target); the command prints them as a
table and writes them, with the machine's facts, to JSON. Real processes where the promise is
about them: a gunicorn server (production settings from the environment) for ingestion and the CSV
export's memory, a Celery worker on Redis for the monthly close. Page timings are in-process
(Django's test client and CaptureQueriesContext, as tests/bench does): server time, no network.

The workload is found again by its manager's name, so a second run reuses it and measures again:
the close of its month is undone first (its invoices, close run, usage-charge ledger entries and
the invoice numbers they took), so every run closes the month from scratch.

It lives beside the slow scale benchmarks (tests/bench), outside the installed package; its entry
point is portal/management/commands/benchmark.py, which needs a source checkout.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlencode

import django
import psycopg
import redis
from celery.exceptions import AlwaysEagerIgnored
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection, transaction
from django.db.models import Model, Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from psycopg import ClientCursor

from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from accounts.permissions import can_see_pricing
from accounts.services import create_api_key
from billing.invoices import builder
from billing.invoices import close as invoice_close
from billing.invoices import services as invoice_services
from billing.ledger import services as ledger
from billing.models import (
    CloseItem,
    DailyUsage,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    MonthlyUsage,
    Product,
    UsageBatch,
    UsageRecord,
)
from billing.scale import build_workload, month_days
from billing.usage.selectors import usage_records
from controls.models import SpendLimit
from portal.celery import app as celery_app
from reporting import exports
from reporting.forms import UsageFilterForm
from webhooks.events import EventType
from webhooks.models import WebhookDelivery, WebhookEndpoint

BASE_DIR = Path(settings.BASE_DIR)
BIN = Path(sys.executable).parent
INGEST_BATCH = 5_000
WARM_UP = 200  # records posted (and stored) before the timed batches

Say = Callable[[str], None]


@dataclass
class Options:
    managed: int = 3_000
    records: int = 10_000_000
    month: date | None = None
    ingest_records: int = 200_000
    requests: int = 50
    csv_rows: int = 1_000_000
    web_workers: int = 2
    clients: int = 2
    worker_concurrency: int = 2
    seed: int = 7


@dataclass
class Figure:
    """A measured value and, where it has one, its floor: the same work done the cheapest way the
    machine allows, measured in the same run (a COPY of the same rows, the same rows written in SQL,
    an anonymous login page). With a floor, the target is on the ratio value / floor (for a rate,
    the share of the floor's rate; for a time, how many times the floor's); without, on the value."""

    name: str
    value: float | None
    unit: str
    target: str = ""  # ">= 0.6", "<= 2", "< 30"; empty: shown, not judged
    detail: str = ""
    extra: dict = field(default_factory=dict)
    floor: float | None = None  # in `unit`
    floor_name: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.floor:
            return None
        return self.value / self.floor

    @property
    def passed(self) -> bool | None:
        judged = self.ratio if self.floor is not None else self.value
        if judged is None or not self.target:
            return None
        operator, _, bound = self.target.partition(" ")
        limit = float(bound)
        return {">=": judged >= limit, "<": judged < limit, "<=": judged <= limit}[operator]

    def as_json(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "passed": self.passed}


# --- Preconditions and facts ---------------------------------------------------------------------------


def check_services() -> None:
    if settings.MC_ENV == "production":
        raise RuntimeError(
            "The benchmark closes its month, undoes the close and closes it again: run it on a benchmark "
            "database, never with MC_ENV=production."
        )
    if connection.vendor != "postgresql":
        raise RuntimeError("The benchmark runs on PostgreSQL: set DATABASE_URL=postgres://...")
    if not str(settings.CELERY_BROKER_URL).startswith(("redis://", "rediss://")):
        raise RuntimeError("The benchmark runs its Celery worker on Redis: set CELERY_BROKER_URL=redis://...")


def machine_facts() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (pg_version,) = cursor.fetchone()
    redis_version = redis.Redis.from_url(settings.CELERY_BROKER_URL).info("server")["redis_version"]
    with open("/proc/meminfo") as meminfo:
        ram_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gb": round(ram_kb / 1024 / 1024, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "postgresql": pg_version,
        "redis": redis_version,
        "python": platform.python_version(),
        "django": django.get_version(),
        "kernel": platform.release(),
        "git_commit": _git_commit(),
        "debug": settings.DEBUG,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def _git_commit() -> str:
    try:
        command = ["git", "rev-parse", "--short", "HEAD"]
        done = subprocess.run(command, cwd=BASE_DIR, capture_output=True, text=True, timeout=5)  # noqa: S603
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# --- The workload ----------------------------------------------------------------------------------------


def workload_name(managed: int, records: int, month: date, part: str = "") -> str:
    return f"Benchmark Reseller {managed} x {records} {month:%Y-%m}{part}"


def tree_ids(manager: Account) -> list[int]:
    return [manager.pk, *manager.managed_accounts.order_by("pk").values_list("pk", flat=True)]


def find_or_build_workload(options: Options, month: date, say: Say) -> tuple[Account, list[Figure]]:
    """The benchmark's manager for this size and month, built when it does not exist yet. The month
    must hold nothing else: the close invoices every billed party of a month."""
    managers, figures = find_or_build_group(
        managers=1, managed=options.managed, records=options.records, month=month, seed=options.seed, say=say
    )
    return managers[0], figures


def find_or_build_group(
    *, managers: int, managed: int, records: int, month: date, seed: int, say: Say
) -> tuple[list[Account], list[Figure]]:
    """`managers` benchmark managers of `managed` managed accounts and `records` records each in
    `month` (one: the reference workload; five: the growth mode's 15,000 accounts), built when they
    do not exist yet. The month must hold nothing else: the close invoices every billed party."""
    found, figures = [], []
    for n in range(managers):
        part = f" ({n + 1} of {managers})" if managers > 1 else ""
        name = workload_name(managed, records, month, part)
        manager = Account.objects.filter(kind=Account.Kind.MANAGER, name=name).first()
        if manager is None:
            say(f"Building {name}: {managed:,} managed accounts, {records:,} records in {month:%Y-%m}")
            began = time.perf_counter()
            workload = build_workload(
                managed=managed, records=records, month=month, seed=seed + n, name=name, progress=say
            )
            manager = workload.manager
            figures.append(Figure(f"scale-data build of {name}", time.perf_counter() - began, "s"))
        else:
            say(f"Reusing the workload of {name}")
        ids = tree_ids(manager)
        stored = MonthlyUsage.objects.filter(account_id__in=ids, month=month).aggregate(n=Sum("records"))["n"] or 0
        if len(ids) - 1 != managed or stored != records:
            raise RuntimeError(
                f"{name} holds {len(ids) - 1:,} managed accounts and {stored:,} records in {month:%Y-%m}, "
                "not what its name says (an interrupted build?). Benchmark another --month or use a fresh database."
            )
        found.append(manager)
    ids = {pk for manager in found for pk in tree_ids(manager)}
    others = set(builder.billed_parties(month).values_list("pk", flat=True)) - ids
    if others:
        raise RuntimeError(
            f"{month:%Y-%m} has {len(others)} billed part(ies) besides the benchmark's: its close would invoice "
            "them too. Benchmark another --month or use a database of its own."
        )
    return found, figures


def busiest_managed(manager: Account, month: date) -> Account:
    top = (
        MonthlyUsage.objects.filter(account__manager=manager, month=month)
        .values("account_id")
        .annotate(n=Sum("records"))
        .order_by("-n", "account_id")
        .first()
    )
    if top is None:
        return manager.managed_accounts.order_by("pk").first()
    return Account.objects.get(pk=top["account_id"])


# --- The bare GROUP BY and the monthly close -----------------------------------------------------------


def month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    return start, start + timedelta(days=month_days(month))


def bare_group_by(month: date, runs: int = 3) -> Figure:
    """The raw records of the month summed per account and product: what the close would cost if
    it read the records instead of the monthly totals. The median of `runs` runs."""
    table = connection.ops.quote_name(UsageRecord._meta.db_table)
    timings, groups = [], 0
    with connection.cursor() as cursor:
        for _ in range(runs):
            began = time.perf_counter()
            cursor.execute(
                f"SELECT account_id, product_id, sum(quantity), sum(cost) FROM {table} "  # noqa: S608
                "WHERE started_at >= %s AND started_at < %s GROUP BY 1, 2",
                list(month_bounds(month)),
            )
            groups = len(cursor.fetchall())
            timings.append(time.perf_counter() - began)
    return Figure(
        "bare SQL GROUP BY account, product over the month's raw records",
        statistics.median(timings),
        "s",
        detail=f"{groups:,} groups; median of {runs} runs ({', '.join(f'{t:.2f}' for t in timings)} s)",
    )


def reset_close(ids: list[int], month: date) -> dict[str, int]:
    """Undo the close of `month` for the benchmark's own accounts, so the next close does all the
    work again, through the invoices' and the ledger's own services (benchmark databases only):
    its invoices (platform and resale) with their lines, the month's close run and the invoice
    numbers they took when they are the latest of their sequence; the usage-charge ledger entries
    of the month, with their effect on the cached balances."""
    with transaction.atomic():
        invoices = invoice_services.discard_close(month=month, account_ids=ids)
        charges = ledger.discard_usage_charges(accounts=list(Account.objects.filter(pk__in=ids)), month=month)
    return {"invoices": invoices, "usage charges": charges}


@contextmanager
def celery_worker(*, concurrency: int, log: Path) -> Iterator[str]:
    """A real `celery -A portal worker` process on the configured broker; yields its node name once it answers."""
    node = f"benchmark-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    command = [str(BIN / "celery"), "-A", "portal", "worker", "--loglevel=WARNING", f"--concurrency={concurrency}",
               "--without-gossip", "--without-mingle", "-n", node]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=server_environment(), stdout=output, stderr=output)  # noqa: S603
    try:
        deadline = time.monotonic() + 90
        while not celery_app.control.ping(destination=[node], timeout=1.0):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start; see {log}")
        yield node
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def monthly_close(managers: list[Account], month: date, options: Options, say: Say, log_dir: Path) -> Figure:
    """The close of the month through a real Celery worker: the `close_month` task (what beat sends
    on the 1st) fans out one task per batch of billed parties; timed from sending it until the close
    run reports every party done."""
    ids = [pk for manager in managers for pk in tree_ids(manager)]
    undone = reset_close(ids, month)
    say(f"Close of {month:%Y-%m} undone for a fresh run ({undone})")
    stale = celery_app.control.purge()
    with celery_worker(concurrency=options.worker_concurrency, log=log_dir / "benchmark-celery.log"):
        say(f"Celery worker up (concurrency {options.worker_concurrency}); closing {month:%Y-%m}")
        began = time.perf_counter()
        with warnings.catch_warnings():  # under the test settings tasks run eagerly; this one must not
            warnings.simplefilter("ignore", AlwaysEagerIgnored)
            celery_app.send_task("billing.tasks.close_month", args=[month.isoformat()])
        progress = _wait_for_close(month, timeout=3600)
        elapsed = time.perf_counter() - began
    invoices = Invoice.objects.filter(period=month, bill_to__in=ids)
    platform = invoices.filter(issuer__isnull=True).count()
    resale = invoices.filter(issuer__isnull=False).count()
    parties = builder.billed_parties(month).count()
    if platform != parties:
        raise RuntimeError(f"the close did not invoice every billed party once: {progress}, {platform} of {parties}")
    written = close_rows(ids, month)
    return Figure(
        "monthly close through a Celery worker (Redis)",
        elapsed,
        "s",
        "<= 2",
        detail=(
            f"{platform:,} platform and {resale:,} resale invoices, {written['platform_lines']:,} + "
            f"{written['resale_lines']:,} lines, {written['usage_charges']:,} usage charges; "
            f"{stale} stale message(s) purged first"
        ),
        extra={"platform_invoices": platform, "resale_invoices": resale, "billed_parties": parties, "rows": written},
    )


def close_rows(ids: list[int], month: date) -> dict[str, int]:
    """What the close of `month` wrote for these accounts: invoices, their lines, usage charges."""
    invoices = Invoice.objects.filter(period=month, bill_to__in=ids)
    lines = InvoiceLine.objects.filter(invoice__in=invoices)
    return {
        "invoices": invoices.count(),
        "platform_lines": lines.filter(invoice__issuer__isnull=True).count(),
        "resale_lines": lines.filter(invoice__issuer__isnull=False).count(),
        "usage_charges": LedgerEntry.objects.filter(
            kind=LedgerEntry.Kind.USAGE_CHARGE, period=month, account_id__in=ids
        ).count(),
    }


@contextmanager
def scratch_table(cursor, model: type[Model], name: str, *, keys: bool = True) -> Iterator[str]:
    """A table shaped like `model`'s (columns, defaults, indexes, constraints: LIKE ... INCLUDING
    ALL) and, with `keys`, the same foreign keys, pointing at the same tables; dropped afterwards."""
    table = model._meta.db_table
    scratch = connection.ops.quote_name(name)
    cursor.execute(f"DROP TABLE IF EXISTS {scratch}")
    cursor.execute(f"CREATE TABLE {scratch} (LIKE {connection.ops.quote_name(table)} INCLUDING ALL)")
    if keys:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f' "
            "ORDER BY conname",
            [table],
        )
        for n, (definition,) in enumerate(cursor.fetchall()):
            cursor.execute(
                f"ALTER TABLE {scratch} ADD CONSTRAINT {connection.ops.quote_name(f'{name}_fk{n}')} {definition}"
            )
    yield scratch  # on an error, left for the next run's DROP (or the transaction's rollback)
    cursor.execute(f"DROP TABLE IF EXISTS {scratch}")


def close_floor(ids: list[int], month: date, runs: int = 3) -> tuple[Figure, Figure]:
    """The close's floor, in one transaction that is rolled back: its input read with one GROUP BY
    over the month's monthly totals (per account and product, what the invoices' lines come from),
    then the very rows the real close wrote (its invoices, their platform and reseller lines, its
    usage-charge ledger entries) written again with INSERT ... SELECT into tables of the same shape,
    indexes and foreign keys. Returns (read, read + write), medians of `runs` runs."""
    monthly = connection.ops.quote_name(MonthlyUsage._meta.db_table)
    reads, totals, groups = [], [], 0
    for _ in range(runs):
        with transaction.atomic():
            with (
                connection.cursor() as cursor,
                scratch_table(cursor, Invoice, "bench_floor_invoice") as invoices,
                scratch_table(cursor, InvoiceLine, "bench_floor_invoiceline") as lines,
                scratch_table(cursor, LedgerEntry, "bench_floor_ledgerentry") as ledger_entries,
            ):
                began = time.perf_counter()
                cursor.execute(
                    "CREATE TEMPORARY TABLE bench_floor_usage ON COMMIT DROP AS "  # noqa: S608
                    f"SELECT account_id, product_id, sum(quantity) AS quantity, sum(cost) AS cost FROM {monthly} "
                    "WHERE month = %s AND account_id = ANY(%s) GROUP BY 1, 2",
                    [month, ids],
                )
                groups = cursor.rowcount
                read = time.perf_counter() - began
                real = {m: connection.ops.quote_name(m._meta.db_table) for m in (Invoice, InvoiceLine, LedgerEntry)}
                cursor.execute(
                    f"INSERT INTO {invoices} SELECT * FROM {real[Invoice]} WHERE period = %s AND bill_to_id = ANY(%s)",  # noqa: S608
                    [month, ids],
                )
                cursor.execute(
                    f"INSERT INTO {lines} SELECT l.* FROM {real[InvoiceLine]} l JOIN {real[Invoice]} i "  # noqa: S608
                    "ON i.id = l.invoice_id WHERE i.period = %s AND i.bill_to_id = ANY(%s)",
                    [month, ids],
                )
                cursor.execute(
                    f"INSERT INTO {ledger_entries} SELECT * FROM {real[LedgerEntry]} "  # noqa: S608
                    "WHERE kind = %s AND period = %s AND account_id = ANY(%s)",
                    [LedgerEntry.Kind.USAGE_CHARGE, month, ids],
                )
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred foreign keys checked, as at commit
                total = time.perf_counter() - began
            transaction.set_rollback(True)  # nothing of the floor stays
        reads.append(read)
        totals.append(total)
    read_figure = Figure(
        "close's input: one GROUP BY over the month's monthly totals",
        statistics.median(reads),
        "s",
        detail=f"{groups:,} groups; median of {runs}",
    )
    write_figure = Figure(
        "close's floor: that GROUP BY + the close's rows written in SQL (rolled back)",
        statistics.median(totals),
        "s",
        detail=f"invoices, lines, usage charges: the same rows, same indexes and keys; median of {runs} "
        f"({', '.join(f'{t:.2f}' for t in totals)} s)",
    )
    return read_figure, write_figure


def _wait_for_close(month: date, *, timeout: float, stuck_after: float = 60) -> dict[str, int]:
    """Until the close run reports every party done. Failed parties are retried by their tasks; a
    close that makes no progress for `stuck_after` seconds while some have failed is reported."""
    deadline = time.monotonic() + timeout
    last, changed = None, time.monotonic()
    while time.monotonic() < deadline:
        progress = invoice_close.close_progress(month)
        if progress["total"] and progress["done"] == progress["total"]:
            return progress
        if progress != last:
            last, changed = progress, time.monotonic()
        elif progress["failed"] and time.monotonic() - changed > stuck_after:
            errors = CloseItem.objects.filter(run__period=month, status=CloseItem.Status.FAILED)
            raise RuntimeError(f"the close is stuck at {progress}: {errors.values_list('error', flat=True).first()}")
        time.sleep(0.05)
    raise RuntimeError(f"the close of {month:%Y-%m} did not finish within {timeout:.0f} s")


# --- Pages ---------------------------------------------------------------------------------------------------


HUB_TABS = (  # a managed account's hub (accounts.managed_hub): URL name, label
    ("managed_detail", "overview"),
    ("managed_usage", "usage"),
    ("managed_invoices", "invoices"),
    ("managed_balance", "balance and transfers"),
    ("managed_api_keys", "API keys"),
    ("managed_members", "members"),
    ("controls_managed_limit", "spend limits"),
    ("managed_audit", "audit"),
    ("managed_settings", "settings"),
)


def page_figures(manager: Account, month: date, options: Options) -> list[Figure]:
    """Server time (median and p95) and query count of the benchmarked pages, in-process, each
    against the floor of a page: an anonymous GET of the login page through the same test client."""
    owner = manager.memberships.get(role="owner").user
    client = Client()
    client.force_login(owner)
    _, key = create_api_key(account=manager, name=f"benchmark {uuid.uuid4().hex[:6]}", actor=Actor(user=owner))
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    start, end = month, month + timedelta(days=month_days(month) - 1)
    period = {"start": start.isoformat(), "end": end.isoformat()}
    busiest = busiest_managed(manager, month)
    invoice = Invoice.objects.get(bill_to=manager, period=month, issuer__isnull=True)
    endpoint = webhook_log(manager, owner)
    spend_limits(manager)
    login = _page_figure(
        "login page, anonymous (the floor of a page)", Client(), reverse("account_login"), {}, options.requests
    )
    hub = [manager.public_id, busiest.public_id]
    cases = [
        ("manager's overview (dashboard)", client, reverse("dashboard", args=[manager.public_id]), {}),
        ("managed accounts list", client, reverse("managed_list", args=[manager.public_id]), {}),
        ("spend limits of the managed accounts", client, reverse("controls_limits", args=[manager.public_id]), {}),
        (
            "usage report, one managed account (the busiest), by day",
            client,
            reverse("usage_report", args=[manager.public_id]),
            {**period, "scope": str(busiest.public_id), "group_by": "day"},
        ),
        (
            "usage report, all managed accounts, by account",
            client,
            reverse("usage_report", args=[manager.public_id]),
            {**period, "scope": "all", "group_by": "account"},
        ),
        (
            "invoice page, the manager's roll-up invoice",
            client,
            reverse("invoice_detail", args=[manager.public_id, invoice.public_id]),
            {},
        ),
        *(
            (f"managed account hub (the busiest): {label}", client, reverse(name, args=hub), {})
            for name, label in HUB_TABS
        ),
        (
            "webhook delivery log",
            client,
            reverse("webhooks_deliveries", args=[manager.public_id, endpoint.public_id]),
            {},
        ),
        ("GET /v2/managed_accounts?page[size]=250", api, "/v2/managed_accounts", {"page[size]": 250}),
    ]
    figures = [_page_figure(label, who, url, params, options.requests) for label, who, url, params in cases]
    for figure in figures:
        figure.floor, figure.floor_name, figure.target = login.value, "login page p95", f"<= {PAGE_RATIO}"
    return [login, *figures, _pdf_figure(client, manager, invoice)]


PAGE_RATIO = 5
WEBHOOK_LOG = 5_000  # deliveries in the benchmark's webhook log


def spend_limits(manager: Account) -> int:
    """A monthly limit on every managed account, set by the manager (made once, found again
    after): from $50 to $5,000, so the limits page has every account to rank. Written directly."""
    managed = list(
        manager.managed_accounts.filter(spend_limits__isnull=True).order_by("pk").values_list("pk", flat=True)
    )
    SpendLimit.objects.bulk_create(
        SpendLimit(
            account_id=pk,
            set_by=SpendLimit.SetBy.MANAGER,
            monthly_amount=Decimal(50 * (1 + n % 100)),
            daily_amount=Decimal(10 * (1 + n % 10)) if n % 3 == 0 else None,
        )
        for n, pk in enumerate(managed)
    )
    return len(managed)


def webhook_log(manager: Account, owner) -> WebhookEndpoint:
    """The benchmark's webhook endpoint of the manager, with a delivery log of up to WEBHOOK_LOG
    delivered events of its managed accounts (made once, found again after): what a manager with
    an endpoint for every managed account's events sees. Written directly: nothing is sent."""
    endpoint = WebhookEndpoint.objects.filter(account=manager, description="benchmark").first()
    if endpoint is not None:
        return endpoint
    endpoint = WebhookEndpoint.objects.create(
        account=manager,
        url="https://hooks.benchmark.invalid/mission-control",
        description="benchmark",
        event_types=[EventType.MANAGED_ACCOUNT_CREATED.value],
        include_managed_accounts=True,
        secret="",
    )
    events = AuditEvent.objects.filter(account__in=[manager, *manager.managed_accounts.all()]).order_by("pk")
    now = datetime.now(UTC)
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint=endpoint,
            event=event,
            event_type=EventType.MANAGED_ACCOUNT_CREATED.value,
            data={"id": str(event.account_id)},
            status=WebhookDelivery.Status.DELIVERED,
            attempts=1,
            last_attempt_at=now,
            response_code=200,
        )
        for event in events[:WEBHOOK_LOG]
    )
    return endpoint


def _pdf_figure(client: Client, manager: Account, invoice: Invoice) -> Figure:
    """The manager's roll-up invoice as a PDF, every section in one document (shown, not judged)."""
    url = reverse("invoice_pdf", args=[manager.public_id, invoice.public_id])
    began = time.perf_counter()
    response = _get(client, url, {})
    seconds = time.perf_counter() - began
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", response.content))
    return Figure(
        "PDF of the manager's roll-up invoice (all sections)",
        seconds,
        "s",
        detail=f"{len(response.content) // 1024} KB, about {pages} pages, {invoice.lines.count():,} lines",
        extra={"bytes": len(response.content), "lines": invoice.lines.count()},
    )


def _page_figure(label: str, client: Client, url: str, params: dict, requests: int) -> Figure:
    _get(client, url, params)  # warm caches (templates, session, plans)
    timings = []
    for _ in range(requests):
        began = time.perf_counter()
        response = _get(client, url, params)
        timings.append((time.perf_counter() - began) * 1000)
    with CaptureQueriesContext(connection) as queries:
        _get(client, url, params)
    p95 = statistics.quantiles(timings, n=20)[18] if len(timings) >= 2 else timings[0]
    median = statistics.median(timings)
    return Figure(
        f"p95 server time: {label}",
        p95,
        "ms",
        detail=f"median {median:.1f} ms, {len(queries)} queries, {len(response.content) // 1024} KB, {requests} runs",
        extra={"median_ms": median, "queries": len(queries), "requests": requests, "url": url, "params": params},
    )


def _get(client: Client, url: str, params: dict):
    response = client.get(url, params)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return response


# --- A real server ---------------------------------------------------------------------------------------


_SERVER_SECRET = secrets.token_urlsafe(60)


def database_url() -> str:
    """The URL of the database this process uses (the test database under pytest), for the
    processes it starts."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    return f"postgres://{auth}@{host}/{quote(db['NAME'], safe='')}"


_SERVER_MFA_KEY = Fernet.generate_key().decode()


def server_environment() -> dict[str, str]:
    """Production settings, from the environment only, as README's "Production run" sets them; plain
    HTTP on loopback (no TLS redirect) and a rate limit the benchmark does not reach."""
    broker = str(settings.CELERY_BROKER_URL)
    return {
        **os.environ,
        "MC_ENV": "production",
        "DEBUG": "false",
        "SECRET_KEY": _SERVER_SECRET,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Production needs an https SITE_URL for the links in e-mails; the benchmark sends none.
        "SITE_URL": os.environ.get("SITE_URL") or "https://portal.benchmark.invalid",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker,
        "CACHE_URL": os.environ.get("CACHE_URL") or broker,
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_HSTS_SECONDS": "0",
        "API_RATE_LIMIT_PER_MINUTE": "1000000",
        "LOG_LEVEL": "WARNING",
        # Production refuses to start without Stripe keys; nothing measured here calls Stripe.
        "STRIPE_SECRET_KEY": os.environ.get("STRIPE_SECRET_KEY") or "sk_test_benchmark_makes_no_stripe_calls",
        "STRIPE_PUBLISHABLE_KEY": os.environ.get("STRIPE_PUBLISHABLE_KEY") or "pk_test_benchmark",
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET") or "whsec_benchmark",
        # Production refuses the development MFA key; no one signs in with MFA during the benchmark.
        "MFA_ENCRYPTION_KEY": os.environ.get("MFA_ENCRYPTION_KEY") or _SERVER_MFA_KEY,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(*, workers: int, log: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """A gunicorn server on a free loopback port; yields (port, process) once it answers."""
    port = free_port()
    command = [str(BIN / "gunicorn"), "portal.wsgi", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
               "--timeout", "600", "--log-level", "warning"]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=server_environment(), stdout=output, stderr=output)  # noqa: S603
    try:
        _wait_for(port, process, log)
        yield port, process
    finally:
        _stop(process)


def _wait_for(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}; see {log}")
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            probe.request("GET", "/v2/balance")
            probe.getresponse().read()
            probe.close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s; see {log}")


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


# --- Ingest throughput ----------------------------------------------------------------------------------------


def ingest_window(now: datetime) -> tuple[datetime, datetime]:
    """The current month up to a minute ago: open for usage and never the benchmark's closed month."""
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    return start, max(now - timedelta(minutes=1), start + timedelta(seconds=1))


def ingest_bodies(
    *, accounts: list[str], skus: list[str], start: datetime, end: datetime, records: int, tag: str, seed: int = 11
) -> list[bytes]:
    """JSON bodies of INGEST_BATCH records each, for the manager's key: records spread over its
    managed accounts (a few busy ones, a long tail) and products, in time order over [start, end)
    as a live feed sends them (each batch covers the next slice of the window)."""
    rng = random.Random(seed)
    weights = [rng.paretovariate(1.2) for _ in accounts]
    step = (end - start) / max(records, 1)
    bodies = []
    for first in range(0, records, INGEST_BATCH):
        count = min(INGEST_BATCH, records - first)
        picks = rng.choices(accounts, weights=weights, k=count)
        rows = []
        for n, account in enumerate(picks, start=first):
            sku = rng.choice(skus)
            rows.append(
                {
                    "account": account,
                    "product": sku,
                    "quantity": str(rng.randint(1, 600)) if sku.startswith("voice") else "1",
                    "started_at": (start + step * n).isoformat().replace("+00:00", "Z"),
                    "idempotency_key": f"bench-{tag}-{n}",
                    "direction": "inbound" if "inbound" in sku else "outbound",
                    "country": "US",
                    "destination": f"+1{rng.randrange(2_000_000_000, 9_999_999_999)}",
                }
            )
        bodies.append(json.dumps({"records": rows}).encode())
    return bodies


def post_bodies(*, port: int, key: str, bodies: list[bytes], clients: int) -> tuple[float, list[dict]]:
    """POSTs every body to /v2/usage_records from `clients` keep-alive connections at once; returns
    the wall time and the responses' `data`."""
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    results: list[dict | None] = [None] * len(bodies)
    failures: list[str] = []

    def work() -> None:
        http_connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        while not failures:
            with lock:
                if not queue:
                    break
                index, body = queue.pop(0)
            http_connection.request("POST", "/v2/usage_records", body=body, headers=headers)
            response = http_connection.getresponse()
            payload = response.read()
            if response.status not in (200, 201):
                failures.append(f"{response.status}: {payload[:500]!r}")
                break
            results[index] = json.loads(payload)["data"]
        http_connection.close()

    threads = [threading.Thread(target=work) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"ingestion failed: {failures[0]}")
    return elapsed, [r for r in results if r is not None]


INGEST_RATIO = 0.6


def ingest_throughput(manager: Account, options: Options, say: Say, log_dir: Path) -> list[Figure]:
    """Batches of 5,000 records through POST /v2/usage_records to gunicorn, from `clients` connections
    at once, with a real Celery worker running (the usage-charge tasks each batch queues, the spend
    checks, webhooks), as in production. End to end: from the first POST until every accepted record
    is stored, in its totals and charged to the ledger. Then the same batches again (all duplicates).
    The floor: a COPY of the same rows into a table shaped like the usage records (same indexes,
    same foreign keys; and without the keys), from as many clients, a transaction per batch."""
    owner = manager.memberships.get(role="owner").user
    _, key = create_api_key(account=manager, name=f"benchmark {uuid.uuid4().hex[:6]}", actor=Actor(user=owner))
    ids = [str(p) for p in manager.managed_accounts.order_by("pk").values_list("public_id", flat=True)]
    skus = list(Product.objects.filter(active=True).order_by("sku").values_list("sku", flat=True))
    start, end = ingest_window(datetime.now(UTC))
    month = start.date()
    tag = uuid.uuid4().hex[:10]
    bodies = ingest_bodies(accounts=ids, skus=skus, start=start, end=end, records=options.ingest_records, tag=tag)
    warm_up = ingest_bodies(accounts=ids, skus=skus, start=start, end=end, records=WARM_UP, tag=f"{tag}-warm")
    say("The ingest's floor: COPY of the same rows into a same-shaped table, with and without its foreign keys")
    copy_keys = copy_floor(bodies, clients=options.clients, keys=True)
    copy_bare = copy_floor(bodies, clients=options.clients, keys=False)
    managed = list(manager.managed_accounts.values_list("pk", flat=True))
    stale = celery_app.control.purge()
    worker_log = log_dir / "benchmark-celery.log"
    with (
        gunicorn(workers=options.web_workers, log=log_dir / "benchmark-gunicorn.log") as (port, _),
        celery_worker(concurrency=options.worker_concurrency, log=worker_log),
    ):
        post_bodies(port=port, key=key, bodies=warm_up * options.clients, clients=options.clients)
        _wait_until_charged(managed, month, timeout=600)
        say(f"Posting {options.ingest_records:,} records in {len(bodies)} batches to gunicorn, a Celery worker running")
        began = time.perf_counter()
        accepted_seconds, results = post_bodies(port=port, key=key, bodies=bodies, clients=options.clients)
        _wait_until_charged(managed, month, timeout=3600)
        end_to_end = time.perf_counter() - began
        replayed, repeats = post_bodies(port=port, key=key, bodies=bodies, clients=options.clients)
    accepted = sum(r["accepted"] for r in results)
    duplicates = sum(r["duplicates"] for r in repeats)
    if accepted != options.ingest_records or duplicates != options.ingest_records:
        raise RuntimeError(f"sent {options.ingest_records:,}, accepted {accepted:,}, then {duplicates:,} duplicates")
    setup = f"gunicorn --workers {options.web_workers}, {options.clients} client connections"
    floor = accepted / copy_keys
    bare = accepted / copy_bare
    facts = {
        "records": accepted,
        "batches": len(bodies),
        "warm_up_records": WARM_UP,
        "accepted_seconds": accepted_seconds,
        "end_to_end_seconds": end_to_end,
        "copy_seconds_with_keys": copy_keys,
        "copy_seconds_without_keys": copy_bare,
        "stale_messages_purged": stale,
    }
    return [
        Figure(
            "floor: COPY of the same rows, same indexes and foreign keys",
            floor,
            "records/s",
            detail=f"{accepted:,} rows in {copy_keys:.1f} s; {options.clients} clients, a transaction per batch",
        ),
        Figure(
            "floor: COPY of the same rows, same indexes, no foreign keys",
            bare,
            "records/s",
            detail=f"{accepted:,} rows in {copy_bare:.1f} s",
        ),
        Figure(
            "ingest end to end: stored, in totals, charged (worker running)",
            accepted / end_to_end,
            "records/s",
            f">= {INGEST_RATIO}",
            detail=f"{accepted:,} records in {end_to_end:.1f} s, from the first POST until every usage charge is "
            f"posted; {setup}, Celery --concurrency {options.worker_concurrency}; "
            f"{accepted / end_to_end / bare:.2f}x the COPY without keys",
            extra=facts,
            floor=floor,
            floor_name="COPY with keys",
        ),
        Figure(
            "ingest, accepted only: POST /v2/usage_records in batches of 5,000",
            accepted / accepted_seconds,
            "records/s",
            detail=f"{accepted:,} records answered in {accepted_seconds:.1f} s (stored, rated, totals kept; "
            "charges still queued)",
            extra=facts,
            floor=floor,
            floor_name="COPY with keys",
        ),
        Figure(
            "re-sent batches (all duplicates)",
            duplicates / replayed,
            "records/s",
            detail=f"{duplicates:,} duplicates in {replayed:.1f} s; nothing stored twice",
        ),
    ]


_COPY_COLUMNS = (
    "account_id, product_id, quantity, started_at, idempotency_key, direction, country, destination, rate, cost, "
    "batch_id, created_at"
)


def copy_floor(bodies: list[bytes], *, clients: int, keys: bool) -> float:
    """Seconds to COPY the rows of `bodies` (their accounts and products resolved, a rate and cost
    each, a batch) into an empty table shaped like the usage records (LIKE ... INCLUDING ALL: the same
    unique key and indexes) with, when `keys`, the same foreign keys; from `clients` connections at
    once, each batch in a transaction of its own as ingestion commits them. The table is dropped."""
    accounts = dict(Account.objects.values_list("public_id", "pk"))
    products = dict(Product.objects.values_list("sku", "pk"))
    batch = UsageBatch.objects.order_by("pk").values_list("pk", flat=True).first()
    now = datetime.now(UTC)
    rate = Decimal("0.0045")
    batches = []
    for body in bodies:
        rows = []
        for r in json.loads(body)["records"]:
            quantity = Decimal(r["quantity"])
            rows.append(
                (accounts[uuid.UUID(r["account"])], products[r["product"]], quantity,
                 datetime.fromisoformat(r["started_at"]), r["idempotency_key"], r["direction"], r["country"],
                 r["destination"], rate, quantity * rate, batch, now)
            )  # fmt: skip
        batches.append(rows)
    name = "bench_copy_floor"
    with connection.cursor() as cursor, scratch_table(cursor, UsageRecord, name, keys=keys) as scratch:
        queue = list(batches)
        lock = threading.Lock()
        failures: list[BaseException] = []

        def work() -> None:
            try:
                with psycopg.connect(database_url()) as conn:
                    while True:
                        with lock:
                            if not queue:
                                return
                            rows = queue.pop(0)
                        with (
                            conn.transaction(),
                            conn.cursor() as client,
                            client.copy(f"COPY {scratch} ({_COPY_COLUMNS}) FROM STDIN") as copy,
                        ):
                            for row in rows:
                                copy.write_row(row)
            except BaseException as failure:  # noqa: BLE001 (reported below, in the caller's thread)
                failures.append(failure)

        threads = [threading.Thread(target=work) for _ in range(clients)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"the COPY floor failed: {failures[0]!r}")
    return elapsed


def _uncharged(account_ids: list[int], month: date) -> int:
    """How many of these accounts' month-to-date usage (rounded to cents) is not yet all charged to
    the ledger (the usage charges are catch-ups of the month to date, billing.ledger)."""
    monthly = connection.ops.quote_name(MonthlyUsage._meta.db_table)
    entries = connection.ops.quote_name(LedgerEntry._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT account_id, round(sum(cost), 2) AS due FROM {monthly} "  # noqa: S608
            "WHERE month = %s AND account_id = ANY(%s) GROUP BY 1) m "
            f"LEFT JOIN (SELECT related_account_id, -sum(amount) AS charged FROM {entries} "
            "WHERE kind = %s AND period = %s AND related_account_id = ANY(%s) GROUP BY 1) l "
            "ON l.related_account_id = m.account_id WHERE coalesce(l.charged, 0) <> m.due",
            [month, account_ids, LedgerEntry.Kind.USAGE_CHARGE, month, account_ids],
        )
        (count,) = cursor.fetchone()
    return count


def _wait_until_charged(account_ids: list[int], month: date, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (left := _uncharged(account_ids, month)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        raise RuntimeError(f"{left} account(s) still not charged for their usage after {timeout:.0f} s")


# --- Memory while streaming a CSV export ------------------------------------------------------------------------


CSV_MEMORY_MB = 30
CSV_RATIO = 0.5


def csv_export(manager: Account, month: date, options: Options, say: Say, log_dir: Path) -> list[Figure]:
    """The usage-records CSV export of the manager's managed accounts, from the first day of the month
    to the day on which it reaches `csv_rows` records, streamed from a one-process gunicorn over
    HTTP: its rate against the floor of a `COPY (SELECT ...) TO STDOUT` of the same rows (the
    export's own query, columns and order), and the peak growth of that process's resident memory
    while it streams."""
    end = _csv_end(manager, month, options.csv_rows)
    params = {"start": month.isoformat(), "end": end.isoformat(), "scope": "all"}
    url = reverse("usage_records_csv", args=[manager.public_id]) + "?" + urlencode(params)
    cookie = _session_cookie(manager.memberships.get(role="owner").user)
    with gunicorn(workers=1, log=log_dir / "benchmark-gunicorn.log") as (port, process):
        (worker,) = _children(process.pid)
        small = (
            reverse("usage_records_csv", args=[manager.public_id])
            + "?"
            + urlencode({**params, "end": month.isoformat(), "scope": str(busiest_managed(manager, month).public_id)})
        )
        _stream(port, small, cookie, worker)  # warm the worker up: imports, caches, connection
        baseline = _rss_kb(worker)
        say(f"Streaming the records CSV {month} .. {end} from gunicorn")
        rows, seconds, peak = _stream(port, url, cookie, worker)
    say("The CSV's floor: COPY (SELECT ...) TO STDOUT of the same rows")
    copied, copy_seconds, copy_bytes = copy_out_floor(manager, params)
    if copied != rows:
        raise RuntimeError(f"the CSV export streamed {rows:,} rows, its COPY floor {copied:,}")
    growth = (peak - baseline) / 1024
    return [
        Figure(
            "CSV export of the records, streamed from gunicorn",
            rows / seconds,
            "rows/s",
            f">= {CSV_RATIO}",
            detail=f"{rows:,} rows in {seconds:.1f} s; COPY TO STDOUT of the same rows {copy_seconds:.1f} s "
            f"({copy_bytes // 1024 // 1024} MB)",
            extra={"rows": rows, "seconds": seconds, "copy_seconds": copy_seconds, "copy_bytes": copy_bytes},
            floor=copied / copy_seconds,
            floor_name="COPY (SELECT ...) TO STDOUT",
        ),
        Figure(
            "peak extra memory streaming the records CSV export",
            growth,
            "MB",
            f"< {CSV_MEMORY_MB}",
            detail=f"{rows:,} rows; gunicorn worker RSS {baseline // 1024} -> peak {peak // 1024} MB",
            extra={"rows": rows, "seconds": seconds, "baseline_mb": baseline / 1024, "peak_mb": peak / 1024},
        ),
    ]


def copy_out_floor(manager: Account, params: dict[str, str]) -> tuple[int, float, int]:
    """The export's query (the same filters, columns and order as the view's, by its own form and
    selector) run as COPY (...) TO STDOUT WITH CSV and read to the end: (rows, seconds, bytes)."""
    form = UsageFilterForm(params, account=manager)
    if not form.is_valid():
        raise RuntimeError(f"the CSV's filters are refused: {form.errors}")
    filters = form.filters()
    columns = exports.record_columns(pricing=can_see_pricing(manager), show_account=True)
    records = usage_records(accounts=filters.accounts, start=filters.start, end=filters.end, product=filters.product)
    sql, sql_params = records.values_list(*[name for _, name in columns]).query.sql_with_params()
    with connection.cursor() as cursor:
        statement = ClientCursor(cursor.connection).mogrify(sql, sql_params)
        began = time.perf_counter()
        size = lines = 0
        with cursor.cursor.copy(f"COPY ({statement}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            for block in copy:
                size += len(block)
                lines += bytes(block).count(b"\n")
        seconds = time.perf_counter() - began
    return max(lines - 1, 0), seconds, size


def _csv_end(manager: Account, month: date, rows: int) -> date:
    days = (
        DailyUsage.objects.filter(account__manager=manager, day__gte=month, day__lt=month_bounds(month)[1].date())
        .values("day")
        .annotate(n=Sum("records"))
        .order_by("day")
    )
    total, end = 0, month
    for day in days:
        total, end = total + day["n"], day["day"]
        if total >= rows:
            break
    return end


def _session_cookie(user) -> str:
    """A signed-in session for `user` that the server (its own SECRET_KEY) accepts."""
    with override_settings(SECRET_KEY=_SERVER_SECRET):
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def _stream(port: int, url: str, cookie: str, worker: int) -> tuple[int, float, int]:
    """GETs `url` and reads it to the end; returns (data rows, seconds, peak RSS of `worker` in kB)."""
    peak = _rss_kb(worker)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_kb(worker))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.perf_counter()
    try:
        http_connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        http_connection.request("GET", url, headers={"Cookie": cookie})
        response = http_connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET {url} answered {response.status}")
        lines = 0
        while chunk := response.read(1 << 16):
            lines += chunk.count(b"\n")
        http_connection.close()
    finally:
        done.set()
        sampler.join()
    return max(lines - 1, 0), time.perf_counter() - began, peak


# --- The run ---------------------------------------------------------------------------------------------


def run(options: Options, say: Say, log_dir: Path) -> dict:
    check_services()
    month = options.month
    facts = machine_facts()
    say(f"{facts['cpu_cores']} cores, {facts['ram_gb']} GB, PostgreSQL {facts['postgresql']}, Redis {facts['redis']}")
    say(f"load average {facts['load_average_at_start']}")
    manager, figures = find_or_build_workload(options, month, say)
    figures += close_figures([manager], month, options, say, log_dir)
    say(f"Timing the pages ({options.requests} requests each)")
    figures += page_figures(manager, month, options)
    figures += csv_export(manager, month, options, say, log_dir)
    figures += ingest_throughput(manager, options, say, log_dir)
    facts["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "machine": facts,
        "workload": {
            "manager": manager.name,
            "managed_accounts": options.managed,
            "records": options.records,
            "month": f"{month:%Y-%m}",
            "products": Product.objects.filter(active=True).count(),
        },
        "options": {k: (str(v) if isinstance(v, date) else v) for k, v in asdict(options).items()},
        "figures": [figure.as_json() for figure in figures],
        "all_passed": all(f.passed is not False for f in figures),
    }


def close_figures(managers: list[Account], month: date, options: Options, say: Say, log_dir: Path) -> list[Figure]:
    """The close through a Celery worker against its floor (its input read and its rows written in
    SQL), and the bare GROUP BY over the raw records for reference (work the close never does)."""
    ids = [pk for manager in managers for pk in tree_ids(manager)]
    say("Timing the bare GROUP BY over the month's raw records")
    group_by = bare_group_by(month)
    close = monthly_close(managers, month, options, say, log_dir)
    say("The close's floor: its GROUP BY over the monthly totals and its rows written in SQL, rolled back")
    read, floor = close_floor(ids, month)
    close.floor, close.floor_name = floor.value, "GROUP BY + the same rows in SQL"
    reference = Figure(
        "close / bare GROUP BY over the raw records (reference, not a floor)",
        close.value / group_by.value if group_by.value else None,
        "x",
        detail=f"{close.value:.2f} s / {group_by.value:.2f} s",
    )
    return [close, floor, read, group_by, reference]


def _month_before(month: date, months: int) -> date:
    for _ in range(months):
        month = (month - timedelta(days=1)).replace(day=1)
    return month


GROWTH_MANAGERS = 5
GROWTH_RECORDS_RATIO = 1.2  # the close at 10x the raw records within 20 %


def growth(options: Options, say: Say, log_dir: Path) -> dict:
    """Issue 16 item 3: the close at three sizes, each in a month of its own, each against its floor:
    `managed` accounts with a tenth of `records`; `managed` with `records` (the reference workload,
    reused); and GROWTH_MANAGERS managers of `managed` accounts each sharing `records`. The close
    must not grow with raw records, and at most linearly with billed parties."""
    check_services()
    facts = machine_facts()
    say(f"load average {facts['load_average_at_start']}")
    month = options.month
    points = [
        ("fewer records", 1, options.records // 10, _month_before(month, 1)),
        ("reference", 1, options.records, month),
        (f"{GROWTH_MANAGERS} managers", GROWTH_MANAGERS, options.records // GROWTH_MANAGERS, _month_before(month, 2)),
    ]
    rows, figures = [], []
    for label, managers, records, point_month in points:
        found, built = find_or_build_group(
            managers=managers, managed=options.managed, records=records, month=point_month, seed=options.seed, say=say
        )
        figures += built
        measured = close_figures(found, point_month, options, say, log_dir)
        close = measured[0]
        rows.append(
            {
                "point": label,
                "month": f"{point_month:%Y-%m}",
                "managers": managers,
                "managed_accounts": managers * options.managed,
                "records": managers * records,
                "billed_parties": close.extra["billed_parties"],
                "close_seconds": close.value,
                "floor_seconds": close.floor,
                "ratio": close.ratio,
                "group_by_raw_seconds": measured[3].value,
                "rows_written": close.extra["rows"],
            }
        )
        for figure in measured:
            figure.name = (
                f"[{label}: {managers * options.managed:,} accounts, {managers * records:,} records] {figure.name}"
            )
        figures += measured
    few, reference, many = rows
    figures.append(
        Figure(
            "close at 10x the raw records / close at 1x (same accounts)",
            reference["close_seconds"] / few["close_seconds"],
            "x",
            f"<= {GROWTH_RECORDS_RATIO}",
            detail=f"{reference['close_seconds']:.2f} s at {reference['records']:,} / "
            f"{few['close_seconds']:.2f} s at {few['records']:,} records",
        )
    )
    parties = many["billed_parties"] / reference["billed_parties"]
    figures.append(
        Figure(
            f"close at {parties:.1f}x the billed parties, per party / at 1x",
            (many["close_seconds"] / reference["close_seconds"]) / parties,
            "x",
            "<= 1",
            detail=f"{many['close_seconds']:.2f} s for {many['billed_parties']:,} parties / "
            f"{reference['close_seconds']:.2f} s for {reference['billed_parties']:,}",
        )
    )
    facts["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "machine": facts,
        "growth": rows,
        "options": {k: (str(v) if isinstance(v, date) else v) for k, v in asdict(options).items()},
        "figures": [figure.as_json() for figure in figures],
        "all_passed": all(f.passed is not False for f in figures),
    }


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


def table(report: dict) -> str:
    """Every figure as `absolute (ratio x floor)`, its floor, its target and the verdict."""
    head = f"{'measure':64} {'value':>10} {'unit':9} {'floor':>10} {'ratio':>7} {'target':>7}  result"
    lines = [f"load average {report['machine']['load_average_at_start']} at the start, "
             f"{report['machine'].get('load_average_at_end')} at the end", head, "-" * len(head)]  # fmt: skip
    for figure in report["figures"]:
        ratio = "" if figure["ratio"] is None else f"{figure['ratio']:.2f}x"
        floor = "" if figure["floor"] is None else _number(figure["floor"])
        result = {True: "PASS", False: "FAIL", None: ""}[figure["passed"]]
        lines.append(
            f"{figure['name'][:64]:64} {_number(figure['value']):>10} {figure['unit']:9} {floor:>10} {ratio:>7} "
            f"{figure['target']:>7}  {result}"
        )
        if figure["floor_name"]:
            lines.append(f"{'':4}{_number(figure['value'])} {figure['unit']} ({ratio} {figure['floor_name']})")
        if figure["detail"]:
            lines.append(f"{'':4}{figure['detail']}")
    return "\n".join(lines)


def as_json(report: dict) -> str:
    return json.dumps(report, indent=2, default=str)
