"""Reads of the ledger: who pays for an account's usage, and balances recomputed from the entries."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Sum

from accounts.models import Account
from billing.models import Balance, LedgerEntry
from billing.money import to_cents


def billed_party(account: Account) -> Account:
    """The account whose balance pays for `account`'s usage."""
    return account if account.has_own_balance else account.managed_by


def has_own_balance(account: Account) -> bool:
    return account.has_own_balance


def current_balance(account: Account) -> Balance:
    """The account's balance as it stands, read without creating a row: an account with no entries
    yet has none, and reads as the model's defaults (zero, USD) until its first entry creates it."""
    return Balance.objects.filter(account=account).first() or Balance(account=account)


def transfer_refusal(managed: Account) -> str | None:
    """Why no credit can go to `managed` from its manager, or None: a roll-up account has no balance,
    and a cancelled one would strand credit nobody can use."""
    if not has_own_balance(managed):
        return f"{managed.name} is billed to you (roll-up); it has no balance to transfer to."
    if managed.status == Account.Status.CANCELLED:
        return f"{managed.name} is cancelled; credit cannot be transferred to it."
    return None


def ledger_sum(account: Account) -> Decimal:
    """The balance recomputed from the entries: what the cached amount must always equal."""
    total = LedgerEntry.objects.filter(account=account).aggregate(total=Sum("amount"))["total"]
    return to_cents(total or Decimal(0))
