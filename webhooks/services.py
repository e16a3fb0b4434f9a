"""Writes of webhooks: endpoints (audited, in the transaction of the change) and the deliveries
derived from audit events. Deliveries are queued after commit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.errors import Refusal
from accounts.locks import lock_row
from accounts.mfa import encrypt_secret
from accounts.models import Account, AuditEvent
from webhooks import addresses, events, signing, tasks
from webhooks.models import WebhookDelivery, WebhookEndpoint

ENDPOINT_FIELDS = ("url", "description", "event_types", "include_managed_accounts", "enabled")


class WebhookError(Refusal):
    pass


def check_url(url: str) -> str:
    """The URL as stored, or WebhookError: http(s) only, and in production a host that resolves to
    public addresses only (checked again at every delivery)."""
    url = url.strip()
    try:
        addresses.parse(url)
        if addresses.private_refused():
            addresses.resolve(url)
    except addresses.AddressRefused as refused:
        raise WebhookError(refused.message, field="url") from None
    return url


def _check_event_types(event_types: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(event_types))
    unknown = sorted(set(chosen) - set(events.EventType))
    if unknown:
        raise WebhookError(f"Unknown event types: {', '.join(unknown)}.", field="event_types")
    if not chosen:
        raise WebhookError("Choose at least one event.", field="event_types")
    return chosen


def _check_managed(account: Account, include_managed_accounts: bool) -> None:
    if include_managed_accounts and not account.is_manager:
        raise WebhookError("Only a manager account has managed accounts.", field="include_managed_accounts")


@transaction.atomic
def create_endpoint(
    *,
    account: Account,
    url: str,
    event_types: Iterable[str],
    actor: Actor,
    description: str = "",
    include_managed_accounts: bool = False,
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its secret in clear, which is shown once and never again."""
    chosen = _check_event_types(event_types)
    _check_managed(account, include_managed_accounts)
    secret = signing.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        account=account,
        url=check_url(url),
        description=description.strip(),
        event_types=chosen,
        include_managed_accounts=include_managed_accounts,
        secret=encrypt_secret(secret),
    )
    audit.record(
        account=account,
        actor=actor,
        change_type=audit.ChangeType.WEBHOOK_ENDPOINT_CREATED,
        resource=endpoint,
        changes=[{"field": f, "from": None, "to": getattr(endpoint, f)} for f in ENDPOINT_FIELDS],
    )
    return endpoint, secret


@transaction.atomic
def update_endpoint(*, endpoint: WebhookEndpoint, actor: Actor, **values: object) -> WebhookEndpoint:
    unknown = set(values) - set(ENDPOINT_FIELDS)
    if unknown:
        raise WebhookError(f"Cannot change {', '.join(sorted(unknown))}.")
    endpoint = lock_row(WebhookEndpoint.objects, pk=endpoint.pk)
    if "url" in values:
        values["url"] = check_url(str(values["url"]))
    if "event_types" in values:
        values["event_types"] = _check_event_types(values["event_types"])  # type: ignore[arg-type]
    if "description" in values:
        values["description"] = str(values["description"]).strip()
    _check_managed(endpoint.account, bool(values.get("include_managed_accounts")))
    before = {f: getattr(endpoint, f) for f in ENDPOINT_FIELDS}
    for field, value in values.items():
        setattr(endpoint, field, value)
    changes = audit.field_changes(endpoint, before, ENDPOINT_FIELDS)
    if changes:
        endpoint.save()
        audit.record(
            account=endpoint.account,
            actor=actor,
            change_type=audit.ChangeType.WEBHOOK_ENDPOINT_UPDATED,
            resource=endpoint,
            changes=changes,
        )
    return endpoint


@transaction.atomic
def delete_endpoint(*, endpoint: WebhookEndpoint, actor: Actor) -> None:
    """Deletes the endpoint and its delivery log (nothing more is sent to it), audited with what it was."""
    endpoint = lock_row(WebhookEndpoint.objects, pk=endpoint.pk)
    audit.record(
        account=endpoint.account,
        actor=actor,
        change_type=audit.ChangeType.WEBHOOK_ENDPOINT_DELETED,
        resource=endpoint,
        changes=[{"field": f, "from": getattr(endpoint, f), "to": None} for f in ENDPOINT_FIELDS],
    )
    endpoint.delete()


