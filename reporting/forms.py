"""The filters of the usage report and the usage detail page (GET forms).

Every field is optional: what is absent takes its default (the last 30 UTC days, today included;
all products, grouped by day, and for managers all their managed accounts), so a bare URL is a
useful report (on the 1st of a month too) and a bookmarked one keeps working. What is typed wrong
is shown back with a message.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone

from accounts.models import Account
from accounts.permissions import can_see_pricing
from accounts.selectors import managed_accounts_for
from billing.models import Product
from billing.usage import selectors
from reporting.selectors import report_accounts

MAX_RANGE_DAYS = 366
CHART_COST = "cost"  # the chart's choice of cost, reporting.charts.COST
DEFAULT_RANGE_DAYS = 30  # the last 30 days, today included
SCOPE_ALL = "all"
SCOPE_OWN = "own"
GROUP_LABELS = {
    selectors.GROUP_BY_DAY: "Day",
    selectors.GROUP_BY_MONTH: "Month",
    selectors.GROUP_BY_PRODUCT: "Product",
    selectors.GROUP_BY_ACCOUNT: "Managed account",
}


@dataclass(frozen=True)
class ManagedChoice:
    pk: int
    public_id: str
    name: str
    status: str  # "" when enabled

    @property
    def label(self) -> str:
        return f"{self.name} ({self.status})" if self.status else self.name


@dataclass(frozen=True)
class UsageFilters:
    start: date
    end: date
    product: Product | None
    group_by: str
    scope: str  # SCOPE_ALL, SCOPE_OWN, or a managed account's public id
    managed: ManagedChoice | None  # the one managed account chosen as the scope
    accounts: selectors.AccountScope  # reporting.selectors.report_accounts
    after: selectors.Cursor | None = None


def today_utc() -> date:
    return timezone.now().astimezone(UTC).date()


def default_start(end: date) -> date:
    """The first day of the default range ending on `end`."""
    return end - timedelta(days=DEFAULT_RANGE_DAYS - 1)


class UsageFilterForm(forms.Form):
    """Filters of the usage detail page; `UsageReportForm` adds the grouping."""

    start = forms.DateField(label="From (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    product = forms.ChoiceField(
        label="Product", required=False, error_messages={"invalid_choice": "%(value)s is not a product."}
    )
    scope = forms.ChoiceField(
        label="Accounts",
        required=False,
        error_messages={"invalid_choice": "%(value)s is not one of your managed accounts."},
    )
    find = forms.CharField(
        label="Or one managed account",
        required=False,
        max_length=255,
        widget=forms.TextInput(attrs={"placeholder": "name or id", "type": "search"}),
        help_text="At least 3 characters of its name, or its id.",
    )
    after = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, data: QueryDict, *, account: Account, **kwargs: Any) -> None:
        self.account = account
        today = today_utc()
        self.defaults = {"start": default_start(today).isoformat(), "end": today.isoformat(), "scope": SCOPE_ALL}
        # Absent fields take their defaults and show them; fields sent empty are defaulted in clean().
        merged = data.copy()
        for name, value in self.defaults.items():
            merged.setdefault(name, value)
        super().__init__(merged, **kwargs)
        self._products = {p.sku: p for p in selectors.report_products()}
        cast(forms.ChoiceField, self.fields["product"]).choices = [("", "All products")] + [
            (p.sku, p.name if p.active else f"{p.name} (retired)") for p in self._products.values()
        ]
        if account.is_manager:
            # A manager may have 3,000 managed accounts: the select offers only the scopes and the
            # account already chosen; `find` (or a row's link in the report) picks another one.
            self._managed = self._chosen_managed(account, merged.get("scope"))
            cast(forms.ChoiceField, self.fields["scope"]).choices = [
                (SCOPE_ALL, "All my managed accounts"),
                (SCOPE_OWN, f"My own account ({account.name})"),
                *[(m.public_id, m.label) for m in self._managed.values()],
            ]
        else:
            del self.fields["scope"]
            del self.fields["find"]

    @staticmethod
    def _chosen_managed(manager: Account, scope: str | None) -> dict[str, ManagedChoice]:
        """The managed account named by `scope` (any status: a cancelled account's usage stays
        reportable), as {public id: choice}; empty when the scope names none of the manager's."""
        try:
            public_id = uuid.UUID(str(scope))
        except ValueError:
            return {}
        return _managed_choices(managed_accounts_for(manager).filter(public_id=public_id))

    def clean_find(self) -> ManagedChoice | None:
        value = self.cleaned_data.get("find", "").strip()
        if not value:
            return None
        accounts = managed_accounts_for(self.account)
        try:
            matches = accounts.filter(public_id=uuid.UUID(value))
        except ValueError:
            if len(value) < 3:
                raise ValidationError("Type at least 3 characters of the name.") from None
            matches = accounts.filter(name__icontains=value).order_by("name", "id")
        found = list(_managed_choices(matches[:6]).values())
        if not found:
            raise ValidationError(f"None of your managed accounts matches “{value}”.")
        exact = [m for m in found if m.name.lower() == value.lower()]
        if len(found) > 1 and len(exact) != 1:
            names = ", ".join(m.name for m in found[:5])
            raise ValidationError(f"Several managed accounts match: {names}{'…' if len(found) > 5 else ''}. Type more.")
        return exact[0] if exact else found[0]

    def clean_after(self) -> selectors.Cursor | None:
        value = self.cleaned_data.get("after") or ""
        if not value:
            return None
        try:
            return decode_cursor(value)
        except ValueError:
            raise ValidationError("This page link is broken; start again from the first page.") from None

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if "start" in self.errors or "end" in self.errors:
            return data
        end = data.get("end") or today_utc()
        start = data["start"] = data.get("start") or default_start(end)
        data["end"] = end
        if end < start:
            self.add_error("end", "The end date is before the start date.")
        elif (end - start).days + 1 > MAX_RANGE_DAYS:
            days = (end - start).days + 1
            self.add_error("end", f"The range is {days:,} days long; choose at most {MAX_RANGE_DAYS} days.")
        return data

    def filters(self) -> UsageFilters:
        """The validated filters; call only after is_valid()."""
        data = self.cleaned_data
        found = data.get("find")
        if found is not None:
            self._managed[found.public_id] = found
        scope = found.public_id if found is not None else (data.get("scope") or SCOPE_ALL)
        if not self.account.is_manager:
            scope = SCOPE_OWN  # no scope field: the report covers the account alone
        managed = self._managed.get(scope) if self.account.is_manager else None
        return UsageFilters(
            start=data["start"],
            end=data["end"],
            product=self._products.get(data["product"]),
            group_by=data.get("group_by") or selectors.GROUP_BY_DAY,
            scope=scope,
            managed=managed,
            accounts=report_accounts(
                account=self.account, managed=scope != SCOPE_OWN, only=managed.pk if managed else None
            ),
            after=data.get("after"),
        )


