"""Reads of webhooks: pages and tasks use these."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import Account
from webhooks.models import WebhookDelivery, WebhookEndpoint

# A due delivery left this long past its time, unclaimed, lost its task (settings may name their own
# WEBHOOK_LOST_AFTER_SECONDS).
LOST_AFTER = timedelta(minutes=1)
SWEEP_BATCH = 5000


def endpoints_of(account: Account) -> QuerySet[WebhookEndpoint]:
    """The account's endpoints with their deliveries counted by status, in one query."""
    Status = WebhookDelivery.Status
    return WebhookEndpoint.objects.filter(account=account).annotate(
        pending=Count("deliveries", filter=Q(deliveries__status=Status.PENDING)),
        failed=Count("deliveries", filter=Q(deliveries__status=Status.FAILED)),
    )


def endpoint_of(account: Account, endpoint_id: UUID) -> WebhookEndpoint:
    """One of the account's endpoints; another account's is a 404."""
    return get_object_or_404(WebhookEndpoint, account=account, public_id=endpoint_id)


def endpoints_pointing_at(path: str) -> QuerySet[WebhookEndpoint]:
    """Enabled endpoints whose URL ends with `path` (the development receiver's)."""
    return WebhookEndpoint.objects.filter(enabled=True, url__endswith=path)


def deliveries_of(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-created_at", "-id")


def delivery_of(endpoint: WebhookEndpoint, delivery_id: UUID) -> WebhookDelivery:
    return get_object_or_404(
        WebhookDelivery.objects.select_related("endpoint"), endpoint=endpoint, public_id=delivery_id
    )


def lost_after() -> timedelta:
    seconds = getattr(settings, "WEBHOOK_LOST_AFTER_SECONDS", None)
    return LOST_AFTER if seconds is None else timedelta(seconds=float(seconds))


def lost_deliveries(*, now: datetime) -> list[int]:
    """Due deliveries nobody holds: never claimed (their task lost) or claimed by a worker that died
    before recording the attempt (its claim expired)."""
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    due = WebhookDelivery.objects.filter(
        free, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now - lost_after()
    )
    return list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:SWEEP_BATCH])
