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
from pathlib import Path
from urllib.parse import quote, urlencode

import django
import redis
from celery.exceptions import AlwaysEagerIgnored
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection, transaction
from django.db.models import Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse

from accounts.actor import Actor
from accounts.models import Account
from accounts.services import create_api_key
from billing.invoices import builder
from billing.invoices import close as invoice_close
from billing.invoices import services as invoice_services
from billing.ledger import services as ledger
from billing.models import CloseItem, DailyUsage, Invoice, MonthlyUsage, Product, UsageRecord
from billing.scale import build_workload, month_days
from portal.celery import app as celery_app

BASE_DIR = Path(settings.BASE_DIR)
BIN = Path(sys.executable).parent
INGEST_BATCH = 5_000
WARM_UP = 200  # records posted (and stored) before the timed batches
PAGE_TARGET_MS = 200

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
    name: str
    value: float | None
    unit: str
    target: str = ""  # ">= 20000", "< 200", "<= 2"; empty: shown, not judged
    detail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.value is None or not self.target:
            return None
        operator, _, bound = self.target.partition(" ")
        limit = float(bound)
        return {">=": self.value >= limit, "<": self.value < limit, "<=": self.value <= limit}[operator]

    def as_json(self) -> dict:
        return {**asdict(self), "passed": self.passed}


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


def workload_name(options: Options, month: date) -> str:
    return f"Benchmark Reseller {options.managed} x {options.records} {month:%Y-%m}"


def tree_ids(manager: Account) -> list[int]:
    return [manager.pk, *manager.managed_accounts.order_by("pk").values_list("pk", flat=True)]


def find_or_build_workload(options: Options, month: date, say: Say) -> tuple[Account, list[Figure]]:
    """The benchmark's manager for this size and month, built when it does not exist yet. The month
    must hold nothing else: the close invoices every billed party of a month."""
    name = workload_name(options, month)
    manager = Account.objects.filter(kind=Account.Kind.MANAGER, name=name).first()
    figures = []
    if manager is None:
        say(
            f"Building the workload: {options.managed:,} managed accounts, {options.records:,} records in {month:%Y-%m}"
        )
        began = time.perf_counter()
        workload = build_workload(
            managed=options.managed, records=options.records, month=month, seed=options.seed, name=name, progress=say
        )
        manager = workload.manager
        figures.append(Figure("scale-data build of the workload", time.perf_counter() - began, "s"))
    else:
        say(f"Reusing the workload of {name}")
    ids = tree_ids(manager)
    stored = MonthlyUsage.objects.filter(account_id__in=ids, month=month).aggregate(n=Sum("records"))["n"] or 0
    if len(ids) - 1 != options.managed or stored != options.records:
        raise RuntimeError(
            f"{name} holds {len(ids) - 1:,} managed accounts and {stored:,} records in {month:%Y-%m}, "
            "not what its name says (an interrupted build?). Benchmark another --month or use a fresh database."
        )
    others = set(builder.billed_parties(month).values_list("pk", flat=True)) - set(ids)
    if others:
        raise RuntimeError(
            f"{month:%Y-%m} has {len(others)} billed part(ies) besides the benchmark's: its close would invoice "
            "them too. Benchmark another --month or use a database of its own."
        )
    return manager, figures


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


def reset_close(manager: Account, month: date) -> dict[str, int]:
    """Undo the close of `month` for the benchmark's own accounts, so the next close does all the
    work again, through the invoices' and the ledger's own services (benchmark databases only):
    its invoices (platform and resale) with their lines, the month's close run and the invoice
    numbers they took when they are the latest of their sequence; the usage-charge ledger entries
    of the month, with their effect on the cached balances."""
    ids = tree_ids(manager)
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


