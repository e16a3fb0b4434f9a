"""The alert e-mails: one plain-text message per alert event and person, in the product's words,
with absolute links (SITE_URL) to the page where the person acts on it.

What they carry: the account's own balance, threshold, limits and payments, never a rate, a cost or
spend at prices (the same for every account, so none reaches one whose pricing is hidden)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.audit import ChangeType
from accounts.audit_text import money
from accounts.models import Account, AuditEvent, ServiceBlock, User
from notifications.alerts import ALERT_LABELS, ALERT_OF, Alert
from portal.site import absolute_url

HEADLINES: dict[Alert, str] = {
    Alert.BALANCE_LOW: "balance below {threshold}",
    Alert.SPEND_LIMIT_NEARED: "80 % of a spend limit used",
    Alert.SPEND_LIMIT_REACHED: "spend limit reached",
    Alert.SERVICE_BLOCKED: "service blocked",
    Alert.SERVICE_UNBLOCKED: "service restored",
    Alert.INVOICE_ISSUED: "invoice {invoice} issued",
    Alert.PAYMENT_FAILED: "a payment failed",
}


def values_of(event: AuditEvent) -> dict[str, object]:
    """The event's recorded values by field (what it changed to)."""
    return {str(c.get("field")): c.get("to") for c in event.changes}


def _page(name: str, *args: object) -> str:
    return absolute_url(reverse(name, args=[str(a) for a in args]))


def link_for(event: AuditEvent, alert: Alert, subject: Account, manager: Account | None) -> str:
    """Where the person acts on the alert: `manager` is set when they read it as the subject's
    manager's people (the managed account's pages under the manager)."""
    reason = str(values_of(event).get("reason") or "")
    if manager is not None:
        if alert in (
            Alert.SPEND_LIMIT_NEARED,
            Alert.SPEND_LIMIT_REACHED,
            Alert.SERVICE_BLOCKED,
            Alert.SERVICE_UNBLOCKED,
        ):
            return _page("controls_managed_limit", manager.public_id, subject.public_id)
        if alert == Alert.BALANCE_LOW and subject.has_own_balance:
            return _page("managed_transfer", manager.public_id, subject.public_id)
        return _page("managed_detail", manager.public_id, subject.public_id)
    if alert == Alert.INVOICE_ISSUED:
        return _page("invoice_detail", subject.public_id, event.resource_id)
    if alert in (Alert.SPEND_LIMIT_NEARED, Alert.SPEND_LIMIT_REACHED) or reason == ServiceBlock.SPEND_LIMIT:
        own_limits = subject.is_managed and subject.has_own_balance
        return _page("controls_own_limits" if own_limits else "dashboard", subject.public_id)
    if subject.has_own_balance and alert in (Alert.BALANCE_LOW, Alert.PAYMENT_FAILED, Alert.SERVICE_BLOCKED):
        return _page("top_up", subject.public_id)
    return _page("dashboard", subject.public_id)


def message_for(event: AuditEvent, *, user: User, subject: Account, manager: Account | None) -> EmailMessage:
    alert = ALERT_OF[event.change_type]
    values = values_of(event)
    context = {
        "user": user,
        "account": subject,
        "manager": manager,
        "event": event,
        "alert": alert,
        "label": ALERT_LABELS[alert],
        "values": values,
        "balance": money(values.get("balance")),
        "threshold": money(values.get("threshold")),
        "amount": money(values.get("amount")),
        "reason": dict(ServiceBlock.choices).get(str(values.get("reason") or ""), ""),
        "failed_by_recharge": event.change_type == ChangeType.AUTO_RECHARGE_FAILED,
        "invoice": event.resource_label,
        "link": link_for(event, alert, subject, manager),
        "settings_link": _page("notification_settings", (manager or subject).public_id),
        "site_name": settings.SITE_NAME,
        "site_url": settings.SITE_URL,
    }
    headline = HEADLINES[alert].format(threshold=context["threshold"], invoice=event.resource_label or "")
    template = f"notifications/email/{alert.value.replace('.', '_')}.txt"
    return EmailMessage(
        subject=f"[{settings.SITE_NAME}] {subject.name}: {headline}",
        body=render_to_string(template, context),
        to=[user.email],
    )
