"""Reads of controls: the limits page of a manager, and one account's limits, with their spend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any, overload

from django.db import connection
from django.db.models import Case, OuterRef, Prefetch, Subquery, Sum, Value, When
from django.db.models.expressions import Expression
from django.db.models.functions import Coalesce

from accounts.models import Account
from billing.models import DailyUsage, MonthlyUsage
from billing.money import to_cents
from controls.models import USE, ResalePrices, SpendLimit


def limits_overview(manager: Account, *, today: date) -> LimitsOverview:
    """Every managed account of `manager` (cancelled ones aside) with its limits and this month's
    spend at the prices it pays (`month_spend`), and `nearest`: the largest share of a limit it has
    used (None without limits), nearest to its limit first. A fixed number of queries a page."""
    return LimitsOverview(manager, today=today, prices=ResalePrices.of(manager, today.replace(day=1)))


class LimitsOverview:
    """The limits page's accounts, for its table like a queryset (`count`, `order_by`, slices): all
    the accounts sorted by one set-based query (`_ranking_sql`: each usage-totals row of the month
    and the day priced once, at the manager's prices read once, then summed per account and per
    limit), and only the page's accounts loaded, with their spend and limits."""

    model = Account
    ORDER = {  # sort key: SQL of the ranking query (`nearest` without limits last either way)
        "nearest": "CASE WHEN nearest.ratio IS NULL THEN 1 ELSE 0 END, nearest.ratio {}",
        "month_spend": "COALESCE(spend.spent, 0) {}",
        "name": "account.name {}",
        "pk": "account.id {}",
    }

    def __init__(
        self, manager: Account, *, today: date, prices: ResalePrices, ordering: tuple[str, ...] = ("-nearest",)
    ) -> None:
        unknown = {key.lstrip("-") for key in ordering} - set(self.ORDER)
        if unknown:
            raise ValueError(f"The limits page sorts by {sorted(self.ORDER)}, not {sorted(unknown)}.")
        self.manager, self.today, self.prices, self.ordering = manager, today, prices, ordering
        self._ranked: list[tuple[int, float | None]] | None = None

    def order_by(self, *keys: str) -> LimitsOverview:
        return LimitsOverview(self.manager, today=self.today, prices=self.prices, ordering=keys)

    def count(self) -> int:
        return len(self._ranking())

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[Account]:
        return iter(self[:])

    @overload
    def __getitem__(self, key: int) -> Account: ...
    @overload
    def __getitem__(self, key: slice) -> list[Account]: ...
    def __getitem__(self, key: int | slice) -> Account | list[Account]:
        if isinstance(key, slice):
            return self._load(self._ranking()[key])
        return self._load([self._ranking()[key]])[0]

    def _ranking(self) -> list[tuple[int, float | None]]:
        if self._ranked is None:
            sql, params = _ranking_sql(self.manager, today=self.today, prices=self.prices, ordering=self.ordering)
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                self._ranked = [(pk, ratio) for pk, ratio in cursor.fetchall()]
        return self._ranked

    def _load(self, ranked: list[tuple[int, float | None]]) -> list[Account]:
        """The ranked accounts with their spend and limits: two queries for any number of them."""
        accounts = (
            Account.objects.filter(pk__in=[pk for pk, _ in ranked])
            .select_related("manager")
            .annotate(month_spend=month_spend(self.prices))
            .prefetch_related(limits_prefetch(self.today, self.prices))
            .in_bulk()
        )
        for pk, ratio in ranked:
            accounts[pk].nearest = ratio  # type: ignore[attr-defined]
        return [accounts[pk] for pk, _ in ranked]


def month_spend(prices: ResalePrices) -> Expression:
    """An account's spend in `prices.month` at the prices it pays, exact."""
    month = MonthlyUsage.objects.filter(account=OuterRef("pk"), month=prices.month).order_by().values("account")

    def spent(cost: Expression) -> Subquery:
        return Subquery(month.annotate(total=Sum(cost)).values("total"))

    at_resale, at_platform = spent(prices.cost()), spent(prices.platform())
    cost = Case(When(prices.pays_resale(), then=at_resale), default=at_platform, output_field=USE)
    return Coalesce(cost, Value(Decimal(0)), output_field=USE)


