"""The overviews: what each person sees first (issue 14 item 2). Read-only, over billing's selectors.

A manager's overview reads a constant number of queries whatever its number of managed accounts:
its balance, its month-to-date spend by day (the daily totals of itself and its roll-up accounts),
the managed-account counts, the accounts needing attention (one aggregate and one page of rows),
the top accounts by spend (the monthly totals, grouped in the database, then those accounts' names)
and its latest audit events. A managed or standard account's overview reads its balance, its
month-to-date usage per product and its last invoice. Each part is read only when the person may
see it (the Permissions flags), so a role that is not shown a part costs no query for it.

Month to date is the current UTC calendar month, from its first day to today, as billing's months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple
from uuid import UUID

from django.db.models import Count, F, Q, Sum

from accounts import selectors as account_selectors
from accounts.audit import latest_events_for_account
from accounts.models import Account, AuditEvent, ServiceBlock
from accounts.permissions import Permissions
from billing.invoices.lines import shown_amounts
from billing.invoices.selectors import invoices_of
from billing.ledger.selectors import current_balance, has_own_balance
from billing.models import Balance, Invoice, MonthlyUsage, Product
from billing.pricing import Prices, prices_for
from billing.usage.selectors import GROUP_BY_PRODUCT, UsageRow, daily_usage, usage_summary
from reporting import charts

CURRENCY = "USD"  # the catalogue's one currency: usage costs are in it
# A separately billed account whose balance is below this (and not negative) has a low balance:
# the default auto-recharge threshold, the amount at which the portal would top it up.
LOW_BALANCE = Decimal("10.00")
TOP_ACCOUNTS = 10
ATTENTION_ROWS = 10
RECENT_EVENTS = 8


def month_to_date(today: date | None = None) -> tuple[date, date]:
    """The first day of the current UTC month and today."""
    today = today or datetime.now(UTC).date()
    return today.replace(day=1), today


# --- A manager's overview ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DaySpend:
    day: date
    cost: Decimal


@dataclass(frozen=True)
class Spend:
    """Month-to-date spend by day, every day of the month so far (zero where nothing was used)."""

    days: list[DaySpend]
    total: Decimal
    chart: charts.Chart  # the same days drawn (reporting.charts), its figures as a table beside it
    currency: str = CURRENCY


@dataclass(frozen=True)
class AccountSpend:
    public_id: UUID
    name: str
    billing_mode: str
    cost: Decimal
    records: int


@dataclass(frozen=True)
class Attention:
    """One managed account needing attention and why (`reasons`, in words)."""

    public_id: UUID
    name: str
    status: str
    balance: Decimal | None  # None: not shown (roll-up, or balances not visible to this person)
    reasons: list[str]


@dataclass(frozen=True)
class AttentionSummary:
    rows: list[Attention]  # the first ATTENTION_ROWS, lowest balances first
    negative: int
    low: int
    disabled: int
    total: int  # accounts (an account with two reasons counts once)

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


@dataclass(frozen=True)
class ManagerOverview:
    in_use: int  # managed accounts counting against the limit (all but cancelled)
    limit: int
    counts: dict[str, int]  # managed accounts per status
    attention: AttentionSummary
    balance: Balance | None = None  # view_billing
    spend: Spend | None = None  # view_billing or view_reports
    top: list[AccountSpend] | None = None  # view_billing or view_reports
    activity: list[AuditEvent] | None = None  # manage_account (the audit log's readers)


def manager_overview(*, manager: Account, can: Permissions, today: date | None = None) -> ManagerOverview:
    start, end = month_to_date(today)
    money = can.view_billing or can.view_reports
    counts = account_selectors.managed_account_counts(manager)
    return ManagerOverview(
        # accounts.services.active_managed_count (all but cancelled), from the counts per status
        in_use=sum(counts.values()) - counts[Account.Status.CANCELLED],
        limit=manager.managed_account_limit or 0,
        counts=counts,
        attention=accounts_needing_attention(manager=manager, balances=can.view_billing),
        balance=current_balance(manager) if can.view_billing else None,
        spend=manager_spend(manager=manager, start=start, end=end) if money else None,
        top=top_accounts_by_spend(manager=manager, month=start) if money else None,
        activity=latest_events_for_account(manager, RECENT_EVENTS) if can.manage_account else None,
    )


def manager_spend(*, manager: Account, start: date, end: date) -> Spend:
    """What the manager pays for the days from `start` to `end`: its own usage and its roll-up
    accounts', at the rates they were rated at (the platform's to the manager, negotiated or custom);
    a separately billed account pays its own. One grouped query over the daily totals, of the cost
    alone (what the chart and its table show): an index-only read on PostgreSQL (billing migration
    0016), the payers' days of the month so far and nothing else."""
    payers = (Account.objects.filter(pk=manager.pk) | Account.objects.rollups_of(manager)).order_by().values("pk")
    rows = (
        daily_usage(accounts=payers, start=start, end=end, product=None)
        .values("day")
        .annotate(cost=Sum("cost"))
        .order_by()
    )
    by_day: dict[date, Decimal] = {row["day"]: row["cost"] for row in rows}
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    series = [DaySpend(day=day, cost=by_day.get(day, Decimal(0))) for day in days]
    chart = charts.time_chart(
        [(d.day, d.cost) for d in series],
        start=start,
        end=end,
        measure=charts.cost_measure(CURRENCY),
        title="Spend this month by day",
        bucket=charts.BUCKET_DAY,
    )
    return Spend(days=series, total=sum((d.cost for d in series), Decimal(0)), chart=chart)


