"""The audit log: one writer, called inside the transaction of the change it records."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Model, Q, QuerySet

from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Membership, Role
from accounts.permissions import can_see_pricing

# Every change_type this portal writes; the audit page offers them as a filter.
CHANGE_TYPES = (
    "account.created",
    "account.updated",
    "account.limit_changed",
    "user.signed_in",
    "invitation.created",
    "invitation.revoked",
    "membership.created",
    "membership.role_changed",
    "membership.removed",
    "managed_account.created",
    "managed_account.updated",
    "managed_account.disabled",
    "managed_account.enabled",
    "managed_account.cancelled",
    "log_in_as.started",
    "log_in_as.ended",
    "usage.ingested",
    "api_key.created",
    "api_key.revoked",
    "balance.transferred",
    "balance.adjusted",
    "balance.credit_limit_changed",
    "rate.changed",
    "payment_method.added",
    "payment_method.removed",
    "payment_method.made_default",
    "top_up.succeeded",
    "top_up.failed",
    "auto_recharge.changed",
    "auto_recharge.charged",
    "auto_recharge.failed",
    "invoice.marked_paid",
    "invoice.voided",
    "resale_markup.changed",
)


def field_changes(instance: Model, before: dict, fields: Iterable[str]) -> list[dict]:
    """The `{field, from, to}` list for the fields whose value differs from `before`."""
    changes = []
    for field in fields:
        old, new = before.get(field), getattr(instance, field)
        if old != new:
            changes.append({"field": field, "from": old, "to": new})
    return changes


def _made_by(*, account: Account, actor: Actor) -> str:
    if actor.acting_as is not None:
        return AuditEvent.MadeBy.ACCOUNT_MANAGER
    if actor.platform or actor.user is None:
        return AuditEvent.MadeBy.PLATFORM
    role = Membership.objects.filter(account=account, user=actor.user).values_list("role", flat=True).first()
    if (
        role is None
        and account.is_managed
        and Membership.objects.filter(account_id=account.manager_id, user=actor.user).exists()
    ):
        return AuditEvent.MadeBy.ACCOUNT_MANAGER  # the manager's people, working on its managed account
    return AuditEvent.MadeBy.ACCOUNT_OWNER if role == Role.OWNER else AuditEvent.MadeBy.ORGANIZATION_MEMBER


def record(
    *,
    account: Account,
    actor: Actor,
    change_type: str,
    resource: Model,
    changes: list[dict] | None = None,
    related_account: Account | None = None,
) -> AuditEvent:
    assert change_type in CHANGE_TYPES, f"unknown audit change_type {change_type!r}"
    resource_id = getattr(resource, "public_id", None) or resource.pk
    return AuditEvent.objects.create(
        account=account,
        related_account=related_account,
        change_type=change_type,
        resource_type=resource._meta.model_name,
        resource_id=str(resource_id),
        changes=changes or [],
        change_made_by=_made_by(account=account, actor=actor),
        user=actor.user,
        user_email=actor.user.email if actor.user else "",
        acting_as=actor.acting_as,
        ip_address=actor.ip_address,
    )


# Events whose changes carry prices: left out of the log of an account whose pricing is hidden.
PRICED_CHANGE_TYPES = ("rate.changed",)


def events_for_account(account: Account) -> QuerySet[AuditEvent]:
    """Events an account's log shows (pages and API alike): its own, and those of others that
    concern it; never a priced change where pricing is hidden."""
    events = AuditEvent.objects.filter(Q(account=account) | Q(related_account=account))
    if not can_see_pricing(account):
        events = events.exclude(change_type__in=PRICED_CHANGE_TYPES)
    return events.select_related("user", "acting_as")
