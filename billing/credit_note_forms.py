"""The credit-note form, for the manager's page and the staff admin page alike: one amount, or an
amount per invoice line; a reason; a key made when the form is first shown, so a double submit
issues one note. The rules themselves (what is left to credit) are billing.invoices.credit_notes'."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from billing.invoices.credit_notes import CreditableLine
from billing.money import format_money

AMOUNT, LINES = "amount", "lines"


def _credit_field(label: str, *, help_text: str = "") -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=False,
        decimal_places=2,
        max_digits=14,
        min_value=Decimal("0"),
        help_text=help_text,
        error_messages={
            "invalid": "Enter an amount such as 12.50.",
            "max_decimal_places": "Use at most 2 decimal places (whole cents).",
            "max_digits": "That amount is too large.",
            "max_whole_digits": "That amount is too large.",
            "min_value": "An amount cannot be negative.",
        },
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "0.00"}),
    )


class CreditNoteForm(forms.Form):
    mode = forms.ChoiceField(
        label="Credit",
        choices=[(AMOUNT, "One amount"), (LINES, "Some of the invoice's lines")],
        initial=AMOUNT,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose one amount or lines.", "invalid_choice": "Choose one amount or lines."},
    )
    amount = _credit_field("Amount to credit (USD)")
    reason = forms.CharField(
        label="Reason",
        max_length=255,
        help_text="Printed on the credit note, which the customer sees.",
        error_messages={"required": "Give the reason for the credit note."},
    )
    key = forms.UUIDField(widget=forms.HiddenInput, error_messages={"invalid": "Reload the page and try again."})

    def __init__(self, *args: Any, lines: list[CreditableLine], left: Decimal, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines = [row for row in lines if row.left > 0]
        self.amount_help = f"At most {format_money(left)}, what is left to credit on the invoice."
        self.fields["amount"].help_text = self.amount_help
        for row in self.lines:
            label = f"{row.line.description} ({row.section})"
            self.fields[row.field] = _credit_field(label, help_text=f"At most {format_money(row.left)}.")

    def line_fields(self) -> list[forms.BoundField]:
        return [self[row.field] for row in self.lines]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("mode") == AMOUNT and not data.get("amount") and "amount" not in self.errors:
            self.add_error("amount", "Enter the amount to credit.")
        lines_given = any(data.get(row.field) or row.field in self.errors for row in self.lines)
        if data.get("mode") == LINES and not lines_given:
            self.add_error(None, "Enter an amount on at least one line.")
        return data

    def credit(self) -> dict[str, Any]:
        """The service's arguments for what the form asks: `amount`, or `lines` {line pk: amount}."""
        data = self.cleaned_data
        if data["mode"] == AMOUNT:
            return {"amount": data["amount"]}
        return {"lines": {row.line.pk: data[row.field] for row in self.lines if data.get(row.field)}}

    def asked(self) -> tuple[Decimal, list[tuple[str, Decimal]]]:
        """What will be credited, for the confirmation step: the total and each line's amount."""
        credit = self.credit()
        if "amount" in credit:
            return credit["amount"], []
        rows = [(f"{row.line.description} ({row.section})", self.cleaned_data[row.field]) for row in self.lines]
        shown = [(label, amount) for label, amount in rows if amount]
        return sum((amount for _, amount in shown), Decimal("0.00")), shown

    def hidden_values(self) -> list[tuple[str, str]]:
        """The fields and values the confirmation step posts again."""
        data = self.cleaned_data
        values = [("mode", data["mode"]), ("reason", data["reason"]), ("key", str(data["key"]))]
        if data["mode"] == AMOUNT:
            return [*values, ("amount", f"{data['amount']:.2f}")]
        return values + [(row.field, f"{data[row.field]:.2f}") for row in self.lines if data.get(row.field)]
