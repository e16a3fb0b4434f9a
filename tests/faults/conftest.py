"""The fault suite's shared pieces: a workload of billed parties, real processes (Celery workers and
`manage.py` commands as subprocesses, a Redis server of the test's own), and the checks that must
hold after every fault.

After every fault (`assert_reconciled`):
- exactly one invoice per (issuer, bill-to, period); a finalized platform invoice for every billed
  party of the month, counted with billing.invoices' own `billed_parties` and `close_progress`;
- every platform invoice's lines equal the month's rated usage to the cent, recomputed here with a
  GROUP BY over the raw usage records (never from the totals tables the close reads), and every
  (account, product) used in the month is on exactly one invoice;
- every cached Balance equals the sum of its LedgerEntry rows;
- the raw records are exactly those accepted: as many as the test sent, the batches' `accepted`
  counts add up to them, and the daily and monthly totals equal them (nothing lost or counted twice).

The subprocesses work on the test database (pytest-django's `test_<name>`), so the tests that use
them are `django_db(transaction=True)`: their data is committed and other processes see it. Every
subprocess is started in its own process group and killed, group and all, when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate

from accounts.actor import Actor
from accounts.models import Account
from billing.invoices.builder import billed_parties
from billing.invoices.close import close_progress
from billing.models import (
    Balance,
    CloseItem,
    DailyUsage,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    MonthlyUsage,
    UsageBatch,
    UsageRecord,
)
from billing.money import to_cents
from billing.usage.services import ingest_usage
from tests.factories import account_with_owner

BASE_DIR = Path(__file__).resolve().parents[2]
# Small close batches (CLOSE_BATCH_SIZE) for the processes started here: ~60 close tasks instead of
# 3, so that a close can be interrupted half-way, as a big month's close of 3,000 parties would be.
FAULT_BATCH_SIZE = 5
MONTH = date(2025, 6, 1)  # the month the faults close: long over, so the command accepts it
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)
SKUS = ("voice.outbound", "voice.inbound", "sms.outbound", "mms.inbound", "number.local", "fax.outbound")
POSTGRES_ONLY = "the fault suite runs on PostgreSQL and Redis (.ci/run's second pass); run with DATABASE_URL"


# --- Where it runs --------------------------------------------------------------------------------------------


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip(POSTGRES_ONLY)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    return start, (start + timedelta(days=32)).replace(day=1)


# --- The workload ---------------------------------------------------------------------------------------------


@dataclass
class Workload:
    """What the test sent: every accepted batch as (submitter, rows), and the records it holds."""

    month: date
    manager: Account
    managed: list[Account]
    standards: list[Account]
    actor: Actor
    batches: list[tuple[Account, list[dict]]] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(len(rows) for _, rows in self.batches)

    def send(self, submitter: Account, rows: list[dict]) -> None:
        result = ingest_usage(submitter=submitter, rows=rows, source="api", actor=self.actor)
        assert (result.accepted, result.duplicates) == (len(rows), 0), result
        self.batches.append((submitter, rows))


def _rows(rng: random.Random, month: date, prefix: str, count: int, account: Account | None) -> list[dict]:
    start, end = month_bounds(month)
    seconds = int((end - start).total_seconds())
    rows = []
    for i in range(count):
        row = {
            "product": rng.choice(SKUS),
            # Six decimals: costs with sub-cent digits, so lines round apart from their sections.
            "quantity": f"{rng.randint(0, 90)}.{rng.randint(0, 999_999):06d}",
            "started_at": (start + timedelta(seconds=rng.randrange(seconds))).isoformat(),
            "idempotency_key": f"{prefix}-{i}",
        }
        if account is not None:
            row["account"] = str(account.public_id)
        rows.append(row)
    return rows


def build_workload(
    world, *, managed: int, standards: int = 5, per_account: int = 3, batch_size: int = 1000, month: date = MONTH
) -> Workload:
    """A reseller with `managed` managed accounts (two in three billed separately, so each a billed
    party of its own; the others roll up to it), `standards` standard accounts and the persona
    world, all created long before `month`, and usage of the month for most of them, sent through
    `ingest_usage` (rated, with daily totals, and charged by the eager charge task)."""
    reseller, owner = account_with_owner(name="Fault Reseller", manager_kind=True)
    customers = Account.objects.bulk_create(
        Account(
            name=f"Fault Customer {i:04d}",
            email=f"customer{i}@fault.example.com",
            kind=Account.Kind.MANAGED,
            manager=reseller,
            billing_mode=Account.BillingMode.ROLLUP if i % 3 == 0 else Account.BillingMode.SEPARATE,
        )
        for i in range(managed)
    )
    solos = Account.objects.bulk_create(
        Account(name=f"Fault Standard {i:03d}", email=f"solo{i}@fault.example.com") for i in range(standards)
    )
    Account.objects.update(created_at=LONG_AGO)
    work = Workload(month, reseller, customers, solos, Actor(user=owner))
    rng = random.Random(20250601)
    # Every seventh customer has no usage: a separate one is billed all the same (an empty invoice).
    rows = [
        row
        for account in customers
        if account.pk % 7
        for row in _rows(rng, month, f"c{account.pk}", per_account, account)
    ]
    rows += _rows(rng, month, f"m{reseller.pk}", per_account, None)
    for start in range(0, len(rows), batch_size):
        work.send(reseller, rows[start : start + batch_size])
    for account in [*solos, world.standard]:
        work.send(account, _rows(rng, month, f"s{account.pk}", per_account, None))
    rollup = [*_rows(rng, month, f"w{world.managed.pk}", per_account, world.managed)]
    work.send(world.manager, rollup)
    return work


# --- The checks ------------------------------------------------------------------------------------------------


def rated_usage(month: date) -> dict[tuple[int, int], tuple[Decimal, Decimal, int]]:
    """{(account id, product id): (quantity, exact cost, records)} of the month, from the raw records."""
    start, end = month_bounds(month)
    rows = (
        UsageRecord.objects.filter(started_at__gte=start, started_at__lt=end)
        .values("account_id", "product_id")
        .annotate(quantity=Sum("quantity"), cost=Sum("cost"), records=Count("pk"))
        .order_by()
    )
    return {(r["account_id"], r["product_id"]): (r["quantity"], r["cost"], r["records"]) for r in rows}


def assert_one_invoice_per_party(month: date) -> int:
    """One invoice per (issuer, bill-to, period); a finalized platform invoice for every billed
    party; no platform invoice for anyone else; the close run's items all done. Returns the count."""
    repeated = list(
        Invoice.objects.values("issuer_id", "bill_to_id", "period").annotate(n=Count("pk")).filter(n__gt=1).order_by()
    )
    assert repeated == [], f"more than one invoice for the same issuer, bill-to and month: {repeated}"
    parties = set(billed_parties(month).values_list("pk", flat=True))
    platform = Invoice.objects.filter(period=month, issuer__isnull=True)
    assert set(platform.values_list("bill_to_id", flat=True)) == parties
    assert not platform.exclude(status=Invoice.Status.FINALIZED).exists(), "a platform invoice left unfinalized"
    assert close_progress(month) == {"total": len(parties), "done": len(parties), "failed": 0}
    assert set(CloseItem.objects.filter(run__period=month).values_list("account_id", flat=True)) == parties
    numbers = list(Invoice.objects.filter(issuer__isnull=True).values_list("number", flat=True))
    assert len(numbers) == len(set(numbers)), "two platform invoices share a number"
    return len(parties)


