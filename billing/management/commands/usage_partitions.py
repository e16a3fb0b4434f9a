from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.usage import partitions


def _month(value: str) -> date:
    try:
        year, number = (int(part) for part in value.split("-"))
        return date(year, number, 1)
    except ValueError:
        raise CommandError(f"'{value}' is not a month: write it like 2026-10.") from None


class Command(BaseCommand):
    help = (
        "Usage records' monthly partitions on PostgreSQL: list them (the default), make the coming "
        "months' ahead (--ahead N, what beat does daily), or detach a closed month (--detach YYYY-MM) "
        "so that its records can be archived with pg_dump -t and dropped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ahead", type=int, help="Make this month's partition and the next N months'")
        parser.add_argument("--detach", metavar="YYYY-MM", help="Detach a closed month's partition")

    def handle(self, *args: Any, ahead: int | None, detach: str | None, **options: Any) -> None:
        if not partitions.is_partitioned():
            raise CommandError("Usage records are partitioned by month on PostgreSQL only: this database has one.")
        today = timezone.now().date()
        if ahead is not None:
            if ahead < 0:
                raise CommandError("--ahead is a number of months, 0 or more.")
            made = partitions.create_ahead(today, ahead=ahead)
            self.stdout.write(f"Made {len(made)}: {', '.join(f'{m:%Y-%m}' for m in made) or 'none missing'}.")
        if detach is not None:
            try:
                table = partitions.detach(_month(detach), today=today)
            except partitions.PartitionError as refusal:
                raise CommandError(str(refusal)) from None
            self.stdout.write(
                f"Detached {detach}: its records are now the table {table}, outside the usage records. "
                f"Archive it (pg_dump -t {table}) and then DROP TABLE {table}. The month's totals, "
                "invoices and ledger stay."
            )
        for partition in partitions.partitions():
            label = "default" if partition.month is None else f"{partition.month:%Y-%m}"
            rows = "not analysed yet" if partition.rows < 0 else f"about {partition.rows:,} records"
            self.stdout.write(f"{label:8} {partition.name}: {rows}")
