from __future__ import annotations

from celery import shared_task

from controls import services

SWEEP_CHUNK = 1000


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=8)
def check_accounts(account_ids: list[int]) -> int:
    """Checks the accounts' limits and credit (controls.services.check_accounts); idempotent, so a
    retried or doubled task changes nothing more. Returns how many blocks it set or lifted."""
    result = services.check_accounts(account_ids=account_ids)
    return result.blocked + result.unblocked


@shared_task
def check_period_start() -> int:
    """Beat runs this at the top of every hour (so at the start of each day and month, UTC): blocks
    whose period ended are lifted and audited, and credit used up without a block is blocked. The
    pages and the simulator already treat an ended block as lifted (`Account.service_block`).
    Returns how many accounts it queued."""
    ids = services.accounts_due_a_check()
    for start in range(0, len(ids), SWEEP_CHUNK):
        check_accounts.delay(ids[start : start + SWEEP_CHUNK])
    return len(ids)
