"""The audit log: one writer, called inside the transaction of the change it records."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict

from django.db import connection
from django.db.models import BooleanField, Case, Model, Q, QuerySet, Value, When
from django.db.models.query import ModelIterable
from django.dispatch import Signal

from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Membership, Role
from accounts.permissions import can_see_manager_notes, can_see_pricing


class ChangeType(StrEnum):
    """Every change this portal records; the audit page offers them as a filter."""

    ACCOUNT_CREATED = "account.created"
    ACCOUNT_UPDATED = "account.updated"
    ACCOUNT_LIMIT_CHANGED = "account.limit_changed"
    USER_SIGNED_IN = "user.signed_in"
    INVITATION_CREATED = "invitation.created"
    INVITATION_REVOKED = "invitation.revoked"
    MEMBERSHIP_CREATED = "membership.created"
    MEMBERSHIP_ROLE_CHANGED = "membership.role_changed"
    MEMBERSHIP_REMOVED = "membership.removed"
    MANAGED_ACCOUNT_CREATED = "managed_account.created"
    MANAGED_ACCOUNT_UPDATED = "managed_account.updated"
    MANAGED_ACCOUNT_DISABLED = "managed_account.disabled"
    MANAGED_ACCOUNT_ENABLED = "managed_account.enabled"
    MANAGED_ACCOUNT_CANCELLED = "managed_account.cancelled"
    LOG_IN_AS_STARTED = "log_in_as.started"
    LOG_IN_AS_ENDED = "log_in_as.ended"
    USAGE_INGESTED = "usage.ingested"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    BALANCE_TRANSFERRED = "balance.transferred"
    BALANCE_ADJUSTED = "balance.adjusted"
    BALANCE_CREDIT_LIMIT_CHANGED = "balance.credit_limit_changed"
    RATE_CHANGED = "rate.changed"
    PAYMENT_METHOD_ADDED = "payment_method.added"
    PAYMENT_METHOD_REMOVED = "payment_method.removed"
    PAYMENT_METHOD_MADE_DEFAULT = "payment_method.made_default"
    TOP_UP_SUCCEEDED = "top_up.succeeded"
    TOP_UP_FAILED = "top_up.failed"
    AUTO_RECHARGE_CHANGED = "auto_recharge.changed"
    AUTO_RECHARGE_CHARGED = "auto_recharge.charged"
    AUTO_RECHARGE_FAILED = "auto_recharge.failed"
    INVOICE_MARKED_PAID = "invoice.marked_paid"
    INVOICE_VOIDED = "invoice.voided"
    RESALE_MARKUP_CHANGED = "resale_markup.changed"
    BILLING_MODE_CHANGE_SCHEDULED = "billing_mode.change_scheduled"
    BILLING_MODE_CHANGED = "billing_mode.changed"
    BILLING_MODE_CHANGE_CANCELLED = "billing_mode.change_cancelled"
    SPEND_LIMIT_SET = "spend_limit.set"
    SPEND_LIMIT_REMOVED = "spend_limit.removed"
    SPEND_LIMIT_REACHED = "spend_limit.reached"
    SPEND_LIMIT_NEARED = "spend_limit.neared"  # 80 % of a limit used, once per crossing
    SERVICE_BLOCKED = "service.blocked"
    SERVICE_UNBLOCKED = "service.unblocked"
    WEBHOOK_ENDPOINT_CREATED = "webhook_endpoint.created"
    WEBHOOK_ENDPOINT_UPDATED = "webhook_endpoint.updated"
    WEBHOOK_DELIVERY_RESENT = "webhook_delivery.resent"
    WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint.deleted"
    INVOICE_FINALIZED = "invoice.finalized"
    CREDIT_NOTE_ISSUED = "credit_note.issued"
    BILLING_PROFILE_CHANGED = "billing_profile.changed"
    RESALE_RATE_SET = "resale_rate.set"
    RESALE_RATE_REMOVED = "resale_rate.removed"
    BALANCE_LOW = "balance.low"
    BALANCE_RECOVERED = "balance.recovered"
    LOW_BALANCE_THRESHOLD_CHANGED = "low_balance_threshold.changed"
    NOTIFICATION_SETTINGS_CHANGED = "notification_settings.changed"


CHANGE_TYPES = tuple(ChangeType)

# Sent by `record` and `record_many` with `events`, the rows just written, inside the caller's
# transaction: webhooks derives its events from them there (accounts imports no listener).
events_recorded = Signal()

# One entry of an event's `changes` (a JSON list); "from" is a keyword, hence the functional form.
FieldChange = TypedDict("FieldChange", {"field": str, "from": object, "to": object})


def field_changes(instance: Model, before: Mapping[str, Any], fields: Iterable[str]) -> list[FieldChange]:
    """The `{field, from, to}` list for the fields whose value differs from `before`."""
    changes: list[FieldChange] = []
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
        and account.manager_id is not None
        and Membership.objects.filter(account_id=account.manager_id, user=actor.user).exists()
    ):
        return AuditEvent.MadeBy.ACCOUNT_MANAGER  # the manager's people, working on its managed account
    return AuditEvent.MadeBy.ACCOUNT_OWNER if role == Role.OWNER else AuditEvent.MadeBy.ORGANIZATION_MEMBER


# What people call a resource, by model: kept with its event (AuditEvent.resource_label), so the
# log names a removed member or a deleted card. Only names and numbers: nothing priced.
LABELS: dict[str, str] = {
    "account": "name",
    "user": "email",
    "invitation": "email",
    "apikey": "name",
    "invoice": "number",
    "paymentmethod": "label",
    "webhookendpoint": "url",
}


def _label_of(resource: Model) -> str:
    model = resource._meta.model_name or ""
    if model == "membership" and isinstance(resource, Membership):
        return resource.user.email
    attribute = LABELS.get(model)
    value = getattr(resource, attribute, "") if attribute else ""
    return str(value or "")[:255]


def record(
    *,
    account: Account,
    actor: Actor,
    change_type: ChangeType,
    resource: Model,
    changes: list[FieldChange] | None = None,
    related_account: Account | None = None,
) -> AuditEvent:
    resource_id = getattr(resource, "public_id", None) or resource.pk
    event = AuditEvent.objects.create(
        account=account,
        related_account=related_account,
        change_type=change_type,
        resource_type=resource._meta.model_name or "",  # None only before the class is set up
        resource_id=str(resource_id),
        resource_label=_label_of(resource),
        changes=changes or [],
        change_made_by=_made_by(account=account, actor=actor),
        user=actor.user,
        user_email=actor.user.email if actor.user else "",
        acting_as=actor.acting_as,
        ip_address=actor.ip_address,
    )
    events_recorded.send(sender=AuditEvent, events=[event])
    return event


@dataclass(frozen=True)
class Entry:
    """One event of `record_many`, as `record`'s arguments."""

    account: Account
    change_type: ChangeType
    resource: Model
    changes: list[FieldChange]
    related_account: Account | None = None