def _ranking_sql(
    manager: Account, *, today: date, prices: ResalePrices, ordering: tuple[str, ...]
) -> tuple[str, tuple[Any, ...]]:
    """The ids of the manager's managed accounts (cancelled ones aside) and their `nearest` share,
    sorted by `ordering`, in one query: the month's and the day's totals of its accounts priced
    and summed per account and product (`_priced_totals`, from the ORM), then per limit (every
    product, or its one) and per account; no subquery per account or per row."""
    month_sql, month_params = _priced_totals(MonthlyUsage, manager, prices, month=prices.month)
    day_sql, day_params = _priced_totals(DailyUsage, manager, prices, day=today)
    account, limit = Account._meta.db_table, SpendLimit._meta.db_table
    order = ", ".join(
        LimitsOverview.ORDER[key.lstrip("-")].format("DESC" if key.startswith("-") else "ASC")
        for key in (*ordering, "pk")
    )
    # Only table names, ORM-compiled SQL and the ORDER map's own text are put in; values are params.
    sql = f"""
        WITH month_use AS ({month_sql}), day_use AS ({day_sql}),
        limits AS (
            SELECT l.id, l.account_id, l.product_id, l.monthly_amount, l.daily_amount
            FROM {limit} l INNER JOIN {account} a ON a.id = l.account_id WHERE a.manager_id = %s
        ),
        month_of_limit AS (
            SELECT l.id, SUM(u.spent) AS used FROM limits l INNER JOIN month_use u
            ON u.account_id = l.account_id AND (l.product_id IS NULL OR u.product_id = l.product_id) GROUP BY l.id
        ),
        day_of_limit AS (
            SELECT l.id, SUM(u.spent) AS used FROM limits l INNER JOIN day_use u
            ON u.account_id = l.account_id AND (l.product_id IS NULL OR u.product_id = l.product_id)
            WHERE l.daily_amount IS NOT NULL GROUP BY l.id
        ),
        shares AS (
            SELECT l.account_id,
                CAST(COALESCE(m.used, 0) AS DOUBLE PRECISION) / CAST(l.monthly_amount AS DOUBLE PRECISION) AS monthly,
                CASE WHEN l.daily_amount IS NULL THEN 0.0
                ELSE CAST(COALESCE(d.used, 0) AS DOUBLE PRECISION) / CAST(l.daily_amount AS DOUBLE PRECISION)
                END AS daily
            FROM limits l LEFT JOIN month_of_limit m ON m.id = l.id LEFT JOIN day_of_limit d ON d.id = l.id
        ),
        nearest AS (
            SELECT account_id, MAX(CASE WHEN daily > monthly THEN daily ELSE monthly END) AS ratio
            FROM shares GROUP BY account_id
        ),
        spend AS (SELECT account_id, SUM(spent) AS spent FROM month_use GROUP BY account_id)
        SELECT account.id, nearest.ratio FROM {account} account
        LEFT JOIN nearest ON nearest.account_id = account.id LEFT JOIN spend ON spend.account_id = account.id
        WHERE account.manager_id = %s AND account.status <> %s
        ORDER BY {order}"""  # noqa: S608 (as the comment above)
    params = (*month_params, *day_params, manager.pk, manager.pk, Account.Status.CANCELLED.value)
    return sql, params


def _priced_totals(
    model: type[DailyUsage] | type[MonthlyUsage], manager: Account, prices: ResalePrices, **period: date
) -> tuple[str, tuple[Any, ...]]:
    """SQL of the period's totals of the manager's accounts per account and product (`account_id`,
    `product_id`, `spent`), each row at the prices its account pays (`ResalePrices`)."""
    cost = Case(When(prices.pays_resale("account__"), then=prices.cost()), default=prices.platform(), output_field=USE)
    rows = model.objects.filter(account__manager=manager, **period).order_by().values("account_id", "product_id")
    sql, params = rows.annotate(spent=Sum(cost)).query.sql_with_params()
    return sql, tuple(params)


def limits_prefetch(today: date, prices: ResalePrices) -> Prefetch[str]:
    return Prefetch(
        "spend_limits",
        queryset=SpendLimit.objects.with_ratio(today=today, prices=prices)
        .select_related("product")
        .order_by("set_by", "product__sku"),
    )


def limits_of(account: Account, *, today: date) -> list[SpendLimit]:
    prices = ResalePrices.of(account.manager if account.is_managed else None, today.replace(day=1))
    return list(
        SpendLimit.objects.filter(account=account)
        .with_ratio(today=today, prices=prices)
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
