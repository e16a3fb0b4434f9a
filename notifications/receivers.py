"""What notifications does when the ledger and the audit log announce something (connected in
NotificationsConfig.ready()). Each runs inside the announcing transaction."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from accounts.models import AuditEvent
from notifications import services


def balance_after_debits(sender: object, *, after: dict[int, Decimal], **kwargs: Any) -> None:
    """Debits lowered these balances: each that crossed below its threshold is marked low, once."""
    services.balances_lowered(after)


def balance_after_credit(sender: object, *, account_id: int, **kwargs: Any) -> None:
    """A credit or a credit-limit change: a low balance back above its threshold is marked recovered."""
    services.balance_raised(account_id)


def alerts_for_events(sender: type[AuditEvent], events: Sequence[AuditEvent], **kwargs: Any) -> None:
    """The alert e-mails of the events just recorded: recipients chosen now, sent after commit."""
    services.queue_alert_emails(events)
