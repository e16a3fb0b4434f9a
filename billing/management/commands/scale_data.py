import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from accounts.actor import Actor
from accounts.services import create_manager_account
from billing.scale import build_managed_accounts, build_usage


class Command(BaseCommand):
    help = (
        "Build a benchmark workload: a new manager with N managed accounts (half roll-up, half separate, "
        "a tenth with hidden pricing) and R usage records spread over one month."
    )

    def add_arguments(self, parser):
        parser.add_argument("--managed", type=int, default=3000)
        parser.add_argument("--records", type=int, default=1_000_000)
        parser.add_argument("--month", default=None, help="YYYY-MM (UTC); default: last month")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, managed, records, month, seed, **options):
        if managed < 1 or records < 0:
            raise CommandError("--managed must be at least 1 and --records zero or more.")
        start = self._month(month)
        began = time.monotonic()
        manager = create_manager_account(
            name=f"Scale Reseller {start:%Y-%m} {int(began)}",
            owner_email=f"scale-{int(time.time() * 1000)}@scale.example.com",
            owner_password=None,
            limit=max(managed, 3000),
            actor=Actor.platform_staff(),
        )
        accounts = build_managed_accounts(manager, managed)
        self.stdout.write(f"{managed:,} managed accounts in {time.monotonic() - began:.1f} s")
        days = (date(start.year + start.month // 12, start.month % 12 + 1, 1) - start).days
        mark = time.monotonic()
        build_usage(accounts=accounts, start=start, days=days, records=records, seed=seed)
        self.stdout.write(f"{records:,} usage records and their daily totals in {time.monotonic() - mark:.1f} s")
        self.stdout.write(self.style.SUCCESS(f"Manager {manager.name} ({manager.public_id})"))

    def _month(self, value: str | None) -> date:
        if value is None:
            today = date.today()
            return date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)
        try:
            year, month = (int(part) for part in value.split("-"))
            return date(year, month, 1)
        except ValueError:
            raise CommandError("--month must look like 2026-10.") from None
