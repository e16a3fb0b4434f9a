"""Reads of the ledger: who pays for an account's usage, and balances recomputed from the entries."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db.models import Sum

from accounts.models import Account
from billing.models import Balance, LedgerEntry
from billing.money import to_cents


def billed_party(account: Account, month: date | None = None) -> Account:
    """The account whose balance pays for `account`'s usage of `month` (this month by default),
    by the billing mode in force in that month (Account.billing_mode_in)."""
    return account if account.has_own_balance_in(month) else account.managed_by


def has_own_balance(account: Account, month: date | None = None) -> bool:
    return account.has_own_balance_in(month)


def owes_from_separate_billing(account: Account) -> bool:
    """A roll-up account that still owes on its own balance: the usage of its last separately
    billed month charged after it went to roll-up (accounts.services.billing_mode_refusal). Its
    manager may settle that with a transfer, up to what it owes."""
    return not has_own_balance(account) and Balance.objects.filter(account=account, amount__lt=0).exists()


def current_balance(account: Account) -> Balance:
    """The account's balance as it stands, read without creating a row: an account with no entries
    yet has none, and reads as the model's defaults (zero, USD) until its first entry creates it."""
    return Balance.objects.filter(account=account).first() or Balance(account=account)


def transfer_refusal(managed: Account, *, to_manager: bool = False) -> str | None:
    """Why no credit can go to `managed` from its manager (or, `to_manager`, back from it), or None:
    a roll-up account has no balance, and a cancelled one would strand credit nobody can use (what
    it holds may still go back to its manager)."""
    if not has_own_balance(managed) and (to_manager or not owes_from_separate_billing(managed)):
        direction = "from" if to_manager else "to"
        return f"{managed.name} is billed to you (roll-up); it has no balance to transfer {direction}."
    if managed.status == Account.Status.CANCELLED and not to_manager:
        return f"{managed.name} is cancelled; credit cannot be transferred to it."
    return None


def ledger_sum(account: Account) -> Decimal:
    """The balance recomputed from the entries: what the cached amount must always equal."""
    total = LedgerEntry.objects.filter(account=account).aggregate(total=Sum("amount"))["total"]
    return to_cents(total or Decimal(0))