def assert_invoices_equal_rated_usage(month: date, *, complete: bool = True) -> int:
    """Each platform invoice of the month (those made so far when not `complete`) equals the rated
    usage of its payer and the payer's roll-up accounts to the cent: a line per (account, product)
    with the summed quantity and the cost rounded half up, each account's section (rounding line
    included) equal to its rounded total and to the usage charge the ledger posted, the invoice
    total equal to the sections and the statement's charges. With `complete`, every (account,
    product) used in the month is on exactly one invoice. Returns the number of lines checked."""
    usage = rated_usage(month)
    payer_of = {
        pk: (pk if mode != Account.BillingMode.ROLLUP else manager)
        for pk, mode, manager in Account.objects.values_list("pk", "billing_mode", "manager_id")
    }
    charged: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for payer, related, amount in LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.USAGE_CHARGE, period=month
    ).values_list("account_id", "related_account_id", "amount"):
        charged[(payer, related)] -= amount
    lines_by_invoice: dict[int, list[tuple]] = defaultdict(list)
    for row in InvoiceLine.objects.filter(invoice__period=month, invoice__issuer__isnull=True).values_list(
        "invoice_id", "account_id", "product_id", "quantity", "amount"
    ):
        lines_by_invoice[row[0]].append(row[1:])
    seen: set[tuple[int, int]] = set()
    checked = 0
    for invoice in Invoice.objects.filter(period=month, issuer__isnull=True):
        expected = {key: value for key, value in usage.items() if payer_of[key[0]] == invoice.bill_to_id}
        products, sections = {}, defaultdict(Decimal)
        for account_id, product_id, quantity, amount in lines_by_invoice[invoice.pk]:
            sections[account_id] += amount
            if product_id is not None:
                assert (account_id, product_id) not in products, f"two lines for one product on {invoice.number}"
                products[(account_id, product_id)] = (quantity, amount)
        assert products == {key: (q, to_cents(cost)) for key, (q, cost, _) in expected.items()}, invoice.number
        exact: dict[int, Decimal] = defaultdict(Decimal)
        for (account_id, _), (_, cost, _) in expected.items():
            exact[account_id] += cost
        assert dict(sections) == {a: to_cents(c) for a, c in exact.items()}, invoice.number
        for account_id, total in sections.items():
            assert charged[(invoice.bill_to_id, account_id)] == total, (invoice.number, account_id)
        total = sum(sections.values(), Decimal("0.00"))
        assert invoice.total == total == invoice.charges, invoice.number
        assert invoice.closing_balance == invoice.opening_balance + invoice.credits - invoice.charges
        assert not seen & set(products), f"a usage line is on two invoices ({invoice.number})"
        seen |= set(products)
        checked += len(products)
    if complete:
        assert seen == set(usage), f"usage on no invoice: {sorted(set(usage) - seen)[:10]}"
    return checked


