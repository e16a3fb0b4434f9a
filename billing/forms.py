from decimal import Decimal

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from billing.csv_upload import MAX_UPLOAD_BYTES
from billing.money import format_money

MEGABYTE = 1024 * 1024


class UsageUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        error_messages={"required": "Choose a CSV file to upload.", "empty": "The file is empty."},
        widget=forms.FileInput(attrs={"accept": ".csv,text/csv", "data-max-bytes": MAX_UPLOAD_BYTES}),
    )

    def clean_file(self):
        # Refused on its size alone, before a byte of it is read as CSV.
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"The file is {upload.size / MEGABYTE:.1f} MB; the limit is {MAX_UPLOAD_BYTES // MEGABYTE} MB. "
                "Split it into smaller files."
            )
        return upload


def _money_field(label: str, **kwargs) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        decimal_places=2,
        error_messages={
            "required": "Enter an amount.",
            "invalid": "Enter an amount such as 25.00.",
            "max_decimal_places": "Use at most 2 decimal places (whole cents).",
        },
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "25.00"}),
        **kwargs,
    )


class TransferForm(forms.Form):
    """A manager's credit transfer to a managed account. The key is made when the form is first
    shown and travels with both steps, so a double submit transfers once."""

    amount = _money_field("Amount (USD)")
    key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, available: Decimal, confirming: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.available = available
        self.confirming = confirming  # not a field: a form shown again after an error must be confirmed again

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount <= 0:
            raise ValidationError("Transfer more than zero.")
        if amount > settings.BILLING_MAX_TRANSFER:
            raise ValidationError(f"A transfer is at most {format_money(settings.BILLING_MAX_TRANSFER)}.")
        return amount

    def clean(self):
        data = super().clean()
        amount = data.get("amount")
        # Checked here to show it before the confirmation step; the ledger checks it again under the
        # balance's lock. Not on the confirming POST: a repeat of a made transfer must reach the
        # ledger, which answers it with the first transfer rather than "not enough credit".
        if amount is not None and not self.confirming and amount > self.available:
            wanted, available = format_money(amount), format_money(self.available)
            self.add_error("amount", f"Not enough credit: {wanted} is more than your available {available}.")
        return data


class AdjustBalanceForm(forms.Form):
    """Platform staff's correction of a balance (admin site): credited when positive, debited when
    negative. The key is made when the form is shown, so a double submit adjusts once."""

    amount = _money_field("Amount (USD)", max_digits=14, help_text="Positive credits the account, negative debits it.")
    reason = forms.CharField(
        max_length=200,
        error_messages={"required": "Give the reason for the adjustment."},
        help_text="Shown on the account's ledger and kept in its audit log.",
    )
    key = forms.UUIDField(widget=forms.HiddenInput)

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise ValidationError("An adjustment is not zero.")
        return amount

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("Give the reason for the adjustment.")
        return reason


class ResaleMarkupForm(forms.Form):
    markup_percent = forms.DecimalField(
        label="Markup over the platform's cost (%)",
        min_value=Decimal("0"),
        max_value=Decimal("1000"),
        max_digits=6,
        decimal_places=2,
        help_text="0 to 1,000 %, two decimals at most. Applied to the reseller invoices of the next close.",
        error_messages={
            "required": "Enter a markup; 0 bills your roll-up accounts at your cost.",
            "invalid": "Enter the markup as a number, e.g. 15 or 12.5.",
            "max_decimal_places": "Use at most two decimals.",
            "max_digits": "Enter a markup of at most 1,000 %%.",
            "min_value": "The markup cannot be negative.",
            "max_value": "Enter a markup of at most 1,000 %%.",
        },
    )


class InvoicePaidForm(forms.Form):
    note = forms.CharField(
        label="Note (optional)",
        max_length=255,
        required=False,
        help_text="How it was paid, e.g. bank transfer reference.",
    )


class InvoiceVoidForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=255,
        error_messages={"required": "Give the reason for voiding the invoice."},
        help_text="Shown on the invoice and kept in the audit log.",
    )
