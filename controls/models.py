"""Spend limits: how much a managed account may spend in a month (and a day), and what happens when
it has (an audit event and the reached state, and for "block" no new service until the period ends
or the limit is raised). The block itself is on the account (`Account.service_blocked_reason`), so
that accounts can read it without importing controls."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import cast

from django.conf import settings
from django.db import models
from django.db.models import Case, ExpressionWrapper, F, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.expressions import Expression
from django.db.models.functions import Cast, Coalesce, Greatest

from accounts.models import Account
from billing import pricing
from billing.invoices.lines import markup_factor
from billing.models import DailyUsage, MonthlyUsage, Product, money_field

USE = models.DecimalField(max_digits=34, decimal_places=12)
ROLLUP = Account.BillingMode.ROLLUP


# --- The prices of usage, as SQL ---------------------------------------------------------------------------
# billing.pricing.Prices.cost is the rule; `ResalePrices.cost` is its SQL form for a usage-totals row
# (DailyUsage or MonthlyUsage), with one manager's prices of one month read once, as constants: the
# limits page, one account's limits and the spend-limit check (per manager of the accounts checked).


@dataclass(frozen=True)
class ResalePrices:
    """A manager's resale prices of one month, read once (`of`): its markup and its resale rates in
    force then (at most one a product). `cost` is what a roll-up account of the manager pays for a
    usage-totals row of that month, `platform` what any other account pays."""

    month: date
    markup: Decimal = Decimal("0.00")
    rates: dict[int, Decimal] = field(default_factory=dict)  # product id: resale rate in force

    @classmethod
    def of(cls, manager: Account | None, month: date) -> ResalePrices:
        """Two queries (none without a manager): `billing.pricing`'s own reads of the manager's prices."""
        if manager is None:
            return cls(month)
        timelines = pricing.resale_timelines(manager.pk)
        rates = {pk: rate for pk, t in timelines.items() if (rate := pricing.rate_in(t, month)) is not None}
        return cls(month, pricing.markup_of(manager), rates)

    def cost(self) -> Expression:
        """`Prices.cost` of a row of a roll-up account: quantity x the resale rate of its product,
        else the platform's cost x the markup factor; a CASE of constants, no look-up per row."""
        marked_up = F("cost") * Value(markup_factor(self.markup), output_field=USE)
        if not self.rates:
            return ExpressionWrapper(marked_up, output_field=USE)
        resold = [When(product_id=pk, then=F("quantity") * Value(rate)) for pk, rate in sorted(self.rates.items())]
        return Case(*resold, default=marked_up, output_field=USE)

    @staticmethod
    def platform() -> Expression:
        return ExpressionWrapper(F("cost"), output_field=USE)

    def pays_resale(self, prefix: str = "") -> Q:
        """Whether the account (at `prefix`, e.g. "account__") pays resale prices in the month:
        `Account.has_own_balance_in` negated, as a condition."""
        return _prefixed(Account.billing_mode_is(ROLLUP, self.month), prefix)


def _prefixed(q: Q, prefix: str) -> Q:
    """`q` with every lookup under `prefix` (a relation path ending in "__")."""
    if not prefix:
        return q
    children: list[object] = []
    for child in q.children:
        if isinstance(child, Q):
            children.append(_prefixed(child, prefix))
        else:
            lookup, value = cast(tuple[str, object], child)
            children.append((f"{prefix}{lookup}", value))
    return Q(*children, _connector=q.connector, _negated=q.negated)


def _cost_of(model: type[DailyUsage] | type[MonthlyUsage], cost: Expression, **period: date) -> Expression:
    """A limit's account's cost in the period, each row priced by `cost`: every product, or the limit's one."""
    rows = model.objects.filter(account=OuterRef("account"), **period).order_by().values("account")
    every = rows.annotate(total=Sum(cost)).values("total")
    one = rows.filter(product=OuterRef("product")).annotate(total=Sum(cost)).values("total")
    spent = Case(When(product__isnull=True, then=Subquery(every)), default=Subquery(one), output_field=USE)
    return Coalesce(spent, Value(Decimal(0)), output_field=USE)


