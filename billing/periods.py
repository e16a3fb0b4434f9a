"""Calendar months in UTC: the billing period of usage, charges and invoices."""

from __future__ import annotations

from datetime import UTC, date, datetime


def month_start(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)
