import uuid
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.demo import demo_accounts
from accounts.models import Account
from billing.usage.services import UsageRejected
from billing.usage.simulator import simulate_usage


class Command(BaseCommand):
    help = (
        "Generate realistic usage through the ingestion service for a manager's managed accounts, "
        "some accounts, the demo data's accounts, or all; never before an account was created. "
        "Deterministic: the same seed never adds a record twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--manager", help="a manager account's public id or name: all its enabled managed accounts")
        which.add_argument("--account", action="append", help="an account's public id (repeatable)")
        which.add_argument("--all", action="store_true", help="every enabled account")
        which.add_argument(
            "--demo", action="store_true", help="the accounts demo_data created (none a person added by hand)"
        )
        parser.add_argument("--days", type=int, default=90, help="days of history, ending now (default 90)")
        parser.add_argument(
            "--records-per-day", type=float, default=40, help="mean records a day for an average account (default 40)"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--end", help="ISO 8601 UTC instant to end at (default and at most: now)")

    def handle(
        self,
        *args: Any,
        manager: str | None,
        account: list[str] | None,
        all: bool,
        demo: bool,
        days: int,
        records_per_day: float,
        seed: int,
        end: str | None,
        **options: Any,
    ) -> None:
        if days < 1 or records_per_day < 0:
            raise CommandError("--days must be at least 1 and --records-per-day zero or more.")
        accounts = self._accounts(manager=manager, ids=account, everyone=all, demo=demo)
        end_at = self._end(end)
        start = datetime.combine((end_at - timedelta(days=days)).date(), time.min, tzinfo=UTC)
        for skipped in (a for a in accounts if not a.in_service):
            why = skipped.get_status_display().lower() if not skipped.is_enabled else skipped.blocked_reason
            self.stdout.write(f"Skipping {skipped.name}: {why or skipped.service_block_display.lower()}.")
        enabled = sum(a.in_service for a in accounts)
        self.stdout.write(f"Simulating {start:%Y-%m-%d %H:%M} to {end_at:%Y-%m-%d %H:%M} UTC for {enabled} account(s).")
        try:
            result = simulate_usage(
                accounts=accounts,
                start=start,
                end=end_at,
                records_per_day=records_per_day,
                seed=seed,
                progress=self._progress(enabled),
            )
        except UsageRejected as rejected:
            raise CommandError("Usage refused: " + "; ".join(str(e) for e in rejected.errors[:5])) from None
        rate = result.accepted / result.seconds if result.seconds else 0
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.accepted:,} records accepted, {result.duplicates:,} duplicates skipped, "
                f"{result.accounts} account(s), {result.skipped} skipped, in {result.seconds:.1f} s "
                f"({rate:,.0f} records/s)."
            )
        )

    def _accounts(self, *, manager: str | None, ids: list[str] | None, everyone: bool, demo: bool) -> list[Account]:
        accounts = Account.objects.select_related("manager").order_by("pk")
        if demo:
            return list(accounts.filter(pk__in=demo_accounts().values("pk")))
        if everyone:
            return list(accounts.filter(status=Account.Status.ENABLED))
        if manager:
            return list(accounts.filter(manager=self._manager(manager)))
        found = []
        for value in ids or []:
            try:
                found.append(accounts.get(public_id=uuid.UUID(value)))
            except (ValueError, Account.DoesNotExist):
                raise CommandError(f"No account with the public id {value!r}.") from None
        return found

    def _manager(self, value: str) -> Account:
        managers = Account.objects.filter(kind=Account.Kind.MANAGER)
        try:
            return managers.get(public_id=uuid.UUID(value))
        except (ValueError, Account.DoesNotExist):
            pass
        named = list(managers.filter(name__iexact=value)[:2])
        if len(named) != 1:
            raise CommandError(f"No single manager account with the public id or name {value!r}.")
        return named[0]

    def _end(self, value: str | None) -> datetime:
        now = timezone.now()
        if value is None:
            return now
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise CommandError("--end must be an ISO 8601 instant, e.g. 2026-11-27T12:00:00Z.") from None
        return min(moment if moment.tzinfo else moment.replace(tzinfo=UTC), now)

    def _progress(self, total: int) -> Callable[[int, int, Account, int], None]:
        step = max(1, total // 10) if total > 30 else 1  # every account, or every 10%

        def report(done: int, total: int, account: Account, generated: int) -> None:
            if done % step == 0 or done == total:
                self.stdout.write(f"  {done}/{total} accounts ({account.name}): {generated:,} records generated")

        return report
