"""Payments' answers to the ledger's announcements (connected in BillingConfig.ready())."""

from __future__ import annotations

from functools import partial

from django.db import transaction

from billing.ledger.signals import Debit
from billing.models import AutoRecharge
from billing.tasks import auto_recharge


def queue_auto_recharges(sender: object, *, debits: dict[int, Debit], **kwargs: object) -> None:
    """The ledger's `debits_posted`, inside the transaction of the debits: for each that took its
    balance from at or above an enabled threshold to below it, an attempt is queued once the
    transaction commits. One query for all the posting's debits."""
    thresholds = AutoRecharge.objects.filter(account_id__in=list(debits), enabled=True).values_list(
        "account_id", "threshold"
    )
    for account_id, threshold in thresholds:
        debit = debits[account_id]
        if debit.after < threshold <= debit.before:
            transaction.on_commit(partial(_queue_attempt, account_id, f"entry:{debit.entry_id}"))


def _queue_attempt(account_id: int, trigger: str) -> None:
    auto_recharge.delay(account_id, trigger)
