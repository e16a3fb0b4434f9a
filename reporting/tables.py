"""The report and usage detail tables. Cost and rate columns exist only when the page's account may
see pricing (`accounts.permissions.can_see_pricing`); the views decide, the tables obey."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import django_tables2 as tables
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django_tables2.data import TableData
from django_tables2.utils import OrderBy

from billing.models import UsageRecord
from billing.money import decimal_places, format_money
from billing.usage.selectors import GROUP_BY_PRODUCT, UsageRow, UsageTotals
from portal.tables import QUICK_TABLE, QuickRows
from reporting.forms import GROUP_LABELS
from reporting.selectors import ACCOUNT_ORDER, AccountGroups

NUMERIC = {"th": {"class": "num"}, "td": {"class": "num"}, "tf": {"class": "num"}}


def format_quantity(value: Decimal) -> str:
    """12.500000 -> 12.5, 1234 -> 1,234: quantities are exact, without trailing zeros."""
    if value == value.to_integral_value():
        return f"{value:,.0f}"
    return f"{value.normalize():,f}"


def format_unit_money(amount: Decimal, currency: str = "USD") -> str:
    """A unit price or one record's cost, exact (USD 0.004 per message is normal): at least two
    decimals, never rounded. Totals go through billing.money.format_money (cents)."""
    exact = amount.normalize()
    if decimal_places(exact) < 2:
        exact = amount.quantize(Decimal("0.01"))
    return f"{currency} {exact:,f}"


class UsageSummaryTable(QuickRows, tables.Table):
    label = tables.Column(verbose_name="Group", footer="Total")
    unit = tables.Column(verbose_name="Unit", orderable=False)
    quantity = tables.Column(
        verbose_name="Quantity",
        footer=lambda table: format_quantity(table.totals.quantity),
        attrs=NUMERIC,
    )
    records = tables.Column(
        verbose_name="Records",
        footer=lambda table: f"{table.totals.records:,}",
        attrs=NUMERIC,
    )
    cost = tables.Column(
        verbose_name="Cost",
        footer=lambda table: format_money(table.totals.cost),
        attrs=NUMERIC,
    )

    class Meta:
        attrs = {"class": "table usage-summary"}
        empty_text = "No usage matches these filters."
        template_name = QUICK_TABLE

    def __init__(
        self,
        rows: list[UsageRow] | AccountGroupsData,
        *,
        group_by: str,
        totals: UsageTotals | None,  # None: set before drawing (AccountGroupsData brings them)
        pricing: bool,
        link: Callable[[UsageRow], str | None] | None = None,
        **kwargs: Any,
    ) -> None:
        self.totals = totals
        self.link = link
        exclude = [] if pricing else ["cost"]
        if group_by != GROUP_BY_PRODUCT:
            exclude.append("unit")
        label = tables.Column(verbose_name=GROUP_LABELS[group_by], footer="Total")
        super().__init__(rows, exclude=exclude, extra_columns=[("label", label)], **kwargs)

    def render_label(self, record: UsageRow, value: str) -> SafeString | str:
        url = self.link(record) if self.link else None
        return format_html('<a href="{}">{}</a>', url, value) if url else value

    def render_quantity(self, value: Decimal) -> str:
        return format_quantity(value)

    def render_records(self, value: int) -> str:
        return f"{value:,}"

    def render_cost(self, value: Decimal) -> str:
        return format_money(value)


class AccountGroupsData(TableData):  # type: ignore[misc]  # django_tables2.data has no stubs
    """A report's groups by managed account as django-tables2 data, read a page at a time: the table
    sorts (`order_by`) and pages (`len`, a slice) it as it would a list, and each read is one query
    (`fetch`: reporting.selectors.account_groups with the filters bound) that also brings the count,
    the totals and the chart's largest groups. The first read is of `window` (offset, size), the
    page the request asks for; another slice (a page past the end: the last one) is read again."""

    def __init__(self, fetch: Callable[..., AccountGroups], *, window: tuple[int, int]) -> None:
        super().__init__([])
        self.fetch = fetch
        self.window = window
        self.order: list[tuple[str, bool]] = []
        self._read: tuple[int, AccountGroups, int] | None = None  # (offset, the read, size)

    def order_by(self, aliases: Sequence[str]) -> None:
        orders = [OrderBy(alias) for alias in aliases]
        self.order = [(order.bare, order.is_descending) for order in orders if order.bare in ACCOUNT_ORDER]
        self._read = None

    @property
    def summary(self) -> AccountGroups:
        """The last read: the count, totals and chart of all groups, and the rows of its window."""
        if self._read is None:
            offset, size = self.window
            self._read = (offset, self.fetch(order=self.order, offset=offset, limit=size), size)
        return self._read[1]

    def _rows(self, start: int, stop: int) -> list[UsageRow]:
        offset, read, size = self._read or (0, self.summary, self.window[1])
        if not (offset <= start and stop <= offset + size):
            offset, size = start, stop - start
            read = self.fetch(order=self.order, offset=offset, limit=size)
            self._read = (offset, read, size)
        return read.rows[start - offset : stop - offset]

    def __len__(self) -> int:
        return self.summary.groups

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            start, stop, _ = key.indices(len(self))
            return self._rows(start, max(stop, start))
        return self._rows(key, key + 1)[0]

    def __iter__(self) -> Iterator[UsageRow]:
        return iter(self[:])


class UsageRecordTable(tables.Table):
    started_at = tables.DateTimeColumn(verbose_name="Time (UTC)", format="Y-m-d H:i:s")
    account = tables.Column(verbose_name="Account", accessor="account__name")
    product = tables.Column(verbose_name="Product", accessor="product__name")
    quantity = tables.Column(verbose_name="Quantity", attrs=NUMERIC)
    direction = tables.Column(verbose_name="Direction")
    country = tables.Column(verbose_name="Country")
    destination = tables.Column(verbose_name="Destination")
    rate = tables.Column(verbose_name="Rate", attrs=NUMERIC)
    cost = tables.Column(verbose_name="Cost", attrs=NUMERIC)

    class Meta:
        attrs = {"class": "table usage-records"}
        orderable = False  # keyset pagination fixes the order: newest first
        empty_text = "No usage records match these filters. Widen the dates or choose another product."

    def __init__(self, records: Sequence[UsageRecord], *, pricing: bool, show_account: bool, **kwargs: Any) -> None:
        exclude = [] if pricing else ["rate", "cost"]
        if not show_account:
            exclude.append("account")
        super().__init__(records, exclude=exclude, **kwargs)

    def render_quantity(self, record: UsageRecord, value: Decimal) -> str:
        return f"{format_quantity(value)} {record.product.unit}"

    def render_direction(self, record: UsageRecord) -> str:
        return record.get_direction_display()

    def render_rate(self, record: UsageRecord, value: Decimal) -> str:
        return f"{format_unit_money(value, record.product.currency)} / {record.product.unit}"

    def render_cost(self, record: UsageRecord, value: Decimal) -> str:
        return format_unit_money(value, record.product.currency)
