"""Sending a delivery: claim it (a conditional update, so two workers never send it at once), sign
and POST it, and record the attempt; a failed attempt waits for the next delay of the schedule, and
after the last one the delivery is failed. Every attempt carries the delivery's own webhook-id."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts.mfa import decrypt_secret
from webhooks import sender, signing
from webhooks.models import WebhookDelivery

# Exponential backoff: a minute, doubling, at most six hours apart; 12 retries after the first try,
# the last about 26.5 hours after it. Settings may name their own (tests: a second or two).
DEFAULT_RETRY_DELAYS = tuple(float(min(60 * 2**n, 6 * 3600)) for n in range(12))


def retry_delays() -> tuple[float, ...]:
    return tuple(getattr(settings, "WEBHOOK_RETRY_DELAYS", DEFAULT_RETRY_DELAYS))


def claim_window() -> timedelta:
    """How long a claim holds: past the request's timeout, so only a worker that died loses it. A
    worker killed mid-send leaves its claim to expire; the sweep then sends the delivery again, with
    the same webhook-id (settings may name a shorter window: WEBHOOK_CLAIM_SECONDS)."""
    default = 2 * sender.timeout_seconds() + 30
    return timedelta(seconds=float(getattr(settings, "WEBHOOK_CLAIM_SECONDS", default)))


def claim(delivery_id: int, now: datetime | None = None) -> WebhookDelivery | None:
    """The delivery, claimed for this worker, when it is due and nobody holds it; None otherwise
    (already delivered, failed, not due yet, or being sent elsewhere)."""
    now = now or timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    due = WebhookDelivery.objects.filter(free, pk=delivery_id, status=WebhookDelivery.Status.PENDING)
    if not due.filter(next_attempt_at__lte=now).update(claimed_until=now + claim_window()):
        return None
    return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)


def body_of(delivery: WebhookDelivery, attempt: int) -> str:
    """The JSON sent: Telnyx's envelope, `meta` saying which attempt it is and where it went."""
    meta = {"attempt": attempt, "delivered_to": delivery.endpoint.url}
    return json.dumps({"data": delivery.data, "meta": meta}, separators=(",", ":"))


def attempt(delivery: WebhookDelivery) -> float | None:
    """Sends a claimed delivery once and records it; the seconds until the next attempt, if any."""
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        _record(delivery, fields={"status": WebhookDelivery.Status.FAILED, "last_error": "The endpoint is disabled."})
        return None
    number = delivery.attempts + 1
    body = body_of(delivery, number)
    timestamp = int(timezone.now().timestamp())
    headers = signing.headers(
        secret=decrypt_secret(endpoint.secret), webhook_id=delivery.webhook_id, timestamp=timestamp, body=body
    )
    outcome = sender.post(url=endpoint.url, body=body, headers=headers)
    now = timezone.now()
    fields: dict[str, object] = {
        "attempts": number,
        "last_attempt_at": now,
        "response_code": outcome.status,
        "last_error": outcome.error,
    }
    delays, delay = retry_delays(), None
    if outcome.ok:
        fields["status"] = WebhookDelivery.Status.DELIVERED
    elif delivery.retry_step < len(delays):
        delay = delays[delivery.retry_step]
        fields.update(retry_step=delivery.retry_step + 1, next_attempt_at=now + timedelta(seconds=delay))
    else:
        fields["status"] = WebhookDelivery.Status.FAILED
    _record(delivery, fields=fields)
    return delay


def _record(delivery: WebhookDelivery, *, fields: dict[str, object]) -> None:
    if fields.get("status", WebhookDelivery.Status.PENDING) != WebhookDelivery.Status.PENDING:
        fields["next_attempt_at"] = None
    WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING).update(
        claimed_until=None, **fields
    )
