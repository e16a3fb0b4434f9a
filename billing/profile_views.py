"""The billing profile page (issue 12 item 7): who the account is on its invoices and where they
are e-mailed. Its billing people (owner, admin, billing: MANAGE_BILLING) edit it, a manager logged
in as a managed account too (audited as the manager); reporting members have no billing pages."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts import billing_profile as profiles
from accounts.access import AccountAccess, account_access
from accounts.actor import Actor
from accounts.forms import NAME_VALIDATORS, apply_refusal, sent_as_utf8
from accounts.models import BillingProfile
from accounts.permissions import MANAGE_BILLING

COUNTRY = re.compile(r"[A-Za-z]{2}")
RECIPIENT_SEPARATORS = re.compile(r"[\s,;]+")
TEXT = NAME_VALIDATORS  # no control characters (a legal name goes into e-mail headers), sent as UTF-8


class BillingProfileForm(forms.Form):
    legal_name = forms.CharField(
        label="Legal name", max_length=255, required=False, validators=TEXT,
        help_text="As it should read on invoices; the business name when empty.",
    )  # fmt: skip
    address_line1 = forms.CharField(label="Address", max_length=255, required=False, validators=TEXT)
    address_line2 = forms.CharField(label="Address (line 2)", max_length=255, required=False, validators=TEXT)
    city = forms.CharField(label="City", max_length=128, required=False, validators=TEXT)
    postal_code = forms.CharField(label="Postal code", max_length=32, required=False, validators=TEXT)
    region = forms.CharField(label="Region or state", max_length=128, required=False, validators=TEXT)
    country = forms.CharField(
        label="Country", max_length=64, required=False, help_text="Two-letter ISO code, e.g. DE, US, JP."
    )
    tax_id = forms.CharField(
        label="Tax id", max_length=64, required=False, validators=TEXT, help_text="VAT or GST number."
    )
    invoice_emails = forms.CharField(
        label="Invoice recipients",
        required=False,
        max_length=2000,
        validators=[sent_as_utf8],
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=(
            f"Up to {BillingProfile.MAX_RECIPIENTS} e-mail addresses, one a line. "
            "Without any, invoices go to the account's owner."
        ),
    )
    payment_terms_days = forms.IntegerField(
        label="Payment terms (days)", min_value=0, max_value=365, required=False,
        help_text="On the invoices you issue to your roll-up managed accounts: days from issue to due.",
    )  # fmt: skip

    def __init__(self, *args: Any, issuer: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not issuer:
            del self.fields["payment_terms_days"]

    def clean_country(self) -> str:
        country = str(self.cleaned_data["country"]).strip()
        if country and not COUNTRY.fullmatch(country):
            raise ValidationError("Give the country as its two-letter code, e.g. DE.")
        return country.upper()

    def clean_invoice_emails(self) -> list[str]:
        raw = [part for part in RECIPIENT_SEPARATORS.split(self.cleaned_data["invoice_emails"]) if part]
        try:
            return profiles.clean_recipients(raw)
        except profiles.BillingProfileRefusal as refused:
            raise ValidationError(refused.message) from None

    def clean_payment_terms_days(self) -> int:
        value = self.cleaned_data["payment_terms_days"]
        return BillingProfile.DEFAULT_PAYMENT_TERMS_DAYS if value is None else int(value)


def _initial(profile: BillingProfile | None) -> dict[str, Any]:
    if profile is None:
        return {"payment_terms_days": BillingProfile.DEFAULT_PAYMENT_TERMS_DAYS}
    values = {field: getattr(profile, field) for field in profiles.EDITABLE_FIELDS}
    values["invoice_emails"] = "\n".join(profile.invoice_emails)
    return values


@login_required
@require_http_methods(["GET", "POST"])
def billing_profile(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_BILLING)
    account = access.account
    issuer = account.is_manager
    if request.method == "GET":
        form = BillingProfileForm(initial=_initial(profiles.profile_of(account)), issuer=issuer)
        return _page(request, access, form)
    form = BillingProfileForm(request.POST, issuer=issuer)
    if form.is_valid():
        try:
            profiles.update_billing_profile(
                account=account, values=form.cleaned_data, actor=Actor.from_request(request)
            )
        except profiles.BillingProfileRefusal as refused:
            apply_refusal(form=form, refusal=refused)
        else:
            messages.success(request, "Billing profile saved. Invoices issued from now on carry it.")
            return redirect("billing_profile", account.public_id)
    return _page(request, access, form, status=422)


def _page(request: HttpRequest, access: AccountAccess, form: BillingProfileForm, status: int = 200) -> HttpResponse:
    account = access.account
    context = {
        "access": access,
        "account": account,
        "form": form,
        "recipients": profiles.invoice_recipients(account),
        "issuer": account.is_manager,
    }
    return render(request, "billing/billing_profile.html", context, status=status)
