"""Reads of webhooks: pages and tasks use these."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import Account
from webhooks.models import WebhookDelivery, WebhookEndpoint

# A due delivery left this long past its time, unclaimed, lost its task.
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


def deliveries_of(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-created_at", "-id")


def delivery_of(endpoint: WebhookEndpoint, delivery_id: UUID) -> WebhookDelivery:
    return get_object_or_404(
        WebhookDelivery.objects.select_related("endpoint"), endpoint=endpoint, public_id=delivery_id
    )


def lost_deliveries(*, now: datetime) -> list[int]:
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    due = WebhookDelivery.objects.filter(
        free, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now - LOST_AFTER
    )
    return list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:SWEEP_BATCH])
