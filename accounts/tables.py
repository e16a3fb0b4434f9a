from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

import django_filters
import django_tables2 as tables
from django import forms
from django.core.validators import MinLengthValidator
from django.db.models import F, Q, QuerySet
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.models import Account, AuditEvent
from portal.tables import QUICK_TABLE, DateTimeColumn, QuickRows

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    from accounts.audit import FieldChange
    from accounts.selectors import BalanceAnnotations


class ManagedAccountFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        label="Name or e-mail",
        method="search",
        validators=[MinLengthValidator(3, "Type at least 3 characters to search.")],
        widget=forms.TextInput(attrs={"placeholder": "at least 3 characters", "type": "search"}),
    )
    status = django_filters.ChoiceFilter(
        choices=Account.Status.choices, empty_label="Enabled and disabled", method="filter_status"
    )
    billing_mode = django_filters.ChoiceFilter(choices=Account.BillingMode.choices, empty_label="Any billing")

    class Meta:
        model = Account
        fields = ["q", "status", "billing_mode"]

    def search(self, queryset: QuerySet[Account], name: str, value: str) -> QuerySet[Account]:
        return queryset.filter(Q(name__icontains=value) | Q(email__icontains=value))

    def filter_status(self, queryset: QuerySet[Account], name: str, value: str) -> QuerySet[Account]:
        return queryset.filter(status=value)

    @property
    def qs(self) -> QuerySet[Account]:
        queryset: QuerySet[Account] = super().qs
        # Cancelled accounts are terminal: hidden unless a (valid) status filter asks for them,
        # whatever else in the form is invalid.
        if not getattr(self.form, "cleaned_data", {}).get("status"):
            queryset = queryset.exclude(status=Account.Status.CANCELLED)
        return queryset


