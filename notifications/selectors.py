"""Reads of notifications: the threshold an account has, and whether its banner shows."""

from __future__ import annotations

from accounts.models import Account
from notifications.models import LowBalanceThreshold


def threshold_of(account: Account) -> LowBalanceThreshold | None:
    return LowBalanceThreshold.objects.filter(account=account).first()


def low_balance(account: Account) -> LowBalanceThreshold | None:
    """The account's threshold while its balance is below it, else None. No query when the account
    came with its threshold joined (accounts.access.account_access, so the banner on every page
    costs nothing), else one."""
    if not account.has_own_balance:
        return None
    if Account.low_balance_threshold.is_cached(account):
        row: LowBalanceThreshold | None = getattr(account, "low_balance_threshold", None)
        return row if row is not None and row.enabled and row.below else None
    return LowBalanceThreshold.objects.filter(account=account, enabled=True, below=True).first()