def record_many(*, actor: Actor, entries: list[Entry]) -> list[AuditEvent]:
    """`record` for many events by one actor in one INSERT (controls' checks of thousands of accounts)."""
    made_by = {e.account.pk: _made_by(account=e.account, actor=actor) for e in entries}
    events = AuditEvent.objects.bulk_create(
        AuditEvent(
            account=e.account,
            related_account=e.related_account,
            change_type=e.change_type,
            resource_type=e.resource._meta.model_name or "",
            resource_id=str(getattr(e.resource, "public_id", None) or e.resource.pk),
            resource_label=_label_of(e.resource),
            changes=e.changes,
            change_made_by=made_by[e.account.pk],
            user=actor.user,
            user_email=actor.user.email if actor.user else "",
            acting_as=actor.acting_as,
            ip_address=actor.ip_address,
        )
        for e in entries
    )
    events_recorded.send(sender=AuditEvent, events=events)
    return events


# Events whose changes carry prices: left out of the log of an account whose pricing is hidden.
PRICED_CHANGE_TYPES = (ChangeType.RATE_CHANGED,)


# A reseller invoice's events (marked paid, voided, with the manager's note) are recorded on its
# issuer, the manager, naming the bill-to as `related_account`; `resource_type` is the model's name.
INVOICE_RESOURCE_TYPE = "invoice"
# The `changes` field of those events that carries the manager's free-text note.
STATUS_NOTE_FIELD = "status_note"


def resale_invoice_notes_visible(account: Account) -> bool:
    """Whether `account`'s log shows the manager's note on the reseller invoices billed to it
    (permissions.can_see_manager_notes, as the invoice page). The events themselves are always in
    the bill-to's log: it sees every invoice billed to it."""
    return can_see_manager_notes(account)