class ManagedAccountTable(QuickRows, tables.Table):
    """The manager's managed accounts, its page's rows drawn by `portal.tables.QuickRows` (the
    same HTML as django-tables2's, without its per-cell machinery), each row's links built from
    one reverse per link name and manager."""

    name = tables.Column(verbose_name="Business name", linkify=False)
    email = tables.Column(verbose_name="Owner e-mail")
    status = tables.Column()
    billing_mode = tables.Column(verbose_name="Billing")
    # Annotated by the view from billing's Balance (accounts.selectors.with_balances).
    balance = tables.Column(
        verbose_name="Balance",
        accessor="balance_amount",
        empty_values=(),
        attrs={"td": {"class": "num"}, "th": {"class": "num"}},
    )
    pricing_hidden = tables.BooleanColumn(verbose_name="Pricing hidden", yesno="Hidden,Visible")
    created_at = DateTimeColumn(verbose_name="Created", format="Y-m-d")
    # Log in as (a POST form: the rule per row comes from `log_in_as`), Usage, Disable or Enable.
    actions = tables.Column(verbose_name="Actions", orderable=False, empty_values=())

    class Meta:
        model = Account
        fields = ("name", "email", "status", "billing_mode", "balance", "pricing_hidden", "created_at", "actions")
        order_by = "-created_at"
        attrs = {"class": "table"}
        empty_text = "No managed accounts match. Clear the filters, or create a managed account."
        template_name = QUICK_TABLE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # pk -> the log-in-as refusal (None: allowed), set by the view for the page shown
        # (accounts.managed_hub.log_in_as_denials); an account missing from it offers no button.
        self.log_in_as: dict[int, str | None] = {}
        self._url_patterns: dict[tuple[str, UUID], tuple[str, str]] = {}
        self._csrf_input: str | None = None

    def _url(self, name: str, record: Account) -> str:
        """reverse(name, args=[manager, record]), reversed once per name and manager: the managed
        account's public id (a UUID: nothing to quote) put in the place of a placeholder's."""
        manager_id = record.managed_by.public_id
        pattern = self._url_patterns.get((name, manager_id))
        if pattern is None:
            head, _, tail = reverse(name, args=[manager_id, _PLACEHOLDER]).partition(str(_PLACEHOLDER))
            pattern = self._url_patterns[(name, manager_id)] = (head, tail)
        return f"{pattern[0]}{record.public_id}{pattern[1]}"

    def _csrf(self) -> str:
        """The log-in-as form's CSRF field, made once per page from the table's request."""
        if self._csrf_input is None:
            request = getattr(self, "request", None)
            token = get_token(request) if request is not None else ""
            self._csrf_input = format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', token)
        return self._csrf_input

    def render_name(self, record: Account, value: str) -> SafeString:
        return format_html('<a href="{}">{}</a>', self._url("managed_detail", record), value)

    def render_status(self, record: Account, value: str) -> SafeString:
        return format_html('<span class="badge badge-{}">{}</span>', record.status, value)

    def render_balance(self, record: WithAnnotations[Account, BalanceAnnotations], value: Decimal | None) -> str:
        if value is None:
            return "billed to you (roll-up)"
        return f"{record.balance_currency} {value:,.2f}"

    def render_actions(self, record: Account) -> SafeString:
        """Log in as (where `log_in_as` allows it), Usage, and Disable or Enable, for one account."""
        name = record.name
        log_in_as = ""
        if record.pk in self.log_in_as and self.log_in_as[record.pk] is None:
            log_in_as = format_html(
                '<form method="post" action="{}" class="inline">{}<button type="submit" class="link" '
                'aria-label="Log in as {}">Log in as</button></form>',
                self._url("managed_log_in_as", record),
                self._csrf(),
                name,
            )
        switch = ""
        if record.status == Account.Status.ENABLED:
            switch = format_html(
                '<a href="{}" aria-label="Disable {}">Disable</a>', self._url("managed_disable", record), name
            )
        elif record.status == Account.Status.DISABLED:
            switch = format_html(
                '<a href="{}" aria-label="Enable {}">Enable</a>', self._url("managed_enable", record), name
            )
        return format_html(
            '<span class="row-actions">\n{}\n<a href="{}" aria-label="Usage of {}">Usage</a>\n{}\n</span>\n',
            log_in_as,
            self._url("managed_usage", record),
            name,
            switch,
        )

    def order_balance(self, queryset: QuerySet[Account], is_descending: bool) -> tuple[QuerySet[Account], bool]:
        # Roll-up accounts (no balance) last both ways; the id keeps pages stable among equal amounts.
        amount = F("balance_amount")
        order = amount.desc(nulls_last=True) if is_descending else amount.asc(nulls_last=True)
        return queryset.order_by(order, "-id"), True


_PLACEHOLDER = UUID(int=0)


class AuditEventTable(tables.Table):
    created_at = tables.DateTimeColumn(verbose_name="When (UTC)", format="Y-m-d H:i:s", orderable=False)
    change_type = tables.Column(verbose_name="Type", orderable=False)
    resource = tables.Column(verbose_name="Resource", empty_values=(), orderable=False)
    changes = tables.Column(verbose_name="Changes", orderable=False)
    person = tables.Column(verbose_name="By", empty_values=(), orderable=False)
    change_made_by = tables.Column(verbose_name="As", orderable=False)

    class Meta:
        model = AuditEvent
        fields = ("created_at", "change_type", "resource", "changes", "person", "change_made_by")
        attrs = {"class": "table"}
        empty_text = "No events match these filters."

    def render_resource(self, record: AuditEvent) -> str:
        return f"{record.resource_type} {record.resource_id}"

    def render_changes(self, value: list[FieldChange]) -> str:
        return "; ".join(f"{c['field']}: {c['from']} → {c['to']}" for c in value)

    def render_person(self, record: AuditEvent) -> str:
        who = record.user.display_name if record.user else (record.user_email or "platform")
        if record.acting_as_id and record.acting_as is not None:
            return f"{who} (acting as {record.acting_as.email})"
        return who
