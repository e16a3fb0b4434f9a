import time
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.invoices import close as invoice_close
from billing.tasks import close_month


class Command(BaseCommand):
    help = "Run (or re-run) the monthly close of a month: one invoice per billed party. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--month", required=True, help="YYYY-MM (UTC)")
        parser.add_argument(
            "--inline", action="store_true", help="Invoice every party in this process instead of queueing tasks"
        )

    def handle(self, *args: Any, month: str, inline: bool, **options: Any) -> None:
        try:
            year, number = (int(part) for part in month.split("-"))
            period = date(year, number, 1)
        except ValueError:
            raise CommandError("--month must look like 2026-10.") from None
        if period >= timezone.now().date().replace(day=1):
            raise CommandError(f"{period:%Y-%m} is not over yet; only past months can be closed.")
        began = time.monotonic()
        if inline:
            run = invoice_close.start_close(period)
            batches, alone = invoice_close.close_plan(run)
            for account_id in alone:
                try:
                    invoice_close.close_item(run_id=run.pk, account_id=account_id)
                except Exception as failure:  # one party's failure must not stop the others
                    invoice_close.record_failure(run_id=run.pk, account_id=account_id, error=repr(failure))
                    self.stderr.write(f"Account {account_id} failed: {failure!r}")
            for account_ids in batches:  # a failing party is closed alone and recorded, the others done
                for account_id, error in invoice_close.close_items(run_id=run.pk, account_ids=account_ids).items():
                    self.stderr.write(f"Account {account_id} failed: {error!r}")
        else:
            queued = close_month(period.isoformat())
            self.stdout.write(f"Queued {queued} billed part(ies); progress is in the close-run table.")
        progress = invoice_close.close_progress(period)
        self.stdout.write(
            f"Close of {period:%Y-%m}: {progress['done']} of {progress['total']} done, "
            f"{progress['failed']} failed, {time.monotonic() - began:.1f} s"
        )
