"""v2 API of webhooks: the key's account's endpoints (with `X-Managed-Account-Id`, that managed
account's), created with the secret in clear once, read, changed and deleted; an endpoint's
deliveries, newest first, and sending one again with its own webhook-id.

The rules are the services' and the form's (`webhooks.services`, `webhooks.forms`): an http(s) URL
without user or password (in production, to public addresses only), known event types, at least
one, `include_managed_accounts` on a manager's endpoint only. These views read the request, call
one service and answer the record, shaped as the API's other resources are."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404

from accounts.api_access import ApiRequest, key_account
from portal.api import actor, api_view, bool_field, invalid, iso, json_body, page, string_field
from webhooks import selectors, services
from webhooks.addresses import AddressRefused, parse
from webhooks.events import EventType
from webhooks.models import WebhookDelivery, WebhookEndpoint

CREATE_FIELDS = ("url", "description", "event_types", "include_managed_accounts")
UPDATE_FIELDS = (*CREATE_FIELDS, "enabled")
MAX_URL = 2000
MAX_DESCRIPTION = 200
STATUS_FILTER = "filter[status]"


@api_view("GET", "POST")
def endpoints(request: ApiRequest) -> JsonResponse:
    account = key_account(request)
    if request.method == "POST":
        body = json_body(request, allowed=CREATE_FIELDS)
        url = _url(body, required=True)
        event_types = _event_types(body, required=True)
        assert url is not None and event_types is not None
        endpoint, secret = services.create_endpoint(
            account=account,
            url=url,
            event_types=event_types,
            description=string_field(body, "description", max_length=MAX_DESCRIPTION) or "",
            include_managed_accounts=bool_field(body, "include_managed_accounts", False),
            actor=actor(request),
        )
        return JsonResponse({"data": {**endpoint_json(endpoint), "secret": secret}}, status=201)
    rows = WebhookEndpoint.objects.filter(account=account).select_related("account").order_by("created_at", "id")
    return page(request, rows, endpoint_json)


@api_view("GET", "PATCH", "DELETE")
def endpoint(request: ApiRequest, endpoint_id: str) -> JsonResponse:
    found = _endpoint(request, endpoint_id)
    if request.method == "PATCH":
        body = json_body(request, allowed=UPDATE_FIELDS)
        values: dict[str, object] = {}
        if "url" in body:
            values["url"] = _url(body, required=True)
        if "event_types" in body:
            values["event_types"] = _event_types(body, required=True)
        if "description" in body:
            values["description"] = string_field(body, "description", max_length=MAX_DESCRIPTION) or ""
        for flag in ("include_managed_accounts", "enabled"):
            if flag in body:
                value = bool_field(body, flag)
                if value is None:
                    raise invalid(flag, f"{flag} must be true or false.")
                values[flag] = value
        found = services.update_endpoint(endpoint=found, actor=actor(request), **values)
    elif request.method == "DELETE":
        record = endpoint_json(found)
        services.delete_endpoint(endpoint=found, actor=actor(request))
        return JsonResponse({"data": record})
    return JsonResponse({"data": endpoint_json(found)})


@api_view("GET")
def deliveries(request: ApiRequest, endpoint_id: str) -> JsonResponse:
    found = _endpoint(request, endpoint_id)
    rows = selectors.deliveries_of(found)
    status = request.GET.get(STATUS_FILTER)
    if status is not None:
        if status not in WebhookDelivery.Status.values:
            choices = ", ".join(WebhookDelivery.Status.values)
            raise invalid(STATUS_FILTER, f"{STATUS_FILTER} must be one of {choices}.", query=True)
        rows = rows.filter(status=status)
    return page(request, rows.select_related("endpoint"), delivery_json)


@api_view("GET")
def delivery(request: ApiRequest, endpoint_id: str, delivery_id: str) -> JsonResponse:
    return JsonResponse({"data": delivery_json(_delivery(request, endpoint_id, delivery_id))})


@api_view("POST")
def delivery_resend(request: ApiRequest, endpoint_id: str, delivery_id: str) -> JsonResponse:
    """Sends a delivered or failed delivery again (same webhook-id, a fresh retry schedule); 422 for
    one still being sent or to a disabled endpoint."""
    if request.body:  # nothing to send; a body, when sent, must be an empty JSON object
        json_body(request, allowed=())
    shown = _delivery(request, endpoint_id, delivery_id)
    return JsonResponse({"data": delivery_json(services.send_again(delivery=shown, actor=actor(request)))})


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Http404("No such webhook endpoint.") from None


def _endpoint(request: ApiRequest, endpoint_id: str) -> WebhookEndpoint:
    """One of the key's account's endpoints; any other id (another tenant's, malformed) is a 404."""
    rows = WebhookEndpoint.objects.select_related("account")
    return get_object_or_404(rows, account=key_account(request), public_id=_uuid(endpoint_id))


def _delivery(request: ApiRequest, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    found = _endpoint(request, endpoint_id)
    return get_object_or_404(
        WebhookDelivery.objects.select_related("endpoint"), endpoint=found, public_id=_uuid(delivery_id)
    )


def _url(body: dict[str, Any], *, required: bool) -> str | None:
    """The URL as the form takes it: text of at most 2,000 characters, an http(s) URL with a host and
    no user or password (the service checks the addresses in production)."""
    url = string_field(body, "url", required=required, max_length=MAX_URL)
    if url is None:
        return None
    try:
        parse(url)
    except AddressRefused as refused:
        raise invalid("url", refused.message) from None
    return url


def _event_types(body: dict[str, Any], *, required: bool) -> list[str] | None:
    value = body.get("event_types")
    if value is None:
        if required:
            raise invalid("event_types", "event_types is required: a list of event types.")
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid("event_types", "event_types must be a list of event type names.")
    unknown = sorted({v for v in value if v not in EventType._value2member_map_})
    if unknown:
        shown = ", ".join(repr(u[:64]) for u in unknown[:5])
        raise invalid("event_types", f"Unknown event types: {shown}. See the document's WebhookEventType.")
    if not value:
        raise invalid("event_types", "Choose at least one event type.")
    return list(value)


def endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "record_type": "webhook_endpoint",
        "id": str(endpoint.public_id),
        "account_id": str(endpoint.account.public_id),
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "include_managed_accounts": endpoint.include_managed_accounts,
        "enabled": endpoint.enabled,
        "created_at": iso(endpoint.created_at),
        "updated_at": iso(endpoint.updated_at),
    }


def delivery_json(shown: WebhookDelivery) -> dict[str, Any]:
    """A delivery as its log shows it; `data` is the envelope's data as every attempt sent it (made
    for the endpoint's account, so a hidden-pricing account's carries no price)."""
    return {
        "record_type": "webhook_delivery",
        "id": str(shown.public_id),
        "webhook_endpoint_id": str(shown.endpoint.public_id),
        "webhook_id": shown.webhook_id,
        "event_id": str(shown.data.get("id", "")),
        "event_type": shown.event_type,
        "status": shown.status,
        "attempts": shown.attempts,
        "response_code": shown.response_code,
        "last_error": shown.last_error or None,
        "last_attempt_at": iso(shown.last_attempt_at),
        "next_attempt_at": iso(shown.next_attempt_at),
        "created_at": iso(shown.created_at),
        "data": shown.data,
    }
