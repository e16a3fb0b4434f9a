"""v2 API of notifications: the key creator's alert choices (`/notification_settings`, shaped as
Telnyx's notification settings: one record per event condition, on the `email` channel, for the
account) and the account's low-balance threshold (`/low_balance_threshold`).

Alert choices are a person's: they are the key creator's, in the key's own account (a manager
key's `X-Managed-Account-Id` does not change whose choices they are). The threshold is the
account's: it follows `X-Managed-Account-Id` as every account resource does."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import Http404, JsonResponse

from accounts.api_access import ApiRequest, key_account
from accounts.models import Account, Membership
from billing.api import amount_field
from billing.ledger.selectors import current_balance
from notifications import selectors, services
from notifications.alerts import ALERT_LABELS, Alert
from portal.api import ApiError, actor, api_view, bool_field, invalid, iso, json_body

SETTING_FIELDS = ("status", "managed_accounts")
THRESHOLD_FIELDS = ("enabled", "threshold_amount")
STATUSES = ("enabled", "disabled")


def _membership(request: ApiRequest) -> Membership:
    key = request.api_key
    found = (
        Membership.objects.select_related("account", "user").filter(user=key.created_by, account=key.account).first()
    )
    if found is None:
        raise ApiError(404, "not_found", "Not found", "The key's creator is no longer a member of its account.")
    return found


def _setting(membership: Membership, choice: services.Choice) -> dict[str, Any]:
    return {
        "record_type": "notification_setting",
        "id": str(choice.alert),
        "notification_event_condition_id": str(choice.alert),
        "name": ALERT_LABELS[choice.alert],
        "notification_channel_id": "email",
        "channel_type_id": "email",
        "channel_destination": membership.user.email,
        "associated_record_type": "account",
        "associated_record_type_value": str(membership.account.public_id),
        "status": "enabled" if choice.email else "disabled",
        "managed_accounts": choice.managed_email,
        "user_id": str(membership.user.public_id),
    }


@api_view("GET")
def notification_settings(request: ApiRequest) -> JsonResponse:
    """Every alert, with the key creator's choice (their role's default until they choose)."""
    membership = _membership(request)
    rows = [_setting(membership, c) for c in services.choices_of(user=membership.user, membership=membership)]
    meta = {"page_number": 1, "page_size": len(rows), "total_pages": 1, "total_results": len(rows)}
    return JsonResponse({"data": rows, "meta": meta})


@api_view("GET", "PATCH")
def notification_setting(request: ApiRequest, setting_id: str) -> JsonResponse:
    """One alert's choice; PATCH `status` (`enabled`/`disabled`: e-mail it or not) and, on a manager,
    `managed_accounts` (also about its managed accounts)."""
    if setting_id not in set(Alert):
        raise Http404("No such notification setting.")
    alert = Alert(setting_id)
    membership = _membership(request)
    choices = {c.alert: c for c in services.choices_of(user=membership.user, membership=membership)}
    if request.method == "PATCH":
        body = json_body(request, allowed=SETTING_FIELDS)
        status = body.get("status", "enabled" if choices[alert].email else "disabled")
        if status not in STATUSES:
            raise invalid("status", "status must be enabled or disabled.")
        managed = bool_field(body, "managed_accounts", choices[alert].managed_email)
        email = {a for a, c in choices.items() if c.email and a != alert} | ({alert} if status == "enabled" else set())
        on_managed = {a for a, c in choices.items() if c.managed_email and a != alert} | ({alert} if managed else set())
        updated = services.set_choices(
            user=membership.user, membership=membership, email={str(a) for a in email},
            managed_email={str(a) for a in on_managed}, actor=actor(request),
        )  # fmt: skip
        choices = {c.alert: c for c in updated}
    return JsonResponse({"data": _setting(membership, choices[alert])})


@api_view("GET", "PATCH")
def low_balance_threshold(request: ApiRequest) -> JsonResponse:
    """The account's low-balance alert; PATCH `threshold_amount` (a decimal string, USD) and
    `enabled`. A roll-up managed account has no balance of its own: 404."""
    account = key_account(request)
    if services.threshold_refusal(account) is not None:
        raise Http404("A roll-up managed account has no balance of its own.")
    if request.method == "PATCH":
        body = json_body(request, allowed=THRESHOLD_FIELDS)
        row = selectors.threshold_of(account)
        amount = amount_field(body, "threshold_amount", required=row is None and "enabled" not in body)
        enabled = bool_field(body, "enabled", row.enabled if row else True)
        services.set_low_balance_threshold(
            account=account,
            amount=amount if amount is not None else (row.amount if row else Decimal("0")),
            enabled=enabled,
            actor=actor(request),
        )  # fmt: skip
    return JsonResponse({"data": _threshold(account)})


def _threshold(account: Account) -> dict[str, Any]:
    row = selectors.threshold_of(account)
    balance = current_balance(account)
    return {
        "record_type": "low_balance_threshold",
        "account_id": str(account.public_id),
        "enabled": bool(row and row.enabled),
        "threshold_amount": f"{row.amount:.2f}" if row else None,
        "currency": row.currency if row else balance.currency,
        "balance": f"{balance.amount:.2f}",
        "below": bool(row and row.enabled and row.below),
        "below_since": iso(row.below_since) if row and row.below else None,
        "updated_at": iso(row.updated_at) if row else None,
    }