def assert_balances_equal_ledger() -> int:
    """Every cached Balance equals the sum of its ledger entries, and every account with entries
    has a Balance. Returns how many balances were checked."""
    sums = dict(
        LedgerEntry.objects.values("account_id")
        .annotate(total=Sum("amount"))
        .order_by()
        .values_list("account_id", "total")
    )
    cached = dict(Balance.objects.values_list("account_id", "amount"))
    assert set(sums) <= set(cached), f"ledger entries without a balance: {sorted(set(sums) - set(cached))}"
    wrong = {pk: (amount, sums.get(pk, Decimal(0))) for pk, amount in cached.items() if amount != sums.get(pk, 0)}
    assert wrong == {}, f"cached balance != sum of entries: {wrong}"
    return len(cached)


def assert_usage_counted_once(records: int) -> None:
    """The raw records are the `records` accepted, the batches count them once, and the daily and
    monthly totals are exactly the raw records (quantity, cost, record count per key)."""
    assert UsageRecord.objects.count() == records
    assert (UsageBatch.objects.aggregate(n=Sum("accepted"))["n"] or 0) == records
    raw_days = {
        (r["account_id"], r["product_id"], r["day"]): (r["quantity"], r["cost"], r["records"])
        for r in UsageRecord.objects.annotate(day=TruncDate("started_at", tzinfo=UTC))
        .values("account_id", "product_id", "day")
        .annotate(quantity=Sum("quantity"), cost=Sum("cost"), records=Count("pk"))
        .order_by()
    }
    days = {
        (account, product, day): (quantity, cost, n)
        for account, product, day, quantity, cost, n in DailyUsage.objects.values_list(
            "account_id", "product_id", "day", "quantity", "cost", "records"
        )
    }
    assert days == raw_days, "the daily totals differ from the raw records"
    raw_months: dict[tuple, list] = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    for (account, product, day), (quantity, cost, n) in raw_days.items():
        total = raw_months[(account, product, day.replace(day=1))]
        total[0] += quantity
        total[1] += cost
        total[2] += n
    months = {
        (account, product, month): [quantity, cost, n]
        for account, product, month, quantity, cost, n in MonthlyUsage.objects.values_list(
            "account_id", "product_id", "month", "quantity", "cost", "records"
        )
    }
    assert months == dict(raw_months), "the monthly totals differ from the raw records"


