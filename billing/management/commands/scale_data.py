import time
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.scale import REFERENCE_MANAGED, REFERENCE_RECORDS, build_workload, parse_month, previous_month


def month_option(value: str | None) -> date:
    if value is None:
        return previous_month(date.today())
    try:
        return parse_month(value)
    except ValueError:
        raise CommandError("--month must look like 2026-10.") from None


class Command(BaseCommand):
    help = (
        "Build a benchmark workload: a new manager with N managed accounts (half roll-up, half separate, "
        "a tenth with hidden pricing), its rates, and R rated usage records spread over one month with "
        "their daily and monthly totals. The defaults are the reference workload: 3,000 and 10,000,000."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--managed", type=int, default=REFERENCE_MANAGED)
        parser.add_argument("--records", type=int, default=REFERENCE_RECORDS)
        parser.add_argument("--month", default=None, help="YYYY-MM (UTC); default: last month")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--name", default=None, help="The manager's name (default: Scale Reseller ...)")

    def handle(
        self, *args: Any, managed: int, records: int, month: str | None, seed: int, name: str | None, **options: Any
    ) -> None:
        if managed < 1 or records < 0:
            raise CommandError("--managed must be at least 1 and --records zero or more.")
        start = month_option(month)
        began = time.monotonic()

        def progress(message: str) -> None:
            self.stdout.write(f"{time.monotonic() - began:7.1f} s  {message}")

        workload = build_workload(
            managed=managed, records=records, month=start, seed=seed, name=name, progress=progress
        )
        progress(f"{records:,} usage records and their daily and monthly totals: done")
        self.stdout.write(self.style.SUCCESS(f"Manager {workload.manager.name} ({workload.manager.public_id})"))