@transaction.atomic
def send_again(*, delivery: WebhookDelivery, actor: Actor) -> WebhookDelivery:
    """Sends a delivered or failed delivery again, with the same webhook-id and a fresh schedule."""
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        raise WebhookError("Enable the endpoint first: a disabled endpoint receives nothing.")
    restarted = WebhookDelivery.objects.filter(pk=delivery.pk).exclude(status=WebhookDelivery.Status.PENDING)
    previous = delivery.status
    if not restarted.update(
        status=WebhookDelivery.Status.PENDING, retry_step=0, next_attempt_at=timezone.now(), claimed_until=None
    ):
        raise WebhookError("This delivery is still being sent: wait for its result.")
    audit.record(
        account=endpoint.account,
        actor=actor,
        change_type=audit.ChangeType.WEBHOOK_DELIVERY_RESENT,
        resource=endpoint,
        changes=[
            {"field": "webhook_id", "from": None, "to": delivery.webhook_id},
            {"field": "event_type", "from": None, "to": delivery.event_type},
            {"field": "status", "from": previous, "to": WebhookDelivery.Status.PENDING},
        ],
    )
    _queue_after_commit([delivery.pk])
    delivery.refresh_from_db()
    return delivery


def make_deliveries(recorded: Sequence[AuditEvent]) -> list[int]:
    """The pending deliveries of audit events just recorded, written in their transaction (so a
    committed event never lacks them, whatever dies after) and queued once it commits. Set-based:
    at most three queries whatever the number of events."""
    wanted = [(e, events.EVENT_OF[e.change_type]) for e in recorded if e.change_type in events.EVENT_OF]
    if not wanted:
        return []
    owners = {events.owner_of(e, t).pk for e, t in wanted}
    managers = {m for e, t in wanted if (m := events.owner_of(e, t).manager_id) is not None}
    scope = Q(account_id__in=owners) | Q(account_id__in=managers, include_managed_accounts=True)
    by_account: dict[int, list[WebhookEndpoint]] = defaultdict(list)
    for endpoint in WebhookEndpoint.objects.filter(scope, enabled=True).select_related("account"):
        by_account[endpoint.account_id].append(endpoint)
    if not by_account:
        return []
    manager_ids = _manager_public_ids([events.subject_of(e, t) for e, t in wanted])
    now = timezone.now()
    rows = [
        WebhookDelivery(
            endpoint=endpoint,
            event=event,
            event_type=event_type,
            data=events.event_data(
                event,
                event_type,
                recipient=endpoint.account,
                manager_id=manager_ids.get(events.subject_of(event, event_type).manager_id),
            ),
            next_attempt_at=now,
        )
        for event, event_type in wanted
        for endpoint in _recipients(events.owner_of(event, event_type), by_account)
        if event_type in endpoint.event_types
    ]
    ids = [d.pk for d in WebhookDelivery.objects.bulk_create(rows)]
    _queue_after_commit(ids)
    return ids


def _recipients(owner: Account, by_account: dict[int, list[WebhookEndpoint]]) -> list[WebhookEndpoint]:
    """The endpoints of the account receiving the event (events.owner_of), and those of its manager
    that take managed accounts' events."""
    managers = by_account.get(owner.manager_id, []) if owner.manager_id is not None else []
    return by_account.get(owner.pk, []) + [e for e in managers if e.include_managed_accounts]


def _manager_public_ids(subjects: list[Account]) -> dict[int | None, str]:
    ids = {a.manager_id for a in subjects if a.manager_id is not None}
    if not ids:
        return {}
    return {pk: str(public_id) for pk, public_id in Account.objects.filter(pk__in=ids).values_list("pk", "public_id")}


def _queue_after_commit(ids: list[int]) -> None:
    if ids:
        transaction.on_commit(lambda: tasks.dispatch.delay(ids))
