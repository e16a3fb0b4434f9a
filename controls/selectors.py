"""Reads of controls: the limits page of a manager, and one account's limits, with their spend."""

from __future__ import annotations

from datetime import date

from django.db.models import F, OuterRef, Prefetch, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from accounts.models import Account
from accounts.selectors import managed_accounts_for
from billing.models import MonthlyUsage
from billing.money import to_cents
from controls.models import USE, SpendLimit, priced_cost


def limits_overview(manager: Account, *, today: date) -> QuerySet[Account]:
    """Every managed account of `manager` (cancelled ones aside) with its limits and this month's
    spend at the prices it pays, and `nearest`: the largest share of a limit it has used (None
    without limits), for sorting nearest to its limit first. A fixed number of queries a page."""
    nearest = SpendLimit.objects.filter(account=OuterRef("pk")).with_ratio(today=today).order_by(F("ratio").desc())
    month = MonthlyUsage.objects.filter(account=OuterRef("pk"), month=today.replace(day=1)).order_by()
    month_cost = month.values("account").annotate(total=Sum(priced_cost("month"))).values("total")
    return (
        managed_accounts_for(manager)
        .exclude(status=Account.Status.CANCELLED)
        .select_related("manager")
        .annotate(
            nearest=Subquery(nearest.values_list(F("ratio"))[:1]),
            month_spend=Coalesce(Subquery(month_cost), Value(0), output_field=USE),
        )
        .prefetch_related(limits_prefetch(today))
    )


def limits_prefetch(today: date) -> Prefetch[str]:
    return Prefetch(
        "spend_limits",
        queryset=SpendLimit.objects.with_ratio(today=today)
        .select_related("product")
        .order_by("set_by", "product__sku"),
    )


def limits_of(account: Account, *, today: date) -> list[SpendLimit]:
    return list(
        SpendLimit.objects.filter(account=account)
        .with_ratio(today=today)
        .select_related("product")
        .order_by("set_by", "product__sku")
    )


def limit_state(limit: SpendLimit, *, today: date) -> str:
    """ "reached" (this month or today), "near" (80 % or more) or "" for a limit with its use loaded."""
    if limit.monthly_reached_for == today.replace(day=1) or limit.daily_reached_for == today:
        return "reached"
    return "near" if limit.ratio >= NEAR else ""  # type: ignore[attr-defined]


NEAR = 0.8


def spend_cents(limit: SpendLimit) -> tuple[str, str | None]:
    """This month's and today's spend under `limit`, in cents, as text."""
    monthly = f"{to_cents(limit.monthly_use):,.2f}"  # type: ignore[attr-defined]
    daily = f"{to_cents(limit.daily_use):,.2f}" if limit.daily_amount is not None else None  # type: ignore[attr-defined]
    return monthly, daily
