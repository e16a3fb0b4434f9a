from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.models import Account
from billing.money import to_cents
from controls import selectors
from portal.tables import QUICK_TABLE, QuickRows


class LimitsTable(QuickRows, tables.Table):
    """A manager's managed accounts with their limits, nearest to a limit first."""

    name = tables.Column(verbose_name="Managed account")
    service = tables.Column(verbose_name="Service", empty_values=(), orderable=False)
    month_spend = tables.Column(verbose_name="Spend this month", attrs={"td": {"class": "num"}, "th": {"class": "num"}})
    limits = tables.Column(verbose_name="Limits", empty_values=(), orderable=False)
    nearest = tables.Column(verbose_name="Used of its limit", attrs={"td": {"class": "num"}, "th": {"class": "num"}})

    class Meta:
        model = Account
        fields = ("name", "service", "month_spend", "limits", "nearest")
        order_by = "-nearest"
        attrs = {"class": "table"}
        empty_text = "No managed accounts yet."
        template_name = QUICK_TABLE

    def __init__(self, *args: Any, today: date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.today = today

    def order_nearest(
        self, accounts: selectors.LimitsOverview, is_descending: bool
    ) -> tuple[selectors.LimitsOverview, bool]:
        """Without limits last either way (`LimitsOverview.ORDER`), then by name."""
        return accounts.order_by("-nearest" if is_descending else "nearest", "name"), True

    def render_name(self, record: Account, value: str) -> SafeString:
        url = reverse("controls_managed_limit", args=[record.managed_by.public_id, record.public_id])
        return format_html('<a href="{}">{}</a>', url, value)

    def render_service(self, record: Account) -> SafeString:
        return service_badge(record)

    def render_month_spend(self, value: object) -> str:
        return f"USD {to_cents(value):,.2f}"  # type: ignore[arg-type]

    def render_nearest(self, value: object) -> str:
        return f"{to_cents(Decimal(str(value)) * 100):,.2f} %"

    def render_limits(self, record: Account) -> SafeString | str:
        limits = list(record.spend_limits.all())
        if not limits:
            return "No limit"
        return format_html_join(
            "",
            '<div>{} <span class="{}">{}</span></div>',
            ((limit.rule, *_state(limit, self.today)) for limit in limits),
        )


def _state(limit: Any, today: date) -> tuple[str, str]:
    state = selectors.limit_state(limit, today=today)
    monthly, daily = selectors.spend_cents(limit)
    used = f"USD {monthly} this month" + (f", USD {daily} today" if daily is not None else "")
    if state == "reached":
        return "badge status-negative", f"reached ({limit.get_action_display().lower()}): {used}"
    return ("badge" if state == "near" else "muted"), (f"near: {used}" if state == "near" else used)


def service_badge(account: Account) -> SafeString:
    if account.service_block:
        return format_html('<span class="badge status-negative">Blocked: {}</span>', account.service_block_display)
    return format_html('<span class="badge">{}</span>', "In service")
