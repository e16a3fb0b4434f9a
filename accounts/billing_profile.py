"""Billing profiles (issue 12 item 7): who an account is on an invoice, where its invoices are
e-mailed, and the payment terms of an issuer. Reads and the one write, audited in its transaction.

The platform issues invoices too: its profile is the setting PLATFORM_BILLING_PROFILE (a dict of
the fields below, `payment_terms_days` included), PLATFORM_DEFAULTS without it. In accounts, the
bottom app, so that billing's invoices and the profile page read the same rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from accounts import audit
from accounts.actor import Actor
from accounts.errors import Refusal
from accounts.locks import lock_or_create
from accounts.models import Account, BillingProfile, Membership, Role

# The profile's fields a person edits, in the order the page shows them.
ADDRESS_FIELDS = ("address_line1", "address_line2", "city", "postal_code", "region", "country")
EDITABLE_FIELDS = ("legal_name", *ADDRESS_FIELDS, "tax_id", "invoice_emails", "payment_terms_days")

PLATFORM_DEFAULTS: dict[str, Any] = {
    "legal_name": "Mission Control (the platform)",
    "address_line1": "",
    "address_line2": "",
    "city": "",
    "postal_code": "",
    "region": "",
    "country": "",
    "tax_id": "",
    "email": "billing@mission-control.localhost",
    "payment_terms_days": BillingProfile.DEFAULT_PAYMENT_TERMS_DAYS,
}


class BillingProfileRefusal(Refusal):
    """A billing profile the rules do not allow (too many recipients, a bad address)."""


def profile_of(account: Account) -> BillingProfile | None:
    return BillingProfile.objects.filter(account=account).first()


def platform_profile() -> dict[str, Any]:
    configured: Mapping[str, Any] = getattr(settings, "PLATFORM_BILLING_PROFILE", None) or {}
    return {**PLATFORM_DEFAULTS, **configured}


def payment_terms_days(issuer: Account | None, profile: BillingProfile | None) -> int:
    """Days from issue to due on the invoices `issuer` issues (None: the platform's setting), by its
    `profile` (None: it has none); 14 by default."""
    if issuer is None:
        return int(platform_profile()["payment_terms_days"])
    return profile.payment_terms_days if profile is not None else BillingProfile.DEFAULT_PAYMENT_TERMS_DAYS


def details(account: Account, profile: BillingProfile | None) -> dict[str, Any]:
    """What an invoice keeps of a party (its snapshot): the legal name (the account's name without
    one), the address, the tax id and the account's contact e-mail. Never a price."""
    values = {field: getattr(profile, field) if profile is not None else "" for field in ADDRESS_FIELDS}
    return {
        "name": (profile.legal_name if profile is not None else "") or account.name,
        **values,
        "tax_id": profile.tax_id if profile is not None else "",
        "email": account.email,
    }


def platform_details() -> dict[str, Any]:
    profile = platform_profile()
    return {
        "name": profile["legal_name"],
        **{field: str(profile.get(field, "")) for field in ADDRESS_FIELDS},
        "tax_id": profile["tax_id"],
        "email": profile["email"],
    }


def profiles_of(account_ids: Iterable[int]) -> dict[int, BillingProfile]:
    """{account id: its profile} for the accounts that have one, in one query."""
    return {p.account_id: p for p in BillingProfile.objects.filter(account_id__in=list(account_ids))}


def address_lines(snapshot: Mapping[str, Any]) -> list[str]:
    """A snapshot's postal address as printed: street lines, `postal code city`, region, country."""
    town = " ".join(part for part in (snapshot.get("postal_code", ""), snapshot.get("city", "")) if part)
    lines = [snapshot.get("address_line1", ""), snapshot.get("address_line2", ""), town]
    lines += [snapshot.get("region", ""), snapshot.get("country", "")]
    return [str(line) for line in lines if line]


def invoice_recipients(account: Account, profile: BillingProfile | None = None) -> list[str]:
    """Where `account`'s invoices are e-mailed: its profile's recipients, else its owner's e-mail
    (the account's contact e-mail when it has no owner)."""
    profile = profile if profile is not None else profile_of(account)
    if profile is not None and profile.invoice_emails:
        return list(profile.invoice_emails)
    owner = (
        Membership.objects.filter(account=account, role=Role.OWNER, user__is_active=True)
        .order_by("created_at", "pk")
        .values_list("user__email", flat=True)
        .first()
    )
    return [owner or account.email]


def clean_recipients(value: Iterable[str]) -> list[str]:
    """The recipients as stored: trimmed, lower-case, each once, valid, at most MAX_RECIPIENTS."""
    seen: list[str] = []
    for raw in value:
        address = raw.strip().lower()
        if not address or address in seen:
            continue
        try:
            validate_email(address)
        except ValidationError:
            raise BillingProfileRefusal(f"'{address[:80]}' is not an e-mail address.", field="invoice_emails") from None
        seen.append(address)
    if len(seen) > BillingProfile.MAX_RECIPIENTS:
        raise BillingProfileRefusal(
            f"At most {BillingProfile.MAX_RECIPIENTS} invoice recipients; you gave {len(seen)}.", field="invoice_emails"
        )
    return seen


@transaction.atomic
def update_billing_profile(*, account: Account, values: Mapping[str, Any], actor: Actor) -> BillingProfile:
    """Sets the profile's fields in `values` (EDITABLE_FIELDS; payment terms only on a manager,
    the one kind of account that issues invoices), audited with the fields that changed. Invoices
    already issued keep the profile they were issued with."""
    profile = lock_or_create(BillingProfile.objects, account=account)
    before = {field: getattr(profile, field) for field in EDITABLE_FIELDS}
    for field in EDITABLE_FIELDS:
        if field not in values or (field == "payment_terms_days" and not account.is_manager):
            continue
        value = values[field]
        if field == "invoice_emails":
            value = clean_recipients(value)
        elif field == "country":
            value = str(value).strip().upper()
        elif field != "payment_terms_days":
            value = str(value).strip()
        setattr(profile, field, value)
    changes = audit.field_changes(profile, before, EDITABLE_FIELDS)
    if not changes:
        return profile
    profile.updated_by = actor.user
    profile.full_clean(exclude=["account", "updated_by"])
    profile.save()
    audit.record(
        account=account, actor=actor, change_type=audit.ChangeType.BILLING_PROFILE_CHANGED, resource=account,
        changes=changes,
    )  # fmt: skip
    return profile
