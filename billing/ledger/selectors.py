"""Reads of the ledger: who pays for an account's usage, and balances recomputed from the entries."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Sum

from accounts.models import Account
from billing.models import LedgerEntry
from billing.money import to_cents


def billed_party(account: Account) -> Account:
    """The account whose balance pays for `account`'s usage."""
    return account if account.has_own_balance else account.manager


def has_own_balance(account: Account) -> bool:
    return account.has_own_balance


def ledger_sum(account: Account) -> Decimal:
    """The balance recomputed from the entries: what the cached amount must always equal."""
    total = LedgerEntry.objects.filter(account=account).aggregate(total=Sum("amount"))["total"]
    return to_cents(total or Decimal(0))
