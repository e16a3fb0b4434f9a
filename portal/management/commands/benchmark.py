from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.management.commands.scale_data import month_option
from billing.scale import REFERENCE_MANAGED, REFERENCE_RECORDS

# The benchmark's code is no part of the product: it lives in the source checkout's tests/bench,
# which is not installed with the package.
try:
    from tests.bench import reference as benchmark

    INSTALLED = True
except ModuleNotFoundError as missing:
    if missing.name not in ("tests", "tests.bench", "tests.bench.reference"):
        raise
    INSTALLED = False

NOT_INSTALLED = (
    "manage.py benchmark needs the source checkout: its code is tests/bench/reference.py, which is not "
    "installed with the product. Run it from a clone of the repository (./dev benchmark, see BENCHMARKS.md)."
)


class Command(BaseCommand):
    help = (
        "Measure the reference workload in one run (PostgreSQL + Redis), every figure against a floor measured "
        "in the same run: API ingest end to end through gunicorn with a Celery worker (floor: a COPY of the same "
        "rows), the monthly close through a Celery worker (floor: its GROUP BY and its rows written in SQL), page "
        "server times (floor: the login page), the streamed CSV export (floor: COPY ... TO STDOUT) and its memory. "
        "Builds the workload (manage.py scale_data) the first time, reuses it after. Prints a table and writes "
        "JSON. --growth measures the close at three sizes instead. See BENCHMARKS.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--managed", type=int, default=REFERENCE_MANAGED, help="managed accounts (3,000)")
        parser.add_argument("--records", type=int, default=REFERENCE_RECORDS, help="records in the month (10M)")
        parser.add_argument("--month", default=None, help="YYYY-MM (UTC), a past month; default: last month")
        parser.add_argument("--ingest-records", type=int, default=200_000, help="records posted to the API")
        parser.add_argument("--requests", type=int, default=50, help="timed requests per page (at least 50)")
        parser.add_argument("--csv-rows", type=int, default=1_000_000, help="rows of the streamed CSV export")
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
        parser.add_argument("--clients", type=int, default=2, help="API client connections at once")
        parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery worker processes")
        parser.add_argument("--json", default=None, help="where to write the JSON (default: var/benchmark.json)")
        parser.add_argument(
            "--growth",
            action="store_true",
            help="instead: the close at --managed x --records/10, --managed x --records and 5 managers of --managed "
            "sharing --records, each in a month of its own (var/benchmark-growth.json)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not INSTALLED:
            raise CommandError(NOT_INSTALLED)
        month = month_option(options["month"])
        if month >= datetime.now(UTC).date().replace(day=1):
            raise CommandError("--month must be a past month: only past months can be closed.")
        if min(options["managed"], options["requests"], options["ingest_records"], options["csv_rows"]) < 1:
            raise CommandError("--managed, --requests, --ingest-records and --csv-rows must be at least 1.")
        run_options = benchmark.Options(
            managed=options["managed"],
            records=options["records"],
            month=month,
            ingest_records=options["ingest_records"],
            requests=options["requests"],
            csv_rows=options["csv_rows"],
            web_workers=options["web_workers"],
            clients=options["clients"],
            worker_concurrency=options["worker_concurrency"],
        )
        if settings.DEBUG:
            self.stderr.write("DEBUG is on: page timings include its overhead (./dev benchmark turns it off).")
        began = datetime.now(UTC)

        def say(message: str) -> None:
            self.stdout.write(f"[{(datetime.now(UTC) - began).total_seconds():6.0f} s] {message}")

        var = Path(settings.VAR_DIR)
        try:
            measure = benchmark.growth if options["growth"] else benchmark.run
            report = measure(run_options, say, log_dir=var)
        except RuntimeError as failure:
            raise CommandError(str(failure)) from None
        default = "benchmark-growth.json" if options["growth"] else "benchmark.json"
        path = Path(options["json"]) if options["json"] else var / default
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(benchmark.as_json(report))
        self.stdout.write("")
        self.stdout.write(benchmark.table(report))
        self.stdout.write("")
        verdict = "every target met" if report["all_passed"] else "some targets NOT met"
        style = self.style.SUCCESS if report["all_passed"] else self.style.WARNING
        self.stdout.write(style(f"{verdict}; JSON in {path}"))