def top_accounts_by_spend(*, manager: Account, month: date, limit: int = TOP_ACCOUNTS) -> list[AccountSpend]:
    """The manager's managed accounts with the highest cost in the month so far, at the rates their
    usage was rated at. The monthly totals (kept with every batch) grouped and cut in the database,
    then the names of those few accounts: two queries at any number of managed accounts."""
    managed = Account.objects.filter(manager=manager).order_by().values("pk")
    ranked = list(
        MonthlyUsage.objects.filter(account__in=managed, month=month)
        .values("account_id")
        .annotate(cost=Sum("cost"), records=Sum("records"))
        .order_by("-cost", "account_id")[:limit]
    )
    if not ranked:
        return []
    names = Account.objects.only("public_id", "name", "billing_mode").in_bulk([row["account_id"] for row in ranked])
    return [
        AccountSpend(
            public_id=names[row["account_id"]].public_id,
            name=names[row["account_id"]].name,
            billing_mode=names[row["account_id"]].get_billing_mode_display(),
            cost=row["cost"],
            records=row["records"],
        )
        for row in ranked
    ]


def accounts_needing_attention(*, manager: Account, balances: bool) -> AttentionSummary:
    """The managed accounts (not cancelled) that are disabled, or, where `balances` may be shown,
    billed separately with a negative or low balance (below LOW_BALANCE). One aggregate for the
    counts, one query for the first rows (lowest balance first, then by name)."""
    accounts = account_selectors.with_balances(
        Account.objects.filter(manager=manager).exclude(status=Account.Status.CANCELLED)
    )
    separate = Q(billing_mode=Account.BillingMode.SEPARATE)
    negative = separate & Q(balance_amount__lt=0)
    low = separate & Q(balance_amount__gte=0, balance_amount__lt=LOW_BALANCE)
    disabled = Q(status=Account.Status.DISABLED)
    needing = (negative | low | disabled) if balances else disabled
    counts = accounts.aggregate(
        negative=Count("pk", filter=negative),
        low=Count("pk", filter=low),
        disabled=Count("pk", filter=disabled),
        total=Count("pk", filter=needing),
    )
    rows = accounts.filter(needing).order_by(F("balance_amount").asc(nulls_last=True), "name", "pk")
    return AttentionSummary(
        rows=[_attention(account, balances=balances) for account in rows[:ATTENTION_ROWS]],
        negative=counts["negative"] if balances else 0,
        low=counts["low"] if balances else 0,
        disabled=counts["disabled"],
        total=counts["total"],
    )


def _attention(account: Account, *, balances: bool) -> Attention:
    amount: Decimal | None = getattr(account, "balance_amount", None) if balances else None
    reasons = []
    if amount is not None and amount < 0:
        reasons.append("Negative balance")
    elif amount is not None and amount < LOW_BALANCE:
        reasons.append("Low balance")
    if account.status == Account.Status.DISABLED:
        reasons.append("Disabled")
    return Attention(
        public_id=account.public_id,
        name=account.name,
        status=account.get_status_display(),
        balance=amount,
        reasons=reasons,
    )


# --- A managed or standard account's overview ---------------------------------------------------------


@dataclass(frozen=True)
class UsageLine:
    """One product's month-to-date usage; `cost` only where the account may see pricing."""

    label: str
    unit: str
    quantity: Decimal
    records: int
    cost: Decimal | None


@dataclass(frozen=True)
class ServiceAlert:
    """Why the account gets no new service now (`Account.service_block`), in words for its people."""

    reason: str  # a ServiceBlock value
    label: str
    message: str
    until: datetime | None  # when a spend limit's block ends by itself (its day or month)


@dataclass(frozen=True)
class AccountOverview:
    billed_to: Account | None  # the manager paying a roll-up account's usage; None: it holds a balance
    balance: Balance | None = None  # view_billing, where the account holds one
    usage: list[UsageLine] | None = None  # view_billing or view_reports
    usage_cost: Decimal | None = None  # the month's cost so far, where pricing is seen
    chart: charts.Chart | None = None  # the month so far by day, where usage is shown and there is some
    last_invoice: Invoice | None = None  # view_billing
    currency: str = CURRENCY


