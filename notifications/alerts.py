"""The alerts a person may receive, which audit change types they are, and who gets them by default.

An alert is an audit event seen by the people it concerns: the audit log is the one record of every
change that matters, so the e-mails are derived from it (as webhooks are)."""

from __future__ import annotations

from enum import StrEnum

from accounts.audit import INVOICE_RESOURCE_TYPE, ChangeType
from accounts.models import Account, AuditEvent, Role


class Alert(StrEnum):
    BALANCE_LOW = "balance.low"
    SPEND_LIMIT_NEARED = "spend_limit.neared"
    SPEND_LIMIT_REACHED = "spend_limit.reached"
    SERVICE_BLOCKED = "service.blocked"
    SERVICE_UNBLOCKED = "service.unblocked"
    INVOICE_ISSUED = "invoice.issued"
    PAYMENT_FAILED = "payment.failed"


ALERT_LABELS: dict[Alert, str] = {
    Alert.BALANCE_LOW: "Balance below the low-balance threshold",
    Alert.SPEND_LIMIT_NEARED: "Spend limit 80 % used",
    Alert.SPEND_LIMIT_REACHED: "Spend limit reached",
    Alert.SERVICE_BLOCKED: "Service blocked",
    Alert.SERVICE_UNBLOCKED: "Service restored",
    Alert.INVOICE_ISSUED: "Invoice issued",
    Alert.PAYMENT_FAILED: "Payment failed (top-up or auto-recharge)",
}

# The one mapping from the audit log to alerts; a change type not here sends no e-mail.
ALERT_OF: dict[str, Alert] = {
    ChangeType.BALANCE_LOW: Alert.BALANCE_LOW,
    ChangeType.SPEND_LIMIT_NEARED: Alert.SPEND_LIMIT_NEARED,
    ChangeType.SPEND_LIMIT_REACHED: Alert.SPEND_LIMIT_REACHED,
    ChangeType.SERVICE_BLOCKED: Alert.SERVICE_BLOCKED,
    ChangeType.SERVICE_UNBLOCKED: Alert.SERVICE_UNBLOCKED,
    ChangeType.INVOICE_FINALIZED: Alert.INVOICE_ISSUED,
    ChangeType.TOP_UP_FAILED: Alert.PAYMENT_FAILED,
    ChangeType.AUTO_RECHARGE_FAILED: Alert.PAYMENT_FAILED,
}

BILLING_ALERTS = frozenset({Alert.BALANCE_LOW, Alert.INVOICE_ISSUED, Alert.PAYMENT_FAILED})
SERVICE_ALERTS = frozenset(set(Alert) - BILLING_ALERTS)

# Until a person chooses: owners get every alert, billing members the billing ones (and the spend
# limit's, money too), admins the service ones; reporting members none. The invoice itself is
# e-mailed to the billing profile's recipients (the owner without a profile: billing.invoices.emails),
# so owners get no second e-mail of it unless they ask.
DEFAULTS: dict[str, frozenset[Alert]] = {
    Role.OWNER: frozenset(set(Alert) - {Alert.INVOICE_ISSUED}),
    Role.ADMIN: SERVICE_ALERTS,
    Role.BILLING: BILLING_ALERTS | {Alert.SPEND_LIMIT_NEARED, Alert.SPEND_LIMIT_REACHED},
    Role.REPORTING: frozenset(),
}
# A manager's people about its managed accounts, until they choose: its owners and admins hear of
# limits and blocks (the fleet's safety); a managed account's own invoices and payments are its own.
MANAGED_DEFAULTS: dict[str, frozenset[Alert]] = {
    Role.OWNER: SERVICE_ALERTS | {Alert.BALANCE_LOW},
    Role.ADMIN: SERVICE_ALERTS,
    Role.BILLING: frozenset({Alert.BALANCE_LOW, Alert.SPEND_LIMIT_NEARED, Alert.SPEND_LIMIT_REACHED}),
    Role.REPORTING: frozenset(),
}


def default_choice(*, role: str, alert: str, managed: bool = False) -> bool:
    """Whether a member of `role` gets `alert` (about the account itself, or, `managed`, about one of
    its managed accounts) before choosing."""
    return alert in (MANAGED_DEFAULTS if managed else DEFAULTS).get(role, frozenset())


def subject_of(event: AuditEvent) -> tuple[Account, bool]:
    """The account an alert is about, and whether its manager's people hear of it. An invoice is the
    bill-to's own (recorded on its log; a reseller invoice's events on its issuer's name the bill-to as
    `related_account`): its manager either issued it or has no part in it."""
    related = event.related_account
    if event.resource_type == INVOICE_RESOURCE_TYPE:
        billed = related if related is not None and related.manager_id == event.account_id else event.account
        return billed, False
    return event.account, event.account.is_managed