class _WithoutManagerNotes(ModelIterable[AuditEvent]):
    """Yields the events with the manager's note taken out of `changes` wherever the query marked
    it withheld (`manager_note_withheld`). The stored row keeps it: the manager's log shows it."""

    def __iter__(self) -> Iterator[AuditEvent]:
        for event in super().__iter__():
            if getattr(event, "manager_note_withheld", False):
                event.changes = [c for c in event.changes if c.get("field") != STATUS_NOTE_FIELD]
            yield event


def _without_manager_notes(events: QuerySet[AuditEvent], account: Account) -> QuerySet[AuditEvent]:
    """`events` as `account` may read them: its reseller invoices' events without the manager's
    note. In the query itself, so every reader of events_for_account (the log page, the managed
    account page, GET /v2/audit_events, their paging) gets the same rows; only `.values()` would
    bypass it, and no reader uses it for `changes`."""
    withheld = Q(related_account=account, resource_type=INVOICE_RESOURCE_TYPE) & ~Q(account=account)
    events = events.annotate(
        manager_note_withheld=Case(When(withheld, then=Value(True)), default=Value(False), output_field=BooleanField())
    )
    events._iterable_class = _WithoutManagerNotes
    return events


def _scopes(account: Account) -> list[Q]:
    """The parts of an account's log (events_for_account): its own events, those of others that
    concern it, and, for a manager, its people's changes in its managed accounts. Each is read by an
    index of its own (account, created_at / related_account, created_at), which one OR of them is not:
    PostgreSQL then walks every account's events newest first, filtering."""
    scopes = [Q(account=account), Q(related_account=account)]
    if account.is_manager:
        managed = Account.objects.filter(manager=account).values("pk")
        scopes.append(Q(account__in=managed, change_made_by=AuditEvent.MadeBy.ACCOUNT_MANAGER))
    return scopes


def _visible(events: QuerySet[AuditEvent], account: Account) -> QuerySet[AuditEvent]:
    """Leaves out what `account` may not see: a priced change where its pricing is hidden."""
    if not can_see_pricing(account):
        events = events.exclude(change_type__in=PRICED_CHANGE_TYPES)
    return events


def events_for_account(account: Account) -> QuerySet[AuditEvent]:
    """Events an account's log shows (pages and API alike): its own, those of others that concern
    it, and, for a manager, every change its people made in its managed accounts (logged in as one,
    or from the manager's pages and keys: `change_made_by` account_manager), which the managed
    account's log shows too; never one about what it may not see (a priced change where pricing is
    hidden), nor what is another's to know (the manager's note on a reseller invoice, where pricing
    is hidden). This is the one place that decides the log's scope. The accounts and people an
    event names are loaded with it (accounts.audit_text reads them).

    How it is read: as one OR of the parts, PostgreSQL walks the whole log newest first until a
    page is full. For a manager, whose events are a large share of the log, that is quick; for any
    other account it read everyone's events to fill a page of its few (41,412 read for 4 at 3,000
    managed accounts, growing with the log), so there the parts are a UNION of ids, each read by
    its own index. (The UNION would read every event of a manager's log before sorting.)"""
    parts = _scopes(account)
    if account.is_manager:
        scope = Q()
        for part in parts:
            scope |= part
        events = AuditEvent.objects.filter(scope)
    else:
        ids = [AuditEvent.objects.filter(part).order_by().values("pk") for part in parts]
        events = AuditEvent.objects.filter(pk__in=ids[0].union(*ids[1:]))
    return _readable(_visible(events, account), account)


def _readable(events: QuerySet[AuditEvent], account: Account) -> QuerySet[AuditEvent]:
    if not resale_invoice_notes_visible(account):
        events = _without_manager_notes(events, account)
    return events.select_related("user", "acting_as", "account", "related_account")


def latest_events_for_account(account: Account, limit: int) -> list[AuditEvent]:
    """The newest `limit` events of events_for_account(account), as it would give them, read at a
    cost that does not grow with the log (the overview's recent activity): the newest `limit` of
    each part of the scope by its own index (one UNION ALL where the database allows a LIMIT in each
    part, else a query per part), then those few events, newest first, with what they name."""
    newest = ("-created_at", "-id")
    parts = [
        _visible(AuditEvent.objects.filter(part), account).order_by(*newest).values_list("pk", flat=True)[:limit]
        for part in _scopes(account)
    ]
    if connection.features.supports_slicing_ordering_in_compound:
        candidates: QuerySet[AuditEvent, int] | list[int] = parts[0].union(*parts[1:], all=True)
    else:
        candidates = sorted({pk for part in parts for pk in part})
    return list(_readable(AuditEvent.objects.filter(pk__in=candidates), account).order_by(*newest)[:limit])