def account_overview(*, account: Account, can: Permissions, today: date | None = None) -> AccountOverview:
    start, end = month_to_date(today)
    own = has_own_balance(account)
    usage: MonthUsage | None = None
    chart: charts.Chart | None = None
    if can.view_billing or can.view_reports:
        prices = prices_for(account) if can.see_pricing else None  # the one rule: what the account pays
        usage = month_usage(account=account, start=start, end=end, prices=prices)
        if usage.lines:
            chart = month_chart(account=account, start=start, end=end, prices=prices)
    return AccountOverview(
        billed_to=None if own else account.managed_by,
        balance=current_balance(account) if own and can.view_billing else None,
        usage=usage.lines if usage else None,
        usage_cost=usage.total if usage else None,
        chart=chart,
        last_invoice=invoices_of(account).first() if can.view_billing else None,
    )


def service_alert(account: Account) -> ServiceAlert | None:
    """The account's service block in words, or None while it is in service. A roll-up account is
    told its provider stopped it, never why (its manager's credit is the manager's business)."""
    reason = account.service_block
    if not reason:
        return None
    until = account.service_blocked_until if reason == ServiceBlock.SPEND_LIMIT else None
    messages = {
        ServiceBlock.SPEND_LIMIT: "A spend limit is reached: new calls and messages are stopped"
        + (" until the limit's period ends." if until else " until the limit is raised or removed."),
        ServiceBlock.CREDIT_EXHAUSTED: "The balance and credit are used up: new calls and messages are stopped "
        "until the account is topped up or its credit limit raised.",
        ServiceBlock.MANAGER_BLOCKED: f"{account.manager.name if account.manager else 'Your provider'} has "
        "stopped new service for this account: new calls and messages are refused. Ask them to restore it.",
        ServiceBlock.ACCOUNT_DISABLED: "The account is disabled: new calls and messages are refused.",
    }
    return ServiceAlert(
        reason=reason, label=account.service_block_display, message=messages[ServiceBlock(reason)], until=until
    )


def month_chart(*, account: Account, start: date, end: date, prices: Prices | None) -> charts.Chart:
    """The account's usage from `start` to `end` by day (reporting.charts' SVG and its table): its
    cost where it sees pricing (`prices`, billing.pricing.prices_for: each day priced as an invoice
    section is, `Prices.section`, so a roll-up account's days are at its manager's resale prices),
    else the quantity of its most used unit, as minutes never add up with messages. One query over
    the daily totals."""
    if prices is not None:
        measure = charts.cost_measure(CURRENCY)
        by_day: dict[date, list[tuple[int, Decimal, Decimal]]] = {}
        daily = daily_usage(accounts=[account.pk], start=start, end=end, product=None)
        rows = daily.values("day", "product_id").annotate(q=Sum("quantity"), c=Sum("cost"))
        for row in rows.order_by("day", "product_id"):
            by_day.setdefault(row["day"], []).append((row["product_id"], row["q"], row["c"]))
        points = [(day, prices.section(lines, day.replace(day=1)).total) for day, lines in by_day.items()]
        title = "Cost this month by day"
    else:
        amounts = charts.usage_amounts(accounts=[account.pk], start=start, end=end, product=None, by=charts.BY_DAY)
        units = charts.units_by_use(amounts)
        measure = charts.quantity_measure(units[0] if units else "")
        points = charts.by_period(amounts, measure)
        title = (
            f"Usage this month by day, in {measure.unit}s"
            if len(units) <= 1
            else (f"Usage this month by day, in {measure.unit}s (the most used of {len(units)} units)")
        )
    return charts.time_chart(points, start=start, end=end, measure=measure, title=title, bucket=charts.BUCKET_DAY)


class MonthUsage(NamedTuple):
    lines: list[UsageLine]
    total: Decimal | None  # None where pricing is hidden


def month_usage(*, account: Account, start: date, end: date, prices: Prices | None) -> MonthUsage:
    """The account's usage per product from `start` to `end`, and its cost where it sees pricing
    (`prices`): at the prices the account pays (billing.pricing.prices_for: a roll-up account its
    manager's resale prices, markup or per-product resale rates, as its reports show them), never the
    manager's cost; the lines rounded as the month's invoice section is."""
    rows: list[UsageRow] = usage_summary(
        accounts=[account.pk], start=start, end=end, product=None, group_by=GROUP_BY_PRODUCT
    )
    if prices is None:
        return MonthUsage([UsageLine(r.label, r.unit, r.quantity, r.records, None) for r in rows], None)
    ids = dict(Product.objects.filter(sku__in=[str(r.key) for r in rows]).values_list("sku", "pk")) if rows else {}
    # Priced as the month's invoice section will be (`Prices.section`): a resale-rate product's line
    # rounded once, the others' platform cost with the markup applied once to their sum.
    amounts = prices.section([(ids[str(r.key)], r.quantity, r.cost) for r in rows], start.replace(day=1))
    # Shown as invoices show a section: the lines add up to the total, with no rounding line.
    shown = shown_amounts(amounts.lines, amounts.rounding) if rows else []
    lines = [UsageLine(r.label, r.unit, r.quantity, r.records, a) for r, a in zip(rows, shown, strict=True)]
    return MonthUsage(lines, amounts.total)
