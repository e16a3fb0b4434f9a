"""Reads of an account's cards, payments and auto-recharge settings."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from accounts.models import Account
from billing.ledger.selectors import current_balance
from billing.models import AutoRecharge, Payment, PaymentMethod
from billing.money import format_money

DAY = timedelta(hours=24)

# A pending payment with no PaymentIntent after this long was never sent: no money moved.
ABANDONED_AFTER = timedelta(minutes=15)


def cards_of(account: Account) -> QuerySet[PaymentMethod]:
    return PaymentMethod.objects.filter(account=account).order_by("-is_default", "-created_at", "-id")


def default_card(account: Account) -> PaymentMethod | None:
    return PaymentMethod.objects.filter(account=account, is_default=True).first()


def payments_of(account: Account) -> QuerySet[Payment]:
    return (
        Payment.objects.filter(account=account).select_related("created_by", "acting_as").order_by("-created_at", "-id")
    )


def pending_payments_total(account: Account) -> Decimal:
    """What the account's card payments may still add to its balance: the `pending` of `GET /balance`
    and of the balance page. A pending payment counts while money may yet move: it has a PaymentIntent
    (Stripe may have taken the money, or may once the bank answers), or it was claimed less than
    ABANDONED_AFTER ago and its PaymentIntent is being created. One older than that with no
    PaymentIntent does not count: it was never sent to Stripe, so nothing was charged and nothing
    will be (`services.refresh` marks it failed). Succeeded payments are in the balance already."""
    stale = Q(stripe_payment_intent_id__isnull=True, created_at__lt=timezone.now() - ABANDONED_AFTER)
    pending = Payment.objects.filter(account=account, status=Payment.Status.PENDING).exclude(stale)
    total: Decimal = pending.aggregate(total=Sum("amount", default=Decimal("0.00")))["total"]
    return total


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
