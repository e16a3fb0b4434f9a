"""The report and usage detail tables. Cost and rate columns exist only when the page's account may
see pricing (`accounts.permissions.can_see_pricing`); the views decide, the tables obey."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import django_tables2 as tables
from django.utils.html import format_html
from django.utils.safestring import SafeString

from billing.models import UsageRecord
from billing.money import decimal_places, format_money
from billing.usage.selectors import GROUP_BY_PRODUCT, UsageRow, UsageTotals
from reporting.forms import GROUP_LABELS

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


class UsageSummaryTable(tables.Table):
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

    def __init__(
        self,
        rows: list[UsageRow],
        *,
        group_by: str,
        totals: UsageTotals,
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
