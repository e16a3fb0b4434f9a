from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from billing.models import Product
from controls.models import SpendLimit
from controls.services import MAX_LIMIT

_MONEY_ERRORS = {
    "required": "Enter an amount.",
    "invalid": "Enter an amount such as 100.00.",
    "max_decimal_places": "Use at most 2 decimal places (whole cents).",
    "max_digits": f"A limit is at most USD {MAX_LIMIT:,.2f}.",
    "max_whole_digits": f"A limit is at most USD {MAX_LIMIT:,.2f}.",
    "min_value": "Enter more than zero.",
    "max_value": f"A limit is at most USD {MAX_LIMIT:,.2f}.",
}


def _amount(label: str, *, required: bool, minimum: Decimal, help_text: str = "") -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=required,
        decimal_places=2,
        max_digits=20,
        min_value=minimum,
        max_value=MAX_LIMIT,
        error_messages=_MONEY_ERRORS,
        help_text=help_text,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "100.00"}),
    )


class SpendLimitForm(forms.Form):
    product = forms.ModelChoiceField(
        queryset=Product.objects.filter(active=True).order_by("sku"),
        required=False,
        empty_label="All products",
        to_field_name="sku",
        error_messages={"invalid_choice": "Choose a product from the list, or all products."},
    )
    monthly_amount = _amount("Monthly limit (USD)", required=True, minimum=Decimal("0.01"))
    daily_amount = _amount(
        "Daily limit (USD)", required=False, minimum=Decimal("0.01"), help_text="Optional; at most the monthly limit."
    )
    action = forms.ChoiceField(
        label="At the limit",
        choices=SpendLimit.Action.choices,
        initial=SpendLimit.Action.BLOCK,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose alert only, or alert and block."},
    )

    def clean(self) -> dict[str, Any] | None:
        data = super().clean() or {}
        monthly, daily = data.get("monthly_amount"), data.get("daily_amount")
        if monthly is not None and daily is not None and daily > monthly:
            self.add_error("daily_amount", "The daily limit cannot be more than the monthly limit.")
        return data


class CreditLimitForm(forms.Form):
    credit_limit = _amount(
        "Credit limit (USD)", required=True, minimum=Decimal("0"), help_text="How far below zero the account may go."
    )