def monthly_close(manager: Account, month: date, options: Options, say: Say, log_dir: Path) -> Figure:
    """The close of the month through a real Celery worker: the `close_month` task (what beat sends
    on the 1st) fans out one task per billed party; timed from sending it until the close run
    reports every party done."""
    undone = reset_close(manager, month)
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
    invoices = Invoice.objects.filter(period=month, bill_to__in=tree_ids(manager))
    platform = invoices.filter(issuer__isnull=True).count()
    resale = invoices.filter(issuer__isnull=False).count()
    parties = builder.billed_parties(month).count()
    if platform != parties:
        raise RuntimeError(f"the close did not invoice every billed party once: {progress}, {platform} of {parties}")
    return Figure(
        "monthly close through a Celery worker (Redis)",
        elapsed,
        "s",
        "< 60",
        detail=f"{platform:,} platform invoices and {resale:,} resale invoices; {stale} stale message(s) purged first",
        extra={"platform_invoices": platform, "resale_invoices": resale, "billed_parties": parties},
    )


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


def page_figures(manager: Account, month: date, options: Options) -> list[Figure]:
    """Server time (median and p95) and query count of the five pages of the issue, in-process."""
    owner = manager.memberships.get(role="owner").user
    client = Client()
    client.force_login(owner)
    _, key = create_api_key(account=manager, name=f"benchmark {uuid.uuid4().hex[:6]}", actor=Actor(user=owner))
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    start, end = month, month + timedelta(days=month_days(month) - 1)
    period = {"start": start.isoformat(), "end": end.isoformat()}
    busiest = busiest_managed(manager, month)
    invoice = Invoice.objects.get(bill_to=manager, period=month, issuer__isnull=True)
    cases = [
        ("managed accounts list", client, reverse("managed_list", args=[manager.public_id]), {}),
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
        ("GET /v2/managed_accounts?page[size]=250", api, "/v2/managed_accounts", {"page[size]": 250}),
    ]
    figures = [_page_figure(label, who, url, params, options.requests) for label, who, url, params in cases]
    return [*figures, _pdf_figure(client, manager, invoice)]


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
        f"< {PAGE_TARGET_MS}",
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


def ingest_throughput(manager: Account, options: Options, say: Say, log_dir: Path) -> list[Figure]:
    """Batches of 5,000 records through POST /v2/usage_records to gunicorn, from `clients` connections
    at once; then the same batches again (all duplicates)."""
    owner = manager.memberships.get(role="owner").user
    _, key = create_api_key(account=manager, name=f"benchmark {uuid.uuid4().hex[:6]}", actor=Actor(user=owner))
    ids = [str(p) for p in manager.managed_accounts.order_by("pk").values_list("public_id", flat=True)]
    skus = list(Product.objects.filter(active=True).order_by("sku").values_list("sku", flat=True))
    start, end = ingest_window(datetime.now(UTC))
    tag = uuid.uuid4().hex[:10]
    bodies = ingest_bodies(accounts=ids, skus=skus, start=start, end=end, records=options.ingest_records, tag=tag)
    warm_up = ingest_bodies(accounts=ids, skus=skus, start=start, end=end, records=WARM_UP, tag=f"{tag}-warm")
    with gunicorn(workers=options.web_workers, log=log_dir / "benchmark-gunicorn.log") as (port, _):
        post_bodies(port=port, key=key, bodies=warm_up * options.clients, clients=options.clients)
        say(f"Posting {options.ingest_records:,} records in {len(bodies)} batches to gunicorn")
        elapsed, results = post_bodies(port=port, key=key, bodies=bodies, clients=options.clients)
        replayed, repeats = post_bodies(port=port, key=key, bodies=bodies, clients=options.clients)
    accepted = sum(r["accepted"] for r in results)
    duplicates = sum(r["duplicates"] for r in repeats)
    if accepted != options.ingest_records or duplicates != options.ingest_records:
        raise RuntimeError(f"sent {options.ingest_records:,}, accepted {accepted:,}, then {duplicates:,} duplicates")
    catch_up = _catch_up_charges(manager, start.date())
    setup = f"gunicorn --workers {options.web_workers}, {options.clients} client connections"
    return [
        Figure(
            "ingest throughput, POST /v2/usage_records in batches of 5,000",
            accepted / elapsed,
            "records/s",
            ">= 20000",
            detail=f"{accepted:,} records in {elapsed:.1f} s; {setup}; rated, daily+monthly totals kept",
            extra={"records": accepted, "seconds": elapsed, "batches": len(bodies), "warm_up_records": WARM_UP}
            | catch_up,
        ),
        Figure(
            "re-sent batches (all duplicates)",
            duplicates / replayed,
            "records/s",
            detail=f"{duplicates:,} duplicates in {replayed:.1f} s; nothing stored twice",
        ),
    ]


