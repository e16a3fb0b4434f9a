from django import forms
from django.core.exceptions import ValidationError

from accounts.errors import Refusal
from accounts.models import Account, Role
from accounts.services import EMAIL_TAKEN_MESSAGE, create_standard_account, email_in_use


def sent_as_utf8(value: str) -> None:
    """Django decodes a form body as UTF-8 and turns any other bytes (a latin-1 form, say) into
    U+FFFD: refuse the mangled text rather than store it."""
    if "\ufffd" in value:
        raise ValidationError("This has characters that were not sent as UTF-8 (shown as \ufffd); type it again.")


def apply_refusal(*, form: forms.Form, refusal: Refusal) -> None:
    """Every page shows a service's refusal the same way: next to the field it concerns when the
    form has that field, at the top of the form otherwise."""
    form.add_error(refusal.field if refusal.field in form.fields else None, refusal.message)


class SignupForm(forms.Form):
    """allauth's sign-up plus the organisation the new user owns (a standard account)."""

    organization_name = forms.CharField(label="Business name", max_length=255, strip=True, validators=[sent_as_utf8])

    def signup(self, request, user):
        create_standard_account(owner=user, name=self.cleaned_data["organization_name"])


class ManagedAccountCreateForm(forms.Form):
    name = forms.CharField(label="Business name", max_length=255, strip=True, validators=[sent_as_utf8])
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

    def clean_email(self):
        # Reported with the other field errors at once; the service checks again under the race.
        email = self.cleaned_data["email"].strip().lower()
        if email_in_use(email):
            raise ValidationError(EMAIL_TAKEN_MESSAGE)
        return email


class ManagedAccountSettingsForm(forms.Form):
    name = forms.CharField(label="Business name", max_length=255, strip=True, validators=[sent_as_utf8])
    allow_custom_pricing = forms.BooleanField(required=False, label="Allow custom pricing")
    pricing_hidden = forms.BooleanField(required=False, label="Hide pricing from this account")


class AccountSettingsForm(forms.Form):
    name = forms.CharField(label="Business name", max_length=255, strip=True, validators=[sent_as_utf8])
    admins_can_log_in_as = forms.BooleanField(required=False, label="Admins may log in as managed accounts")

    def __init__(self, *args, account: Account, **kwargs):
        super().__init__(*args, **kwargs)
        if not account.is_manager:
            del self.fields["admins_can_log_in_as"]


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail", max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.REPORTING)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class AuditFilterForm(forms.Form):
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    change_type = forms.ChoiceField(label="Type", required=False)

    def __init__(self, *args, change_types: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["change_type"].choices = [("", "All types")] + [(t, t) for t in change_types]

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise ValidationError("The end date is before the start date.")
        return data


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label="Key name",
        max_length=100,
        strip=True,
        validators=[sent_as_utf8],
        help_text="What the key is for, e.g. “Billing sync”. Up to 100 characters.",
    )
