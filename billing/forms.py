from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from billing.models import PaymentMethod
from billing.money import format_money
from billing.usage.csv_upload import MAX_UPLOAD_BYTES

MEGABYTE = 1024 * 1024


class UsageUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        error_messages={"required": "Choose a CSV file to upload.", "empty": "The file is empty."},
        widget=forms.FileInput(attrs={"accept": ".csv,text/csv", "data-max-bytes": MAX_UPLOAD_BYTES}),
    )

    def clean_file(self) -> UploadedFile[bytes]:
        # Refused on its size alone, before a byte of it is read as CSV.
        upload: UploadedFile[bytes] = self.cleaned_data["file"]
        size = upload.size or 0  # FileField has already refused a file without one
        if size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"The file is {size / MEGABYTE:.1f} MB; the limit is {MAX_UPLOAD_BYTES // MEGABYTE} MB. "
                "Split it into smaller files."
            )
        return upload


def _money_field(
    label: str, *, max_digits: int | None = None, min_value: Decimal | None = None, help_text: str = ""
) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        decimal_places=2,
        error_messages={
            "required": "Enter an amount.",
            "invalid": "Enter an amount such as 25.00.",
            "max_decimal_places": "Use at most 2 decimal places (whole cents).",
        },
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "25.00"}),
        max_digits=max_digits,
        min_value=min_value,
        help_text=help_text,
    )


class TransferForm(forms.Form):
    """A manager's credit transfer to a managed account. The key is made when the form is first
    shown and travels with both steps, so a double submit transfers once."""

    amount = _money_field("Amount (USD)")
    key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, available: Decimal, confirming: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.available = available
        self.confirming = confirming  # not a field: a form shown again after an error must be confirmed again

    def clean_amount(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount"]
        if amount <= 0:
            raise ValidationError("Transfer more than zero.")
        if amount > settings.BILLING_MAX_TRANSFER:
            raise ValidationError(f"A transfer is at most {format_money(settings.BILLING_MAX_TRANSFER)}.")
        return amount

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
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

    def clean_amount(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount"]
        if amount == 0:
            raise ValidationError("An adjustment is not zero.")
        return amount

    def clean_reason(self) -> str:
        reason: str = self.cleaned_data["reason"].strip()
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


# --- Payments (billing.payment_views) --------------------------------------------------------------------


class TopUpForm(forms.Form):
    """ "Make a payment": an amount and one of the account's saved cards. The key is made when the
    form is first shown, so a double submit charges once."""

    amount = _money_field("Amount (USD)", max_digits=14)
    card = forms.ChoiceField(
        label="Card", error_messages={"required": "Choose a card.", "invalid_choice": "Choose one of your cards."}
    )
    key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, cards: Iterable[PaymentMethod], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cards = {str(card.public_id): card for card in cards}
        cast(forms.ChoiceField, self.fields["card"]).choices = [
            (public_id, f"{c.label}, expires {c.expiry}" + (" (default)" if c.is_default else ""))
            for public_id, c in self.cards.items()
        ]
        self.fields["amount"].error_messages["max_digits"] = self._too_much()

    @staticmethod
    def _too_much() -> str:
        return f"A payment is at most {format_money(settings.BILLING_MAX_TOP_UP)}."

    def clean_amount(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount"]
        if amount <= 0:
            raise ValidationError("Pay more than zero.")
        if amount > settings.BILLING_MAX_TOP_UP:
            raise ValidationError(self._too_much())
        return amount

    def clean_card(self) -> PaymentMethod:
        return self.cards[self.cleaned_data["card"]]


class CardSetupForm(forms.Form):
    """The browser's request for a SetupIntent. The key (the page's, plus the attempt's number)
    keeps a double click to one SetupIntent, and gives a new attempt after a decline a new one."""

    key = forms.RegexField(
        regex=r"^[0-9a-f-]{36}-[0-9]{1,4}$",
        error_messages={"required": "Reload the page and try again.", "invalid": "Reload the page and try again."},
    )


class SaveCardForm(forms.Form):
    setup_intent = forms.RegexField(
        regex=r"^seti_[A-Za-z0-9_]{1,200}$",
        error_messages={"required": "Enter the card details first.", "invalid": "Enter the card details again."},
        widget=forms.HiddenInput,
    )


class AutoRechargeForm(forms.Form):
    enabled = forms.BooleanField(label="Recharge automatically", required=False)
    threshold = _money_field(
        "When the balance falls below (USD)",
        max_digits=14,
        min_value=Decimal("0"),
        help_text="Zero or more.",
    )
    amount = _money_field("Charge the default card (USD)", max_digits=14)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["threshold"].error_messages["min_value"] = "The threshold is zero or more."
        self.fields["amount"].error_messages["max_digits"] = TopUpForm._too_much()

    def clean_amount(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount"]
        if amount <= 0:
            raise ValidationError("Recharge more than zero.")
        if amount > settings.BILLING_MAX_TOP_UP:
            raise ValidationError(f"A recharge is at most {format_money(settings.BILLING_MAX_TOP_UP)}.")
        return amount