class SpendLimitQuerySet(models.QuerySet["SpendLimit"]):
    def with_use(self, *, today: date, prices: ResalePrices) -> SpendLimitQuerySet:
        """Each limit with its account's spend this month and today (`monthly_use`, `daily_use`),
        exact (not yet in cents) at the prices the account pays: `prices`, its manager's (None's for
        an account without one), so every limit of the queryset must be of that manager's accounts."""
        month = today.replace(day=1)
        resale = prices.pays_resale("account__")

        def use(model: type[DailyUsage] | type[MonthlyUsage], **period: date) -> Expression:
            at_resale, at_platform = (_cost_of(model, cost, **period) for cost in (prices.cost(), prices.platform()))
            return Case(When(resale, then=at_resale), default=at_platform, output_field=USE)

        return self.annotate(monthly_use=use(MonthlyUsage, month=month), daily_use=use(DailyUsage, day=today))

    def with_ratio(self, *, today: date, prices: ResalePrices) -> SpendLimitQuerySet:
        """`with_use` and `ratio`: the larger share used of the monthly and the daily amount, for
        sorting nearest to its limit first. A share, not money, so a float: SQLite divides its
        whole-number decimals as integers (money comparisons use cents, `controls.services`)."""
        share = models.FloatField()

        def used(use: str, amount: str) -> Expression:
            return Cast(F(use), share) / Cast(F(amount), share)

        daily = Case(When(daily_amount__isnull=True, then=Value(0.0)), default=used("daily_use", "daily_amount"))
        # Greatest, not a CASE comparing the two: each share (a subquery) once in the SQL, not twice
        ratio = Greatest(used("monthly_use", "monthly_amount"), daily, output_field=share)
        return self.with_use(today=today, prices=prices).annotate(ratio=ratio)


class SpendLimit(models.Model):
    """A monthly (and optionally daily) amount in USD an account may spend, on every product or on
    one. Its manager sets one per managed account and product; a separately billed account's own
    people may set their own, never above the manager's. `*_reached_for` is the period in which the
    amount was last reached: a reached state of a period gone by means nothing, so it resets with
    the period, and a crossing is acted on once (the check changes it by conditional update)."""

    class SetBy(models.TextChoices):
        MANAGER = "manager", "Manager"
        OWNER = "owner", "Account"

    class Action(models.TextChoices):
        ALERT = "alert", "Alert only"
        BLOCK = "block", "Alert and block"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="spend_limits")
    set_by = models.CharField(max_length=10, choices=SetBy.choices)
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    monthly_amount = money_field()
    daily_amount = models.DecimalField(max_digits=20, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.BLOCK)
    monthly_reached_for = models.DateField(null=True, blank=True, help_text="First day of the month it was reached")
    daily_reached_for = models.DateField(null=True, blank=True, help_text="The day it was reached")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SpendLimitQuerySet.as_manager()

    class Meta:
        ordering = ["account_id", "set_by", "product__sku"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "set_by", "product"],
                condition=Q(product__isnull=False),
                name="spend_limit_one_per_product",
            ),
            models.UniqueConstraint(
                fields=["account", "set_by"], condition=Q(product__isnull=True), name="spend_limit_one_for_all"
            ),
            models.CheckConstraint(name="spend_limit_monthly_positive", condition=Q(monthly_amount__gt=0)),
            models.CheckConstraint(
                name="spend_limit_daily_positive", condition=Q(daily_amount__isnull=True) | Q(daily_amount__gt=0)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule} of {self.account_id}"

    @property
    def scope(self) -> str:
        return self.product.name if self.product_id and self.product else "all products"

    @property
    def rule(self) -> str:
        """The rule as the audit log and the pages name it."""
        daily = f", USD {self.daily_amount:,.2f} a day" if self.daily_amount is not None else ""
        who = "manager's" if self.set_by == self.SetBy.MANAGER else "account's own"
        return f"The {who} limit of USD {self.monthly_amount:,.2f} a month{daily} on {self.scope}"
