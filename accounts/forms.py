from datetime import date
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from accounts.errors import Refusal
from accounts.models import Account, Role, User
from accounts.services import create_standard_account
from accounts.validators import validate_name


def sent_as_utf8(value: str) -> None:
    """Django decodes a form body as UTF-8 and turns any other bytes (a latin-1 form, say) into
    U+FFFD: refuse the mangled text rather than store it."""
    if "\ufffd" in value:
        raise ValidationError("This has characters that were not sent as UTF-8 (shown as \ufffd); type it again.")


# Every name field (business names, key names): the API checks the same with accounts.validators.
NAME_VALIDATORS = [sent_as_utf8, validate_name]


def apply_refusal(*, form: forms.Form, refusal: Refusal) -> None:
    """Every page shows a service's refusal the same way: next to the field it concerns when the
    form has that field, at the top of the form otherwise."""
    form.add_error(refusal.field if refusal.field in form.fields else None, refusal.message)


class SignupForm(forms.Form):
    """allauth's sign-up plus the organisation the new user owns (a standard account)."""

    organization_name = forms.CharField(label="Business name", max_length=255, strip=True, validators=NAME_VALIDATORS)

    def signup(self, request: HttpRequest, user: User) -> None:
        create_standard_account(owner=user, name=self.cleaned_data["organization_name"])


class InviteeSignupForm(forms.Form):
    """An invitee's own password; the e-mail address is the invitation's."""

    password1 = forms.CharField(
        label="Choose a password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="The password again", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password2") and data["password1"] != data["password2"]:
            self.add_error("password2", "The two passwords differ.")
        return data


class ManagedAccountCreateForm(forms.Form):
    name = forms.CharField(label="Business name", max_length=255, strip=True, validators=NAME_VALIDATORS)
    email = forms.EmailField(label="Owner e-mail", max_length=254, validators=[sent_as_utf8])
    password = forms.CharField(
        label="Owner password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Optional. Without one, the owner cannot sign in until they reset their password.",
    )
    billing_mode = forms.ChoiceField(
        choices=Account.BillingMode.choices,
        initial=Account.BillingMode.ROLLUP,
        widget=forms.RadioSelect,
        help_text="Roll-up: usage is billed to you. Separate: the account pays the platform itself.",
    )
    allow_custom_pricing = forms.BooleanField(required=False, label="Allow custom pricing")
    pricing_hidden = forms.BooleanField(required=False, label="Hide pricing from this account")

    # Shown only when another of the manager's accounts has the name (accounts.views.managed_create).
    confirm_same_name = forms.BooleanField(required=False, widget=forms.HiddenInput, label="Create it anyway")

    def offer_same_name(self, same_named: list[Account]) -> None:
        """Refuse the name until confirmed, naming the accounts that have it by their owner e-mail."""
        owners = ", ".join(account.email or "no owner" for account in same_named)
        self.add_error(
            "name",
            f"You already have a managed account named {same_named[0].name} (owner: {owners}). "
            "Tick the box below to create another one with the same name.",
        )
        field = self.fields["confirm_same_name"]
        field.widget = forms.CheckboxInput()
        field.label = f"Create another account named {same_named[0].name}"

    def clean_email(self) -> str:
        # No "already registered" here: an address that has a user gets an invitation instead
        # (accounts.services.create_managed_account), and the page answers alike either way.
        email: str = self.cleaned_data["email"].strip().lower()
        return email


class ManagedAccountSettingsForm(forms.Form):
    name = forms.CharField(label="Business name", max_length=255, strip=True, validators=NAME_VALIDATORS)
    allow_custom_pricing = forms.BooleanField(required=False, label="Allow custom pricing")
    pricing_hidden = forms.BooleanField(required=False, label="Hide pricing from this account")


class AccountSettingsForm(forms.Form):
    name = forms.CharField(label="Business name", max_length=255, strip=True, validators=NAME_VALIDATORS)
    admins_can_log_in_as = forms.BooleanField(required=False, label="Admins may log in as managed accounts")

    def __init__(self, *args: Any, account: Account, can_grant_log_in_as: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Offered to a manager's owners only (`Permissions.grant_log_in_as`); the service refuses it too.
        if not (account.is_manager and can_grant_log_in_as):
            del self.fields["admins_can_log_in_as"]


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail", max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.REPORTING)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


# The days the audit log can be filtered on: far wider than any log, far inside what dates (and
# the day after the end, which the filter uses) can hold.
LOG_FIRST_DAY, LOG_LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)


def within_log_days(value: date) -> None:
    if not LOG_FIRST_DAY <= value <= LOG_LAST_DAY:
        raise ValidationError(f"Choose a day from {LOG_FIRST_DAY:%Y-%m-%d} to {LOG_LAST_DAY:%Y-%m-%d}.")


class AuditFilterForm(forms.Form):
    start = forms.DateField(
        label="From", required=False, validators=[within_log_days], widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label="To", required=False, validators=[within_log_days], widget=forms.DateInput(attrs={"type": "date"})
    )
    change_type = forms.ChoiceField(label="Type", required=False)

    def __init__(self, *args: Any, change_types: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        change_type = cast(forms.ChoiceField, self.fields["change_type"])
        change_type.choices = [("", "All types"), *change_types]  # (code, label) pairs

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise ValidationError("The end date is before the start date.")
        return data


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label="Key name",
        max_length=100,
        strip=True,
        validators=NAME_VALIDATORS,
        help_text="What the key is for, e.g. “Billing sync”. Up to 100 characters.",
    )
