"""Which prices an account sees and pays: the one rule (../shared/DESIGN.md section 3, issue 12
item 9), `prices_for`, which every report, rate card, chart, export and invoice asks.

- A standard or manager account, and a managed account billed separately in a month, pays the
  platform's rates (list, negotiated or custom, as `billing.usage.rating` chose them when the
  usage was rated): the stored cost, unchanged.
- A managed account billed by roll-up in a month pays its manager's resale prices: per product the
  manager's resale rate in force in that month (`ResaleRate`), else the platform's price with the
  manager's markup (`ResaleTerms`). The manager's own cost (the stored rate and cost) never
  reaches it.

Resale rates are effective per UTC month: a resale rate starts on the first day of a month (the
model refuses any other day) and applies to the usage of that month and later, until the next
change of that product. The reseller invoices are built from the monthly totals per product, so a
month has exactly one price per product, and a record, a day and a month all read the same price:
the one in force on the first day of the month the usage started in. A change applies from the
next month at the earliest (`billing.resale_rates.set_resale_rate`), never back.

The invoice rule with resale rates (`Prices.section`): each product with a resale rate in force is
a line of quantity x resale rate, rounded once by `to_cents`; the other products together are
priced as today, their platform cost with the markup applied once to their sum and rounded once
(`billing.invoices.lines.section_amounts`), with at most one rounding line; the invoice's total is
the resale lines plus that remainder's total, so its lines add up to its total. Without resale
rates in force the section is exactly today's (at 0 % the platform section, to the cent)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from accounts.models import Account
from billing.invoices.lines import SectionAmounts, markup_factor, section_amounts
from billing.models import ResaleRate, ResaleTerms
from billing.money import to_cents

Timeline = tuple[list[date], list[Decimal | None]]


def markup_of(manager: Account | None) -> Decimal:
    """The manager's markup in per cent over the platform's price (0 without terms)."""
    if manager is None:
        return Decimal("0.00")
    terms = ResaleTerms.objects.filter(manager=manager).first()
    return terms.markup_percent if terms else Decimal("0.00")


def resale_timelines(manager_id: int | None) -> dict[int, Timeline]:
    """{product id: (first days, resale rates or None for "back to the markup"), by date} of the
    manager: one query."""
    grouped: dict[int, list[tuple[date, Decimal | None]]] = defaultdict(list)
    rows = ResaleRate.objects.filter(manager_id=manager_id).values_list("product_id", "effective_from", "unit_price")
    for product_id, start, price in rows.order_by("effective_from"):
        grouped[product_id].append((start, price))
    return {pk: ([s for s, _ in entries], [p for _, p in entries]) for pk, entries in grouped.items()}


def rate_in(timeline: Timeline | None, day: date) -> Decimal | None:
    """The resale rate of a timeline in force on `day`: the last started by the first of its month."""
    if timeline is None:
        return None
    index = bisect.bisect_right(timeline[0], day.replace(day=1)) - 1
    return timeline[1][index] if index >= 0 else None


@dataclass(frozen=True)
class Prices:
    """The prices one account pays, month by month (its billing mode may change at a month's start).
    Build it with `prices_for`."""

    account: Account
    markup: Decimal = Decimal("0.00")  # the manager's, for the months billed by roll-up
    resale: dict[int, Timeline] = field(default_factory=dict)

    @property
    def ever_resale(self) -> bool:
        """Whether any month may be priced at the manager's resale prices (else: stored cost as is)."""
        return self.account.is_managed and (
            self.account.billing_mode == Account.BillingMode.ROLLUP
            or self.account.billing_mode_next == Account.BillingMode.ROLLUP
        )

    @property
    def repriced(self) -> bool:
        """Whether some usage may be priced otherwise than its stored cost: a report then reads its
        totals per product and month (`cost`), else it keeps the stored cost."""
        return self.ever_resale and (self.markup != 0 or bool(self.resale))

    def is_resale_in(self, day: date) -> bool:
        return self.account.is_managed and not self.account.has_own_balance_in(day)

    def resale_rate(self, product_id: int, day: date) -> Decimal | None:
        """The manager's resale rate for the product in force on `day`, if the account pays it then."""
        return rate_in(self.resale.get(product_id), day) if self.is_resale_in(day) else None

    def unit_price(self, product_id: int, day: date, platform_rate: Decimal) -> Decimal:
        """The unit price the account pays for usage of `day` rated at `platform_rate`."""
        if not self.is_resale_in(day):
            return platform_rate
        resale = rate_in(self.resale.get(product_id), day)
        return resale if resale is not None else platform_rate * markup_factor(self.markup)

    def cost(self, product_id: int, day: date, quantity: Decimal, platform_cost: Decimal) -> Decimal:
        """The exact price the account pays for `quantity` of the product used on `day` (or in the
        month starting on `day`) whose stored (platform) cost is `platform_cost`."""
        if not self.is_resale_in(day):
            return platform_cost
        resale = rate_in(self.resale.get(product_id), day)
        return quantity * resale if resale is not None else platform_cost * markup_factor(self.markup)

    def section(self, rows: Sequence[tuple[int, Decimal, Decimal]], month: date) -> SectionAmounts:
        """The month's invoice section of the account at these prices, from its [(product id,
        quantity, exact platform cost)] in line order: the rule in this module's docstring. At the
        platform's prices it is `section_amounts` of the costs."""
        if not self.is_resale_in(month):
            return section_amounts([cost for _, _, cost in rows])
        rates = [rate_in(self.resale.get(product_id), month) for product_id, _, _ in rows]
        rest = section_amounts(
            [cost for (_, _, cost), rate in zip(rows, rates, strict=True) if rate is None], self.markup
        )
        marked = iter(rest.lines)
        lines = [
            next(marked) if rate is None else to_cents(quantity * rate)
            for (_, quantity, _), rate in zip(rows, rates, strict=True)
        ]
        resold = sum((line for line, rate in zip(lines, rates, strict=True) if rate is not None), Decimal("0.00"))
        return SectionAmounts(lines, rest.rounding, resold + rest.total)

    def has_resale_rates_in(self, month: date) -> bool:
        return self.is_resale_in(month) and any(rate_in(t, month) is not None for t in self.resale.values())


def prices_for(account: Account) -> Prices:
    """The one rule: the prices `account` pays and sees (this module's docstring). At most two
    queries, for a managed account that is (or will be) billed by roll-up; none otherwise."""
    rollup = Account.BillingMode.ROLLUP
    if not account.is_managed or rollup not in (account.billing_mode, account.billing_mode_next):
        return Prices(account)
    return Prices(account, markup_of(account.manager), resale_timelines(account.manager_id))


def prices_of_rollups(manager: Account, accounts: Iterable[Account]) -> dict[int, Prices]:
    """`prices_for` each of the manager's managed `accounts`, with the manager's terms read once."""
    markup, resale = markup_of(manager), resale_timelines(manager.pk)
    return {a.pk: Prices(a, markup, resale) for a in accounts}


def utc_day(moment: datetime) -> date:
    """The UTC day of an aware instant: what a usage record's start is priced by."""
    return moment.astimezone(UTC).date()
