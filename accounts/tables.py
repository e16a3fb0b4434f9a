from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import django_filters
import django_tables2 as tables
from django import forms
from django.core.validators import MinLengthValidator
from django.db.models import F, Q, QuerySet
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.models import Account, AuditEvent

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


class ManagedAccountTable(tables.Table):
    name = tables.Column(verbose_name="Business name", linkify=False)
    email = tables.Column(verbose_name="Owner e-mail")
    status = tables.Column()
    billing_mode = tables.Column(verbose_name="Billing")
    # Annotated by the view from billing's Balance (accounts.views._with_balances).
    balance = tables.Column(
        verbose_name="Balance",
        accessor="balance_amount",
        empty_values=(),
        attrs={"td": {"class": "num"}, "th": {"class": "num"}},
    )
    pricing_hidden = tables.BooleanColumn(verbose_name="Pricing hidden", yesno="Hidden,Visible")
    created_at = tables.DateTimeColumn(verbose_name="Created", format="Y-m-d")
    # Log in as (a POST form: the rule per row comes from `log_in_as`), Usage, Disable or Enable.
    actions = tables.TemplateColumn(
        template_name="accounts/managed_hub/_row_actions.html",
        verbose_name="Actions",
        orderable=False,
        empty_values=(),
        extra_context=lambda record, table: {"log_in_as": table.log_in_as.get(record.pk, False)},
    )

    class Meta:
        model = Account
        fields = ("name", "email", "status", "billing_mode", "balance", "pricing_hidden", "created_at", "actions")
        order_by = "-created_at"
        attrs = {"class": "table"}
        empty_text = "No managed accounts match. Clear the filters, or create a managed account."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # pk -> the log-in-as refusal (None: allowed), set by the view for the page shown
        # (accounts.managed_hub.log_in_as_denials); an account missing from it offers no button.
        self.log_in_as: dict[int, str | None] = {}

    def render_name(self, record: Account, value: str) -> SafeString:
        url = reverse("managed_detail", args=[record.managed_by.public_id, record.public_id])
        return format_html('<a href="{}">{}</a>', url, value)

    def render_status(self, record: Account, value: str) -> SafeString:
        return format_html('<span class="badge badge-{}">{}</span>', record.status, value)

    def render_balance(self, record: WithAnnotations[Account, BalanceAnnotations], value: Decimal | None) -> str:
        if value is None:
            return "billed to you (roll-up)"
        return f"{record.balance_currency} {value:,.2f}"

    def order_balance(self, queryset: QuerySet[Account], is_descending: bool) -> tuple[QuerySet[Account], bool]:
        # Roll-up accounts (no balance) last both ways; the id keeps pages stable among equal amounts.
        amount = F("balance_amount")
        order = amount.desc(nulls_last=True) if is_descending else amount.asc(nulls_last=True)
        return queryset.order_by(order, "-id"), True


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
