from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import Account
from webhooks.addresses import AddressRefused, parse
from webhooks.events import EVENT_LABELS, EventType


class EndpointForm(forms.Form):
    url = forms.CharField(
        label="URL", max_length=2000, help_text="Where we POST the events: an http:// or https:// address."
    )
    description = forms.CharField(label="Description", max_length=200, required=False)
    event_types = forms.MultipleChoiceField(
        label="Events",
        choices=[(str(t), f"{t} ({EVENT_LABELS[t]})") for t in EventType],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one event."},
    )
    include_managed_accounts = forms.BooleanField(label="Also the events of all my managed accounts", required=False)

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not account.is_manager:
            del self.fields["include_managed_accounts"]

    def clean_url(self) -> str:
        url = str(self.cleaned_data["url"]).strip()
        try:
            parse(url)
        except AddressRefused as refused:
            raise forms.ValidationError(refused.message) from None
        return url