def assert_reconciled(month: date, *, records: int) -> dict[str, int]:
    """Every check of the module docstring; returns what was counted, for the test's report."""
    parties = assert_one_invoice_per_party(month)
    lines = assert_invoices_equal_rated_usage(month)
    balances = assert_balances_equal_ledger()
    assert_usage_counted_once(records)
    return {"parties": parties, "lines": lines, "balances": balances, "records": records}


# --- Real processes -------------------------------------------------------------------------------------------


def test_database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test database), for subprocesses."""
    s = connection.settings_dict
    password = f":{quote(str(s['PASSWORD']), safe='')}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{quote(str(s.get('USER') or ''), safe='')}{password}@{host}{port}/{s['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, every: float = 0.05, logs=None):
    """Polls `predicate` until it returns something truthy (returned); fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = logs() if logs else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
        time.sleep(every)


class RedisServer:
    """A redis-server of the test's own, non-persistent, on a free port in a temporary directory:
    it can be stopped and started again without touching the shared one on 6379."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server); the fault suite needs it")
        self.process = subprocess.Popen(  # noqa: S603
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.directory / "redis.log"),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(self._answers, timeout=20, what=f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Gone at once, its queues with it (SHUTDOWN NOSAVE: nothing is persisted)."""
        if self.process is None:
            return
        with contextlib.suppress(redis.RedisError):  # the connection drops as the server exits
            self.client().shutdown(nosave=True)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def queued(self, queue: str = "celery") -> int:
        """Messages waiting in the queue (kombu keeps one list per priority step)."""
        client = self.client()
        return sum(client.llen(key) for key in client.keys(f"{queue}*") if client.type(key) == b"list")

    def unacked(self) -> int:
        """Messages delivered to a worker and not yet acknowledged (kombu's `unacked` hash)."""
        return self.client().hlen("unacked")


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Processes:
    """Celery workers and manage.py commands as real subprocesses on the test database and the
    given broker, each in its own process group; `kill_all` (always run by the fixture) SIGKILLs
    every group still alive."""

    def __init__(self, directory: Path, broker_url: str):
        self.directory = directory
        self.broker_url = broker_url
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update(
            DJANGO_SETTINGS_MODULE="portal.settings",
            MC_ENV="development",
            DEBUG="0",
            CELERY_TASK_ALWAYS_EAGER="0",
            DATABASE_URL=test_database_url(),
            CELERY_BROKER_URL=self.broker_url,
            MC_VAR_DIR=str(self.directory),
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            CLOSE_BATCH_SIZE=str(FAULT_BATCH_SIZE),
        )
        return env

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = self.directory / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(  # noqa: S603
                args,
                cwd=BASE_DIR,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a worker's pool children die with it
            )
        self.started.append((process, log))
        return process

    def worker(self, name: str, *, concurrency: int = 2) -> subprocess.Popen:
        """`celery -A portal worker`, prefork: the production worker, on this test's broker."""
        return self._start(
            f"worker-{name}",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--pool=prefork",
                f"--concurrency={concurrency}",
                "--loglevel=INFO",
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
            ],  # fmt: skip
        )

    def manage(self, name: str, *args: str) -> subprocess.Popen:
        return self._start(name, [sys.executable, str(BASE_DIR / "manage.py"), *args])

    def run_manage(self, name: str, *args: str, timeout: float = 120) -> str:
        """Runs a command to its end; returns what it printed (fails on a non-zero exit)."""
        process = self.manage(name, *args)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(process)
            raise AssertionError(f"{name} did not finish in {timeout} s:\n{self.log(process)}") from None
        output = self.log(process)
        assert code == 0, f"{name} exited with {code}:\n{output}"
        return output

    def log(self, process: subprocess.Popen) -> str:
        path = next(log for p, log in self.started if p is process)
        return path.read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}" for _, log in self.started)

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL to the whole group (a prefork worker and its pool children), as the OOM killer
        or a lost machine would: no handler runs, nothing is acknowledged."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)

    def kill_all(self) -> None:
        for process, _ in self.started:
            self.kill(process)


@pytest.fixture
def processes(tmp_path, redis_server):
    """Subprocesses on the test database and this test's own Redis; all killed when the test ends."""
    started = Processes(tmp_path, redis_server.url)
    try:
        yield started
    finally:
        started.kill_all()
