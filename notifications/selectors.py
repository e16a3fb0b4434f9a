"""Reads of notifications: the threshold an account has, and whether its banner shows."""

from __future__ import annotations

from accounts.models import Account
from notifications.models import LowBalanceThreshold


def threshold_of(account: Account) -> LowBalanceThreshold | None:
    return LowBalanceThreshold.objects.filter(account=account).first()


def low_balance(account: Account) -> LowBalanceThreshold | None:
    """The account's threshold while its balance is below it (the banner's one query), else None."""
    if not account.has_own_balance:
        return None
    return LowBalanceThreshold.objects.filter(account=account, enabled=True, below=True).first()
