"""Pages of webhooks under Developers: an account's endpoints, creating (the secret shown once),
editing, enabling and disabling one, its delivery log, one delivery and sending it again. Thin: the
access helper, one service call, a redirect. Owners and admins (`can.manage_account`)."""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import AccountAccess, account_access
from accounts.actor import Actor
from accounts.forms import apply_refusal
from accounts.mfa import decrypt_secret
from accounts.permissions import MANAGE_ACCOUNT
from portal.pagination import paginate_table
from webhooks import selectors, services, signing
from webhooks.events import EVENT_LABELS
from webhooks.forms import EndpointForm
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.tables import DeliveriesTable

GET_AND_POST = ["GET", "POST"]
DELIVERIES_PER_PAGE = 50
DEV_RECEIVER_TOLERANCE = 300  # seconds a webhook-timestamp may be off, as Standard Webhooks verifiers allow
logger = logging.getLogger(__name__)


def _access(request: HttpRequest, account_id: UUID) -> AccountAccess:
    return account_access(request, account_id, MANAGE_ACCOUNT)


def _context(access: AccountAccess, **more: Any) -> dict[str, Any]:
    return {"access": access, "account": access.account, **more}


@login_required
@require_GET
def endpoints(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = _access(request, account_id)
    rows = list(selectors.endpoints_of(access.account))
    return render(request, "webhooks/endpoints.html", _context(access, endpoints=rows, labels=EVENT_LABELS))


@login_required
@require_http_methods(GET_AND_POST)
def endpoint_create(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = _access(request, account_id)
    form = EndpointForm(request.POST or None, account=access.account)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            endpoint, secret = services.create_endpoint(
                account=access.account,
                url=data["url"],
                description=data["description"],
                event_types=data["event_types"],
                include_managed_accounts=data.get("include_managed_accounts", False),
                actor=Actor.from_request(request),
            )
        except services.WebhookError as refusal:
            apply_refusal(form=form, refusal=refusal)
        else:
            return render(request, "webhooks/endpoint_created.html", _context(access, endpoint=endpoint, secret=secret))
    status = 422 if request.method == "POST" else 200
    return render(request, "webhooks/endpoint_form.html", _context(access, form=form, creating=True), status=status)


@login_required
@require_http_methods(GET_AND_POST)
def endpoint_edit(request: HttpRequest, account_id: UUID, endpoint_id: UUID) -> HttpResponse:
    access = _access(request, account_id)
    endpoint = selectors.endpoint_of(access.account, endpoint_id)
    initial = {f: getattr(endpoint, f) for f in ("url", "description", "event_types", "include_managed_accounts")}
    form = EndpointForm(request.POST or None, initial=initial, account=access.account)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_endpoint(endpoint=endpoint, actor=Actor.from_request(request), **form.cleaned_data)
        except services.WebhookError as refusal:
            apply_refusal(form=form, refusal=refusal)
        else:
            messages.success(request, f"Saved the endpoint {endpoint.url}.")
            return redirect("webhooks_endpoints", access.account.public_id)
    status = 422 if request.method == "POST" else 200
    context = _context(access, form=form, endpoint=endpoint, creating=False)
    return render(request, "webhooks/endpoint_form.html", context, status=status)


@login_required
@require_POST
def endpoint_toggle(request: HttpRequest, account_id: UUID, endpoint_id: UUID) -> HttpResponse:
    access = _access(request, account_id)
    endpoint = selectors.endpoint_of(access.account, endpoint_id)
    enabled = not endpoint.enabled
    services.update_endpoint(endpoint=endpoint, actor=Actor.from_request(request), enabled=enabled)
    state = "enabled: it receives events again" if enabled else "disabled: it receives nothing until enabled"
    messages.success(request, f"The endpoint {endpoint.url} is {state}.")
    return redirect("webhooks_endpoints", access.account.public_id)


@login_required
@require_http_methods(GET_AND_POST)
def endpoint_delete(request: HttpRequest, account_id: UUID, endpoint_id: UUID) -> HttpResponse:
    """GET asks for confirmation; POST deletes the endpoint and its delivery log, audited."""
    access = _access(request, account_id)
    endpoint = selectors.endpoint_of(access.account, endpoint_id)
    if request.method == "POST":
        services.delete_endpoint(endpoint=endpoint, actor=Actor.from_request(request))
        messages.success(request, f"Deleted the endpoint {endpoint.url}: nothing more is sent to it.")
        return redirect("webhooks_endpoints", access.account.public_id)
    count = selectors.deliveries_of(endpoint).count()
    return render(request, "webhooks/delete_confirm.html", _context(access, endpoint=endpoint, deliveries=count))


@login_required
@require_GET
def deliveries(request: HttpRequest, account_id: UUID, endpoint_id: UUID) -> HttpResponse:
    access = _access(request, account_id)
    endpoint = selectors.endpoint_of(access.account, endpoint_id)
    table = DeliveriesTable(
        selectors.deliveries_of(endpoint), account_id=str(access.account.public_id), endpoint_id=str(endpoint.public_id)
    )
    paginate_table(request, table, per_page=DELIVERIES_PER_PAGE)
    return render(request, "webhooks/deliveries.html", _context(access, endpoint=endpoint, table=table))


@login_required
@require_GET
def delivery(request: HttpRequest, account_id: UUID, endpoint_id: UUID, delivery_id: UUID) -> HttpResponse:
    access = _access(request, account_id)
    endpoint = selectors.endpoint_of(access.account, endpoint_id)
    shown = selectors.delivery_of(endpoint, delivery_id)
    return render(request, "webhooks/delivery.html", _delivery_context(access, endpoint, shown))


@login_required
@require_http_methods(GET_AND_POST)
def delivery_resend(request: HttpRequest, account_id: UUID, endpoint_id: UUID, delivery_id: UUID) -> HttpResponse:
    """GET asks for confirmation; POST sends the delivery again (same webhook-id), audited."""
    access = _access(request, account_id)
    endpoint = selectors.endpoint_of(access.account, endpoint_id)
    shown = selectors.delivery_of(endpoint, delivery_id)
    if request.method == "POST":
        try:
            services.send_again(delivery=shown, actor=Actor.from_request(request))
        except services.WebhookError as refusal:
            messages.error(request, refusal.message)
        else:
            messages.success(request, f"{shown.event_type} is queued to {endpoint.url} again, as {shown.webhook_id}.")
        return redirect("webhooks_delivery", access.account.public_id, endpoint.public_id, shown.public_id)
    return render(request, "webhooks/resend_confirm.html", _delivery_context(access, endpoint, shown))


def _delivery_context(access: AccountAccess, endpoint: WebhookEndpoint, shown: WebhookDelivery) -> dict[str, Any]:
    payload = json.dumps({"data": shown.data}, indent=2, ensure_ascii=False)
    return _context(
        access,
        endpoint=endpoint,
        delivery=shown,
        payload=payload,
        pending=shown.status == WebhookDelivery.Status.PENDING,
    )


def dev_receiver_enabled() -> bool:
    """The development receiver answers in development only (DEBUG, or MC_ENV=development), never in
    production whatever DEBUG says: elsewhere it is a 404 like any unknown page."""
    return not settings.PRODUCTION and (settings.DEBUG or settings.MC_ENV == "development")


@csrf_exempt  # signed by the sender instead: no session, no form
@require_POST
def dev_receiver(request: HttpRequest) -> HttpResponse:
    """A webhook receiver the portal serves itself in development, so that `./dev run`'s demo endpoint
    (webhooks' demo_webhooks command) has somewhere to deliver on loopback: it checks the Standard
    Webhooks signature against the secrets of the endpoints pointing here, answers 204 (401 for a bad
    signature) and logs what came."""
    if not dev_receiver_enabled():
        raise Http404("No such page.")
    webhook_id = request.headers.get("webhook-id", "")
    stamp = request.headers.get("webhook-timestamp", "")
    sent = request.headers.get("webhook-signature", "").split()
    body = request.body.decode("utf-8", errors="replace")
    fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= DEV_RECEIVER_TOLERANCE
    secrets = [decrypt_secret(e.secret) for e in selectors.endpoints_pointing_at(request.path)]
    signed = fresh and any(
        hmac.compare_digest(signing.signature(secret=s, webhook_id=webhook_id, timestamp=int(stamp), body=body), one)
        for s in secrets
        for one in sent
    )
    if not signed:
        logger.warning("dev webhook receiver: refused %s (bad or stale signature)", webhook_id[:64])
        return HttpResponse(status=401)
    logger.info("dev webhook receiver: received %s (%s)", webhook_id, _event_type(body))
    return HttpResponse(status=204)


def _event_type(body: str) -> str:
    try:
        return str(json.loads(body)["data"]["event_type"])
    except (ValueError, KeyError, TypeError):
        return "?"