def _catch_up_charges(manager: Account, month: date) -> dict:
    """Each accepted batch queued its usage-charge tasks; with no worker running they wait in Redis.
    Purge them and post the month's charges here once instead (charges are idempotent catch-ups of
    the month to date), so the database is left consistent."""
    purged = celery_app.control.purge()
    began = time.perf_counter()
    used = MonthlyUsage.objects.filter(account__manager=manager, month=month).values_list("account_id", flat=True)
    accounts = Account.objects.filter(pk__in=used).select_related("manager").order_by("pk")
    for account in accounts:
        ledger.post_usage_charges(account=account, month=month)
    return {"charge_messages_purged": purged, "catch_up_charge_seconds": round(time.perf_counter() - began, 1)}


# --- Memory while streaming a CSV export ------------------------------------------------------------------------


def csv_export_memory(manager: Account, month: date, options: Options, say: Say, log_dir: Path) -> Figure:
    """The usage-records CSV export of the manager's managed accounts, from the first day of the month
    to the day on which it reaches `csv_rows` records, streamed from a one-process gunicorn over
    HTTP; the peak growth of that process's resident memory while it streams."""
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
    growth = (peak - baseline) / 1024
    return Figure(
        "peak extra memory streaming the records CSV export",
        growth,
        "MB",
        "< 100",
        detail=f"{rows:,} rows in {seconds:.1f} s; gunicorn worker RSS {baseline // 1024} -> peak {peak // 1024} MB",
        extra={"rows": rows, "seconds": seconds, "baseline_mb": baseline / 1024, "peak_mb": peak / 1024},
    )


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
    manager, figures = find_or_build_workload(options, month, say)
    say("Timing the bare GROUP BY over the month's raw records")
    group_by = bare_group_by(month)
    close = monthly_close(manager, month, options, say, log_dir)
    ratio = Figure(
        "close / bare GROUP BY",
        close.value / group_by.value if group_by.value else None,
        "x",
        "<= 2",
        detail=f"{close.value:.1f} s / {group_by.value:.2f} s",
    )
    figures += [close, group_by, ratio]
    say(f"Timing the pages ({options.requests} requests each)")
    figures += page_figures(manager, month, options)
    figures.append(csv_export_memory(manager, month, options, say, log_dir))
    figures += ingest_throughput(manager, options, say, log_dir)
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


def table(report: dict) -> str:
    lines = [f"{'measure':66} {'value':>12} {'unit':9} {'target':>8}  result", "-" * 106]
    for figure in report["figures"]:
        value = (
            "-"
            if figure["value"] is None
            else f"{figure['value']:,.1f}"
            if figure["value"] < 1e4
            else f"{figure['value']:,.0f}"
        )
        result = {True: "PASS", False: "FAIL", None: ""}[figure["passed"]]
        lines.append(f"{figure['name'][:66]:66} {value:>12} {figure['unit']:9} {figure['target']:>8}  {result}")
        if figure["detail"]:
            lines.append(f"{'':4}{figure['detail']}")
    return "\n".join(lines)


def as_json(report: dict) -> str:
    return json.dumps(report, indent=2, default=str)
