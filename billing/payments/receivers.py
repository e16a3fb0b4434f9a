"""Payments' answers to the ledger's announcements (connected in BillingConfig.ready())."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

from django.db import transaction

from billing.models import AutoRecharge
from billing.tasks import auto_recharge


def queue_auto_recharge(
    sender: object, *, account_id: int, entry_id: int, before: Decimal, after: Decimal, **kwargs: object
) -> None:
    """The ledger's `debit_posted`, inside the transaction of the debit: if it took the balance from
    at or above an enabled threshold to below it, an attempt is queued once the transaction commits."""
    crossed = AutoRecharge.objects.filter(
        account_id=account_id, enabled=True, threshold__gt=after, threshold__lte=before
    )
    if crossed.exists():
        transaction.on_commit(partial(_queue_attempt, account_id, f"entry:{entry_id}"))


def _queue_attempt(account_id: int, trigger: str) -> None:
    auto_recharge.delay(account_id, trigger)
