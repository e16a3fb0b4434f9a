from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, timedelta

from celery import Task, shared_task
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account
from billing.invoices import close as invoice_close
from billing.invoices.emails import email_invoices  # the close queues it: a task of billing's worker
from billing.ledger import services as ledger
from billing.payments import services as payments
from billing.payments.gateway import ProviderUnavailable
from billing.usage import partitions

logger = logging.getLogger(__name__)

__all__ = ["email_invoices"]  # defined beside the invoice it sends (billing.invoices.emails)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=8)
def charge_usage(account_id: int, month: str) -> None:
    """Posts an account's month-to-date usage charge; idempotent, so retries and repeats are safe."""
    account = Account.objects.select_related("manager").get(pk=account_id)
    ledger.post_usage_charges(account=account, month=date.fromisoformat(month))


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=8)
def charge_usage_many(pairs: list[tuple[int, str]]) -> int:
    """The usage charges of many (account id, "YYYY-MM-01") pairs, as ingestion sends a batch's in
    messages of usage.CHARGES_PER_MESSAGE: per month, the accounts that pay their own usage in one
    set-based transaction, and each manager's roll-up accounts in one more. A group that fails is
    handed to `charge_usage` one pair at a time (with its own retries), so one bad account never
    holds back the others. Returns how many entries it posted."""
    by_month: dict[str, list[int]] = defaultdict(list)
    for account_id, month in pairs:
        by_month[month].append(account_id)
    posted = 0
    for month, ids in sorted(by_month.items()):
        for payer, group in _charge_groups(ids, date.fromisoformat(month)):
            try:
                if payer is None:
                    posted += ledger.post_own_usage_charges(accounts=group, month=date.fromisoformat(month))
                else:
                    posted += ledger.post_usage_charges_for(
                        payer=payer, accounts=group, month=date.fromisoformat(month)
                    )
            except Exception:
                logger.exception("Charging %d account(s) for %s failed; charging them one by one", len(group), month)
                for account in group:
                    charge_usage.delay(account.pk, month)
    return posted


def _charge_groups(account_ids: list[int], month: date) -> list[tuple[Account | None, list[Account]]]:
    """(None, accounts paying their own usage of `month`), then (manager, its roll-up accounts of
    `month`) per manager, by the billing mode in force in that month."""
    accounts = Account.objects.select_related("manager").filter(pk__in=account_ids).order_by("pk")
    own, rolled_up = [], defaultdict(list)
    for account in accounts:
        if account.has_own_balance_in(month):
            own.append(account)
        else:
            rolled_up[account.manager_id].append(account)
    groups = [(None, own)] if own else []
    return groups + [(members[0].manager, members) for _, members in sorted(rolled_up.items())]


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=8)
def close_month(month: str) -> int:
    """Beat starts this early on the 1st (for the month before); it queues the billed parties not
    done yet, in tasks of up to CLOSE_BATCH_SIZE parties (a manager with roll-up accounts alone),
    and returns how many parties it queued."""
    run = invoice_close.start_close(date.fromisoformat(month))
    batches, alone = invoice_close.close_plan(run)
    for account_id in alone:
        close_party.delay(run.pk, account_id)
    for account_ids in batches:
        close_batch.delay(run.pk, account_ids)
    return len(alone) + sum(len(account_ids) for account_ids in batches)


@shared_task(bind=True, acks_late=True, max_retries=8)
def close_party(self: Task[[int, int], str], run_id: int, account_id: int) -> str:
    """One billed party's invoice; idempotent, so a redelivered or retried task changes nothing."""
    try:
        return invoice_close.close_item(run_id=run_id, account_id=account_id).number
    except Exception as failure:
        invoice_close.record_failure(run_id=run_id, account_id=account_id, error=repr(failure))
        raise self.retry(exc=failure, countdown=min(2**self.request.retries * 5, 600)) from failure


@shared_task(bind=True, acks_late=True, max_retries=8)
def close_batch(self: Task[[int, list[int]], int], run_id: int, account_ids: list[int]) -> int:
    """A batch of billed parties without roll-up accounts, set-based in one transaction (one by one
    if that fails); idempotent. Only the parties that failed are retried. Returns how many closed."""
    failures = invoice_close.close_items(run_id=run_id, account_ids=account_ids)
    if failures:
        failed = sorted(failures)
        raise self.retry(
            args=(run_id, failed), exc=failures[failed[0]], countdown=min(2**self.request.retries * 5, 600)
        )
    return len(account_ids)


@shared_task
def apply_billing_mode_changes() -> dict[str, int]:
    """Beat runs this at the top of every hour of the 1st (UTC), the first time before the close of
    the month before: the billing-mode changes due this month take effect (idempotent)."""
    return account_services.apply_billing_mode_changes()


@shared_task
def create_usage_partitions() -> list[str]:
    """Beat runs this daily: this month's usage-records partition and the next ones are made ahead
    (PostgreSQL; billing.usage.partitions), so ingestion never waits on DDL. The months made."""
    return [f"{month:%Y-%m}" for month in partitions.create_ahead(timezone.now().date())]


@shared_task
def close_previous_month() -> int:
    today = timezone.now().date()
    previous = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    return close_month(previous.isoformat())


@shared_task(acks_late=True, max_retries=5)
def auto_recharge(account_id: int, trigger: str) -> str:
    """A debit crossed the account's auto-recharge threshold: claim the attempt (or learn none is
    due), then charge it. Claiming first means a redelivered or doubled task charges nothing twice."""
    payment = payments.claim_auto_recharge(account_id=account_id, trigger=trigger)
    if payment is None:
        return "not due"
    charge_auto_recharge.delay(payment.pk)
    return str(payment.public_id)


@shared_task(bind=True, acks_late=True, max_retries=5)
def charge_auto_recharge(self: Task[[int], str], payment_id: int) -> str:
    """Charges one claimed auto-recharge. Only an unreachable Stripe is retried (same idempotency
    key, growing delay); a declined card is recorded and never retried."""
    try:
        return payments.charge_auto_recharge(payment_id).status
    except ProviderUnavailable as failure:
        if self.max_retries is not None and self.request.retries >= self.max_retries:
            payments.give_up(payment_id, failure.message)
            return "failed"
        raise self.retry(exc=failure, countdown=min(2**self.request.retries * 10, 600)) from failure
