"""Webhook events: which audit change types they are, and what each recipient is sent.

The audit log is the one source: every change that matters is recorded there, in the transaction of
the change, so a webhook event is an audit event seen from outside. The envelope is Telnyx's
(`data.record_type`, `data.id`, `data.event_type`, `data.occurred_at`, `data.payload`, `meta`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from accounts.audit import ChangeType
from accounts.models import Account, AuditEvent
from accounts.permissions import can_see_pricing


class EventType(StrEnum):
    MANAGED_ACCOUNT_CREATED = "managed_account.created"
    MANAGED_ACCOUNT_UPDATED = "managed_account.updated"
    MANAGED_ACCOUNT_DISABLED = "managed_account.disabled"
    MANAGED_ACCOUNT_ENABLED = "managed_account.enabled"
    MANAGED_ACCOUNT_CANCELLED = "managed_account.cancelled"
    SERVICE_BLOCKED = "service.blocked"
    SERVICE_UNBLOCKED = "service.unblocked"
    SPEND_LIMIT_REACHED = "spend_limit.reached"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    INVOICE_FINALIZED = "invoice.finalized"
    BILLING_MODE_CHANGED = "billing_mode.changed"
    BALANCE_LOW = "balance.low"


EVENT_LABELS: dict[EventType, str] = {
    EventType.MANAGED_ACCOUNT_CREATED: "Managed account created",
    EventType.MANAGED_ACCOUNT_UPDATED: "Managed account changed",
    EventType.MANAGED_ACCOUNT_DISABLED: "Managed account disabled",
    EventType.MANAGED_ACCOUNT_ENABLED: "Managed account enabled",
    EventType.MANAGED_ACCOUNT_CANCELLED: "Managed account cancelled",
    EventType.SERVICE_BLOCKED: "Service blocked",
    EventType.SERVICE_UNBLOCKED: "Service restored",
    EventType.SPEND_LIMIT_REACHED: "Spend limit reached",
    EventType.PAYMENT_SUCCEEDED: "Payment succeeded (top-up or auto-recharge)",
    EventType.PAYMENT_FAILED: "Payment failed (top-up or auto-recharge)",
    EventType.INVOICE_FINALIZED: "Invoice issued (number, period, total, due date)",
    EventType.BILLING_MODE_CHANGED: "Billing mode changed (a scheduled change took effect)",
    EventType.BALANCE_LOW: "Balance below the low-balance threshold",
}

# The one mapping from the audit log to webhook events; a change type not here sends nothing.
EVENT_OF: dict[str, EventType] = {
    ChangeType.MANAGED_ACCOUNT_CREATED: EventType.MANAGED_ACCOUNT_CREATED,
    ChangeType.MANAGED_ACCOUNT_UPDATED: EventType.MANAGED_ACCOUNT_UPDATED,
    ChangeType.MANAGED_ACCOUNT_DISABLED: EventType.MANAGED_ACCOUNT_DISABLED,
    ChangeType.MANAGED_ACCOUNT_ENABLED: EventType.MANAGED_ACCOUNT_ENABLED,
    ChangeType.MANAGED_ACCOUNT_CANCELLED: EventType.MANAGED_ACCOUNT_CANCELLED,
    ChangeType.SERVICE_BLOCKED: EventType.SERVICE_BLOCKED,
    ChangeType.SERVICE_UNBLOCKED: EventType.SERVICE_UNBLOCKED,
    ChangeType.SPEND_LIMIT_REACHED: EventType.SPEND_LIMIT_REACHED,
    ChangeType.TOP_UP_SUCCEEDED: EventType.PAYMENT_SUCCEEDED,
    ChangeType.AUTO_RECHARGE_CHARGED: EventType.PAYMENT_SUCCEEDED,
    ChangeType.TOP_UP_FAILED: EventType.PAYMENT_FAILED,
    ChangeType.AUTO_RECHARGE_FAILED: EventType.PAYMENT_FAILED,
    ChangeType.INVOICE_FINALIZED: EventType.INVOICE_FINALIZED,
    ChangeType.BILLING_MODE_CHANGED: EventType.BILLING_MODE_CHANGED,
    ChangeType.BALANCE_LOW: EventType.BALANCE_LOW,
}

# Events about a managed account recorded on its manager's log: the managed account is the subject.
_ABOUT_RELATED = {
    EventType.MANAGED_ACCOUNT_CREATED,
    EventType.MANAGED_ACCOUNT_UPDATED,
    EventType.MANAGED_ACCOUNT_DISABLED,
    EventType.MANAGED_ACCOUNT_ENABLED,
    EventType.MANAGED_ACCOUNT_CANCELLED,
    EventType.BILLING_MODE_CHANGED,
}

# Events recorded on the manager's log that go where the managed account's own events go: to its own
# endpoints and to its manager's endpoints that take its managed accounts' events.
_TO_SUBJECT = {EventType.BILLING_MODE_CHANGED}

# Fields of an event's changes that name a rate, a cost or a markup: never sent to an account whose
# pricing is hidden. Its own balance, top-ups and limits are its own money and stay. No event mapped
# today carries one; this keeps a priced field added to one of them from reaching such an account.
PRICED_FIELDS = frozenset({"rate", "cost", "unit_price", "markup", "resale_markup", "resale_rate", "spent"})


def subject_of(event: AuditEvent, event_type: EventType) -> Account:
    """The account the event is about: the managed account for managed_account.*, else the log's."""
    if event_type in _ABOUT_RELATED and event.related_account is not None:
        return event.related_account
    return event.account


def owner_of(event: AuditEvent, event_type: EventType) -> Account:
    """The account whose endpoints receive the event (its manager's fleet endpoints too)."""
    return subject_of(event, event_type) if event_type in _TO_SUBJECT else event.account


def _details(event: AuditEvent, event_type: EventType, subject: Account) -> dict[str, Any]:
    """Fields of the payload particular to an event type, beside `changes`."""
    if event_type == EventType.BALANCE_LOW:  # the account's own money: sent to hidden pricing too
        low = {c.get("field"): c.get("to") for c in event.changes}
        return {"balance": low.get("balance"), "threshold": low.get("threshold"), "currency": low.get("currency")}
    if event_type != EventType.BILLING_MODE_CHANGED:
        return {}
    values = {c.get("field"): c for c in event.changes}
    mode = values.get("billing_mode", {})
    return {
        "managed_account_id": str(subject.public_id),
        "from": mode.get("from"),
        "to": mode.get("to"),
        "effective_date": values.get("billing_mode_from", {}).get("to"),
    }


def event_data(
    event: AuditEvent, event_type: EventType, *, recipient: Account, manager_id: str | None
) -> dict[str, Any]:
    """The envelope's `data` for `recipient` (the endpoint's account), fixed when the delivery is
    made so every attempt sends the same event; `manager_id` is the subject's manager's public id.
    A hidden-pricing account receiving an event about itself gets no priced field; its manager gets
    the event in full."""
    subject = subject_of(event, event_type)
    changes = list(event.changes)
    if recipient.pk == subject.pk and not can_see_pricing(recipient):
        changes = [c for c in changes if c.get("field") not in PRICED_FIELDS]
    return {
        "record_type": "event",
        "id": str(event.public_id),
        "event_type": str(event_type),
        "occurred_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "payload": {
            "account_id": str(subject.public_id),
            "account_name": subject.name,
            "manager_account_id": manager_id,
            "resource_type": event.resource_type,
            "resource_id": event.resource_id,
            "changes": changes,
            "change_made_by": event.change_made_by,
            **_details(event, event_type, subject),
        },
    }
