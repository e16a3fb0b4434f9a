from datetime import date

from celery import shared_task

from accounts.models import Account
from billing import ledger


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=8)
def charge_usage(account_id: int, month: str) -> None:
    """Posts an account's month-to-date usage charge; idempotent, so retries and repeats are safe."""
    account = Account.objects.select_related("manager").get(pk=account_id)
    ledger.post_usage_charges(account=account, month=date.fromisoformat(month))
