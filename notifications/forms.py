from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from notifications.alerts import ALERT_LABELS, Alert
from notifications.services import MAX_THRESHOLD, Choice

_MONEY_ERRORS = {
    "required": "Enter an amount.",
    "invalid": "Enter an amount such as 25.00.",
    "max_decimal_places": "Use at most 2 decimal places (whole cents).",
    "max_digits": f"A threshold is at most USD {MAX_THRESHOLD:,.2f}.",
    "max_whole_digits": f"A threshold is at most USD {MAX_THRESHOLD:,.2f}.",
    "min_value": f"A threshold is at least USD -{MAX_THRESHOLD:,.2f}.",
    "max_value": f"A threshold is at most USD {MAX_THRESHOLD:,.2f}.",
}


class ThresholdForm(forms.Form):
    threshold_amount = forms.DecimalField(
        label="Alert when the balance falls below (USD)",
        decimal_places=2,
        max_digits=20,
        min_value=-MAX_THRESHOLD,
        max_value=MAX_THRESHOLD,
        error_messages=_MONEY_ERRORS,
        help_text="Below zero is allowed when the account has a credit limit.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "25.00"}),
    )
    enabled = forms.BooleanField(label="Send the low-balance alert", required=False, initial=True)


def email_field(alert: Alert) -> str:
    return f"email_{alert.name.lower()}"


def managed_field(alert: Alert) -> str:
    return f"managed_{alert.name.lower()}"


class ChoicesForm(forms.Form):
    """One checkbox per alert (and, on a manager, one more per alert for its managed accounts)."""

    def __init__(self, *args: Any, choices: list[Choice], manager: bool, **kwargs: Any) -> None:
        initial = {email_field(c.alert): c.email for c in choices} | {
            managed_field(c.alert): c.managed_email for c in choices
        }
        super().__init__(*args, initial=initial, **kwargs)
        self.manager = manager
        for alert in Alert:
            self.fields[email_field(alert)] = forms.BooleanField(label=ALERT_LABELS[alert], required=False)
            if manager:
                self.fields[managed_field(alert)] = forms.BooleanField(
                    label=f"{ALERT_LABELS[alert]}: managed accounts", required=False
                )

    def rows(self) -> list[dict[str, object]]:
        """The form as the page's table: per alert its label and one or two boxes."""
        return [
            {
                "label": ALERT_LABELS[alert],
                "email": self[email_field(alert)],
                "managed": self[managed_field(alert)] if self.manager else None,
            }
            for alert in Alert
        ]

    def chosen(self) -> tuple[set[str], set[str]]:
        data = self.cleaned_data
        email = {a.value for a in Alert if data.get(email_field(a))}
        managed = {a.value for a in Alert if self.manager and data.get(managed_field(a))}
        return email, managed


def threshold_initial(amount: Decimal | None, enabled: bool) -> dict[str, object]:
    return {
        "threshold_amount": amount if amount is not None else Decimal("25.00"),
        "enabled": enabled or amount is None,
    }
