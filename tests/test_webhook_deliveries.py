"""Event webhooks: derived from the audit log, delivered by Celery to a real HTTP server on
loopback, signed in the Standard Webhooks scheme (checked with the `standardwebhooks` package),
retried with the same webhook-id and failed after the schedule."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from standardwebhooks import Webhook

from accounts import audit
from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from portal.celery import app
from tests import webhook_receiver
from tests.conftest import make_managed_accounts
from webhooks import selectors, tasks
from webhooks.models import WebhookDelivery, WebhookEndpoint


@pytest.fixture
def receiver():
    server = webhook_receiver.start()
    yield server
    server.stop()


def add_endpoint(client, account: Account, url: str, events: list[str], *, managed: bool = False) -> str:
    """Adds an endpoint on the page, as its owner does; the secret the page shows once."""
    data = {"url": url, "description": "ops", "event_types": events}
    if managed:
        data["include_managed_accounts"] = "on"
    response = client.post(reverse("webhooks_create", args=[account.public_id]), data)
    assert response.status_code == 200, response.content.decode()
    return re.search(r'id="webhook-secret" class="secret">(whsec_[^<]+)<', response.content.decode()).group(1)


def wait_for(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def disable(client, world) -> None:
    response = client.post(reverse("managed_disable", args=[world.manager.public_id, world.managed.public_id]))
    assert response.status_code == 302


def body(request) -> dict:
    return json.loads(request.body)


@pytest.mark.django_db(transaction=True)
def test_a_worker_delivers_a_signed_event_in_telnyxs_envelope(world, owner_client, receiver, real_worker):
    secret = add_endpoint(owner_client, world.manager, receiver.url, ["managed_account.disabled"])

    disable(owner_client, world)
    wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").exists())

    (request,) = receiver.requests
    assert Webhook(secret).verify(request.body, request.headers) == body(request)
    event = AuditEvent.objects.get(change_type="managed_account.disabled")
    data = body(request)["data"]
    assert data["record_type"] == "event" and data["event_type"] == "managed_account.disabled"
    assert data["id"] == str(event.public_id)
    assert data["occurred_at"].endswith("Z")
    assert data["payload"]["account_id"] == str(world.managed.public_id)
    assert data["payload"]["manager_account_id"] == str(world.manager.public_id)
    assert {"field": "status", "from": "enabled", "to": "disabled"} in data["payload"]["changes"]
    assert body(request)["meta"] == {"attempt": 1, "delivered_to": receiver.url}
    delivery = WebhookDelivery.objects.get()
    assert request.headers["webhook-id"] == delivery.webhook_id
    assert (delivery.attempts, delivery.response_code) == (1, 204)


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_is_retried_with_backoff_and_the_same_webhook_id(
    world, owner_client, receiver, real_worker, settings
):
    settings.WEBHOOK_RETRY_DELAYS = [0.3, 0.6, 5]
    receiver.fail_first = 2
    secret = add_endpoint(owner_client, world.manager, receiver.url, ["managed_account.disabled"])

    disable(owner_client, world)
    wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").exists())

    assert [r.answered for r in receiver.requests] == [500, 500, 204]
    assert len(receiver.ids()) == 1  # one webhook-id for every attempt
    assert [body(r)["meta"]["attempt"] for r in receiver.requests] == [1, 2, 3]
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
    assert stamps == sorted(stamps)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempts, delivery.retry_step, delivery.response_code) == (3, 2, 204)


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_that_keeps_failing_ends_failed_after_the_schedule(
    world, owner_client, receiver, real_worker, settings
):
    settings.WEBHOOK_RETRY_DELAYS = [0.2, 0.4]
    receiver.fail_always = True
    add_endpoint(owner_client, world.manager, receiver.url, ["managed_account.disabled"])

    disable(owner_client, world)
    wait_for(lambda: WebhookDelivery.objects.filter(status="failed").exists())

    assert len(receiver.requests) == 3 and len(receiver.ids()) == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempts, delivery.response_code, delivery.next_attempt_at) == (3, 500, None)
    assert "HTTP 500" in delivery.last_error


@pytest.mark.django_db(transaction=True)
def test_deliveries_whose_tasks_were_lost_are_all_delivered_once_by_the_sweep(
    world, owner_client, receiver, monkeypatch
):
    """The deliveries commit with their audit events; when their queued tasks are lost (worker
    killed, broker emptied), the sweep sends each once, with its own webhook-id."""
    add_endpoint(owner_client, world.manager, receiver.url, ["managed_account.disabled", "managed_account.enabled"])
    app.conf.task_always_eager = False  # no worker: the tasks sit on the broker
    try:
        disable(owner_client, world)
        response = owner_client.post(reverse("managed_enable", args=[world.manager.public_id, world.managed.public_id]))
        assert response.status_code == 302
        app.control.purge()  # lost
    finally:
        app.conf.task_always_eager = True
    assert WebhookDelivery.objects.filter(status="pending").count() == 2 and not receiver.requests

    monkeypatch.setattr(selectors, "LOST_AFTER", timedelta(0))
    assert tasks.sweep() == 2
    assert tasks.sweep() == 0  # delivered: nothing is sent twice
    assert sorted(receiver.ids().values()) == [1, 1]
    assert set(receiver.ids()) == {d.webhook_id for d in WebhookDelivery.objects.filter(status="delivered")}


def test_a_managers_endpoint_gets_its_managed_accounts_events_only_when_it_asks(
    world, owner_client, persona, receiver, django_capture_on_commit_callbacks
):
    others = webhook_receiver.start()
    own = webhook_receiver.start()
    try:
        add_endpoint(owner_client, world.manager, receiver.url, ["service.blocked"], managed=True)
        add_endpoint(owner_client, world.manager, others.url, ["service.blocked", "managed_account.disabled"])
        add_endpoint(persona("managed_owner"), world.managed, own.url, ["service.blocked"])
        with django_capture_on_commit_callbacks(execute=True):
            block(world.managed)
        assert len(receiver.requests) == len(own.requests) == 1
        assert not others.requests  # not subscribed to its managed accounts' events
        assert body(receiver.requests[0])["data"]["id"] == body(own.requests[0])["data"]["id"]
        assert receiver.requests[0].headers["webhook-id"] != own.requests[0].headers["webhook-id"]
    finally:
        others.stop()
        own.stop()


def block(account: Account, changes=None) -> AuditEvent:
    """A service block as controls records it (controls.services._transition)."""
    entry = audit.Entry(
        account=account,
        change_type=audit.ChangeType.SERVICE_BLOCKED,
        resource=account,
        changes=changes or [{"field": "reason", "from": None, "to": "spend_limit"}],
        related_account=account.manager,
    )
    return audit.record_many(actor=Actor.platform_staff(), entries=[entry])[0]


def test_a_hidden_pricing_account_never_receives_a_priced_field_its_manager_does(
    world, owner_client, persona, receiver, django_capture_on_commit_callbacks
):
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)
    world.managed.refresh_from_db()
    own = webhook_receiver.start()
    try:
        add_endpoint(owner_client, world.manager, receiver.url, ["service.blocked"], managed=True)
        add_endpoint(persona("managed_owner"), world.managed, own.url, ["service.blocked"])
        changes = [
            {"field": "rule", "from": None, "to": "USD 10.00 a month on all products"},
            {"field": "cost", "from": None, "to": "3.21"},
        ]
        with django_capture_on_commit_callbacks(execute=True):
            block(world.managed, changes)
        mine = body(own.requests[0])["data"]["payload"]["changes"]
        theirs = body(receiver.requests[0])["data"]["payload"]["changes"]
        assert mine == changes[:1]  # its own limit, never a cost
        assert theirs == changes
    finally:
        own.stop()


def test_deriving_deliveries_costs_the_same_queries_for_ten_events_or_three_hundred(world, owner_client, receiver):
    add_endpoint(owner_client, world.manager, receiver.url, ["service.blocked"], managed=True)
    accounts = make_managed_accounts(world.manager, 310)
    counts = []
    for batch in (accounts[:10], accounts[10:]):
        entries = [
            audit.Entry(account=a, change_type=audit.ChangeType.SERVICE_BLOCKED, resource=a, changes=[]) for a in batch
        ]
        with CaptureQueriesContext(connection) as queries:
            audit.record_many(actor=Actor.platform_staff(), entries=entries)
        counts.append(len([q for q in queries.captured_queries if q["sql"].startswith("SELECT")]))
    assert counts[0] == counts[1] <= 3
    assert WebhookDelivery.objects.count() == 310


def test_a_redirect_is_not_followed(world, owner_client, receiver, django_capture_on_commit_callbacks, settings):
    settings.WEBHOOK_RETRY_DELAYS = [60]
    target = webhook_receiver.start()
    receiver.redirect_to = target.url
    try:
        add_endpoint(owner_client, world.manager, receiver.url, ["managed_account.disabled"])
        with django_capture_on_commit_callbacks(execute=True):
            disable(owner_client, world)
        assert len(receiver.requests) == 1 and not target.requests
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.response_code, delivery.retry_step) == ("pending", 302, 1)
    finally:
        target.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hooks",
        "http://localhost:8000/",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
    ],
)
def test_production_refuses_private_loopback_and_link_local_addresses(world, owner_client, settings, url):
    settings.PRODUCTION = True
    response = owner_client.post(
        reverse("webhooks_create", args=[world.manager.public_id]), {"url": url, "event_types": ["service.blocked"]}
    )
    assert response.status_code == 422
    assert "private, loopback or link-local" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "http://u:p@x.io/"]
)
def test_only_http_urls_without_credentials_are_accepted(world, owner_client, url):
    response = owner_client.post(
        reverse("webhooks_create", args=[world.manager.public_id]), {"url": url, "event_types": ["service.blocked"]}
    )
    assert response.status_code == 422
    assert not WebhookEndpoint.objects.exists()


def test_production_checks_the_address_again_at_delivery(
    world, owner_client, receiver, settings, django_capture_on_commit_callbacks
):
    add_endpoint(owner_client, world.manager, receiver.url, ["managed_account.disabled"])
    settings.PRODUCTION = True  # the host now resolves to loopback, which production refuses
    with django_capture_on_commit_callbacks(execute=True):
        disable(owner_client, world)
    assert not receiver.requests
    delivery = WebhookDelivery.objects.get()
    assert delivery.response_code is None and "private, loopback or link-local" in delivery.last_error
