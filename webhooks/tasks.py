"""Celery tasks of webhooks: take ids, never objects."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from webhooks import delivery, selectors


@shared_task(name="webhooks.tasks.dispatch", ignore_result=True)
def dispatch(delivery_ids: list[int]) -> None:
    """One message from the web process after commit; the worker queues one task per delivery."""
    for delivery_id in delivery_ids:
        deliver.delay(delivery_id)


@shared_task(name="webhooks.tasks.deliver", ignore_result=True)
def deliver(delivery_id: int) -> None:
    claimed = delivery.claim(delivery_id)
    if claimed is None:
        return  # delivered, failed, not due yet, or being sent by another worker
    delay = delivery.attempt(claimed)
    if delay is not None:
        deliver.apply_async((delivery_id,), countdown=delay)


@shared_task(name="webhooks.tasks.sweep", ignore_result=True)
def sweep() -> int:
    """Queues the due deliveries nobody is sending: their task was lost (a worker killed, the broker
    restarted). The claim keeps one that is queued twice from going out twice."""
    ids = selectors.lost_deliveries(now=timezone.now())
    for delivery_id in ids:
        deliver.delay(delivery_id)
    return len(ids)
