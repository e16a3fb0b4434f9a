"""Controls' answers to what billing announces (connected in ControlsConfig.ready())."""

from __future__ import annotations

from decimal import Decimal

from accounts.models import Account, ServiceBlock
from controls import services
from controls.tasks import check_accounts

CHECKS_PER_MESSAGE = 1000


def check_after_batch(sender: object, *, batch_id: int, account_ids: list[int], **kwargs: object) -> None:
    """A usage batch's new records committed: its accounts' limits are checked by a task (ingestion
    never waits on it), set-based, a message per CHECKS_PER_MESSAGE accounts."""
    for start in range(0, len(account_ids), CHECKS_PER_MESSAGE):
        check_accounts.delay(account_ids[start : start + CHECKS_PER_MESSAGE])


def check_after_debits(sender: object, *, after: dict[int, Decimal], **kwargs: object) -> None:
    """Debits (usage charges, a transfer out) that used up the credit block their accounts in the
    debits' own transaction, so the block commits with them, once (an account already blocked for
    it is left alone). Set-based: one query for all the posting's accounts, and one check for those
    that crossed. A balance still above zero has credit left whatever its limit: no query for it."""
    low = [pk for pk, amount in after.items() if amount <= 0]
    if not low:
        return
    rows = Account.objects.filter(pk__in=low).values_list("pk", "service_blocked_reason", "balance__credit_limit")
    crossed = [
        pk for pk, reason, limit in rows if reason != ServiceBlock.CREDIT_EXHAUSTED and after[pk] + (limit or 0) <= 0
    ]
    if crossed:
        services.check_accounts(account_ids=sorted(crossed))


def check_after_credit(sender: object, *, account_id: int, available: Decimal, **kwargs: object) -> None:
    """A top-up, transfer in or credit-limit change: checked at once, in its own transaction, so the
    block lifts (or, for a lowered credit limit, is set) together with the money's movement."""
    if available <= 0 or Account.objects.filter(pk=account_id).exclude(service_blocked_reason="").exists():
        services.check_accounts(account_ids=[account_id])