def _managed_choices(accounts: QuerySet[Account]) -> dict[str, ManagedChoice]:
    rows = accounts.values_list("pk", "public_id", "name", "status")
    return {
        str(public_id): ManagedChoice(pk, str(public_id), name, "" if status == Account.Status.ENABLED else status)
        for pk, public_id, name, status in rows
    }


class UsageReportForm(UsageFilterForm):
    group_by = forms.ChoiceField(label="Group by", required=False)
    # What the chart shows: cost (only where pricing is visible) or the quantity of one unit, since
    # minutes, messages and numbers do not add up. Empty: the unit most used in the range.
    chart = forms.ChoiceField(
        label="Chart", required=False, error_messages={"invalid_choice": "The chart cannot show %(value)s."}
    )

    field_order = ["start", "end", "product", "scope", "find", "group_by", "chart"]

    def __init__(self, data: QueryDict, *, account: Account, **kwargs: Any) -> None:
        super().__init__(data, account=account, **kwargs)
        groupings = [g for g in selectors.GROUPINGS if account.is_manager or g != selectors.GROUP_BY_ACCOUNT]
        cast(forms.ChoiceField, self.fields["group_by"]).choices = [(g, GROUP_LABELS[g]) for g in groupings]
        del self.fields["after"]
        pricing = can_see_pricing(account)
        units = sorted({p.unit for p in self._products.values()})
        cast(forms.ChoiceField, self.fields["chart"]).choices = [
            *([(CHART_COST, "Cost")] if pricing else [("", "Most used unit")]),
            *[(unit, f"Quantity ({unit})") for unit in units],
        ]
        if not self.data.get("chart"):  # shown as chosen: the product's unit, else cost if visible
            product = self._products.get(str(self.data.get("product") or ""))
            self._merged["chart"] = product.unit if product else CHART_COST if pricing else ""

    @property
    def _merged(self) -> QueryDict:
        return cast(QueryDict, self.data)  # the parent's copy of the query, with the defaults

    def clean_chart(self) -> str:
        """The chart follows the product filter: a product of another unit charts its own unit."""
        chart = str(self.cleaned_data.get("chart") or "")
        product = self._products.get(str(self.data.get("product") or ""))
        if product is not None and chart not in ("", CHART_COST, product.unit):
            chart = self._merged["chart"] = product.unit
        return chart


# --- Keyset cursor --------------------------------------------------------------------------------------
# The last record of a page, as "<started_at in ISO 8601>_<id>". Not secret: it only narrows the
# user's own, already authorised query.


def encode_cursor(cursor: selectors.Cursor) -> str:
    moment, pk = cursor
    return f"{moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}_{pk}"


def decode_cursor(value: str) -> selectors.Cursor:
    moment, _, pk = value.partition("_")
    parsed = datetime.strptime(moment, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    number = int(pk)
    if number < 1:
        raise ValueError("not a record id")
    return parsed, number
