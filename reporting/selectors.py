"""Read-side rules of the reports that the pages, their CSV exports and the API share."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from accounts.models import Account
from accounts.selectors import managed_accounts_for
from billing.usage.selectors import AccountScope


def report_accounts(*, account: Account, managed: bool, only: int | None = None) -> AccountScope:
    """Which accounts (as pks) a usage report of `account` covers: the account itself; or, for a
    manager asking for its managed accounts, all of them, or only `only` (the pk of one of them the
    caller has already found among them). All of them is a subquery, not 3,000 ids: the database joins
    the daily totals to the manager's accounts. Only a manager has managed accounts to report on."""
    if not managed:
        return [account.pk]
    if not account.is_manager:
        raise PermissionDenied("Only a manager account has managed accounts to report on.")
    if only is not None:
        return [only]
    return managed_accounts_for(account).order_by().values("pk")
