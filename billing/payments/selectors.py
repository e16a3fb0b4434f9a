"""Reads of an account's cards, payments and auto-recharge settings."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Account
from billing.ledger.selectors import current_balance
from billing.models import AutoRecharge, Payment, PaymentMethod
from billing.money import format_money

DAY = timedelta(hours=24)


def cards_of(account: Account) -> QuerySet[PaymentMethod]:
    return PaymentMethod.objects.filter(account=account).order_by("-is_default", "-created_at", "-id")


def default_card(account: Account) -> PaymentMethod | None:
    return PaymentMethod.objects.filter(account=account, is_default=True).first()


def payments_of(account: Account) -> QuerySet[Payment]:
    return (
        Payment.objects.filter(account=account).select_related("created_by", "acting_as").order_by("-created_at", "-id")
    )


def auto_recharge_of(account: Account) -> AutoRecharge:
    """The account's settings; an unsaved, disabled row with the defaults when it never set any."""
    return AutoRecharge.objects.filter(account=account).first() or AutoRecharge(account=account)


def last_auto_recharge(account: Account) -> Payment | None:
    return (
        Payment.objects.filter(account=account, kind=Payment.Kind.AUTO_RECHARGE).order_by("-created_at", "-id").first()
    )


def auto_recharge_attempts(account: Account) -> int:
    """Auto-recharge attempts in the last 24 hours, whatever became of them: what the cap counts."""
    since = timezone.now() - DAY
    return Payment.objects.filter(account=account, kind=Payment.Kind.AUTO_RECHARGE, created_at__gte=since).count()


def balance_facts(account: Account) -> dict[str, str]:
    balance = current_balance(account)
    return {
        "amount": format_money(balance.amount, balance.currency),
        "available": format_money(balance.available_credit, balance.currency),
    }


def refusal(account: Account) -> str | None:
    """Why `account` can have no cards or payments, or None."""
    if not account.has_own_balance:
        return f"{account.name} is billed to {account.managed_by.name} (roll-up billing): it has no balance or cards."
    return None
