"""The webhook pages under Developers: endpoints listed, added (the secret shown once), edited,
disabled and enabled; the delivery log and "send again", for owners and admins only."""

from __future__ import annotations

import html

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import AuditEvent
from tests import webhook_receiver
from tests.test_webhook_deliveries import add_endpoint, disable
from webhooks.models import WebhookDelivery, WebhookEndpoint


@pytest.fixture
def receiver():
    server = webhook_receiver.start()
    yield server
    server.stop()


def page(client, name: str, *args) -> str:
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_an_owner_adds_an_endpoint_and_sees_its_secret_only_once(world, owner_client, receiver):
    secret = add_endpoint(owner_client, world.manager, receiver.url, ["service.blocked", "payment.failed"])
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["service.blocked", "payment.failed"]
    assert secret.startswith("whsec_") and secret not in endpoint.secret  # stored encrypted
    listing = page(owner_client, "webhooks_endpoints", world.manager.public_id)
    assert receiver.url in listing and secret not in listing
    assert secret not in page(owner_client, "webhooks_edit", world.manager.public_id, endpoint.public_id)
    (event,) = AuditEvent.objects.filter(change_type="webhook_endpoint.created")
    assert event.user == world.users["owner"] and event.resource_label == receiver.url


def test_editing_and_disabling_an_endpoint_is_audited_and_a_disabled_one_gets_nothing(
    world, owner_client, receiver, django_capture_on_commit_callbacks
):
    add_endpoint(owner_client, world.manager, receiver.url, ["service.blocked"])
    endpoint = WebhookEndpoint.objects.get()
    edit = reverse("webhooks_edit", args=[world.manager.public_id, endpoint.public_id])
    response = owner_client.post(edit, {"url": receiver.url, "event_types": ["managed_account.disabled"]})
    assert response.status_code == 302
    toggle = reverse("webhooks_toggle", args=[world.manager.public_id, endpoint.public_id])
    assert owner_client.get(toggle).status_code == 405
    assert owner_client.post(toggle).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.event_types == ["managed_account.disabled"] and not endpoint.enabled
    changes = [e.changes for e in AuditEvent.objects.filter(change_type="webhook_endpoint.updated").order_by("id")]
    assert {"field": "enabled", "from": True, "to": False} in changes[1]
    with django_capture_on_commit_callbacks(execute=True):
        disable(owner_client, world)
    assert not receiver.requests and not WebhookDelivery.objects.exists()
    assert "Disabled" in page(owner_client, "webhooks_endpoints", world.manager.public_id)


def test_a_bad_form_is_refused_with_its_reason(world, owner_client):
    url = reverse("webhooks_create", args=[world.manager.public_id])
    response = owner_client.post(url, {"url": "https://hooks.example.com/", "event_types": []})
    assert response.status_code == 422 and "Choose at least one event." in response.content.decode()
    response = owner_client.post(url, {"url": "https://hooks.example.com/", "event_types": ["nope.event"]})
    assert response.status_code == 422  # no such event
    assert not WebhookEndpoint.objects.exists()


def test_only_a_manager_offers_its_managed_accounts_events(world, persona, owner_client):
    assert "include_managed_accounts" in page(owner_client, "webhooks_create", world.manager.public_id)
    standard = page(persona("standard_owner"), "webhooks_create", world.standard.public_id)
    assert "include_managed_accounts" not in standard


@pytest.mark.parametrize(
    "name,status", [("billing", 403), ("reporting", 403), ("other_tenant", 404), ("anonymous", 302)]
)
def test_only_owners_and_admins_reach_the_pages(world, persona, owner_client, receiver, name, status):
    add_endpoint(owner_client, world.manager, receiver.url, ["service.blocked"])
    endpoint = WebhookEndpoint.objects.get()
    client = persona(name)
    for url_name, args in [
        ("webhooks_endpoints", []),
        ("webhooks_create", []),
        ("webhooks_edit", [endpoint.public_id]),
        ("webhooks_deliveries", [endpoint.public_id]),
    ]:
        assert client.get(reverse(url_name, args=[world.manager.public_id, *args])).status_code == status
    assert persona("admin").get(reverse("webhooks_endpoints", args=[world.manager.public_id])).status_code == 200


def test_the_delivery_log_shows_each_delivery_and_send_again_reuses_its_webhook_id(
    world, owner_client, receiver, django_capture_on_commit_callbacks
):
    receiver.fail_always = True
    add_endpoint(owner_client, world.manager, receiver.url, ["managed_account.disabled"])
    endpoint = WebhookEndpoint.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        disable(owner_client, world)
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", next_attempt_at=None)  # its day is over
    args = [world.manager.public_id, endpoint.public_id]
    log = page(owner_client, "webhooks_deliveries", *args)
    assert "managed_account.disabled" in log and "Failed" in log and "500" in log
    detail = page(owner_client, "webhooks_delivery", *args, delivery.public_id)
    assert delivery.webhook_id in detail and str(world.managed.public_id) in detail and "Send again" in detail

    resend = reverse("webhooks_resend", args=[*args, delivery.public_id])
    assert "Send managed_account.disabled" in html.unescape(owner_client.get(resend).content.decode())
    assert len(receiver.requests) == 1  # the confirmation sends nothing
    receiver.fail_always = False
    with django_capture_on_commit_callbacks(execute=True):
        assert owner_client.post(resend).status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 2
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery.webhook_id] * 2
    (event,) = AuditEvent.objects.filter(change_type="webhook_delivery.resent")
    assert event.user == world.users["owner"]
    assert {"field": "webhook_id", "from": None, "to": delivery.webhook_id} in event.changes


def test_the_pages_cost_the_same_queries_for_few_or_many_rows(world, owner_client, receiver):
    def queries(name: str, *args) -> int:
        with CaptureQueriesContext(connection) as captured:
            page(owner_client, name, world.manager.public_id, *args)
        return len(captured)

    add_endpoint(owner_client, world.manager, receiver.url, ["managed_account.disabled"])
    endpoint = WebhookEndpoint.objects.get()

    def deliveries(count: int) -> None:
        WebhookDelivery.objects.bulk_create(
            WebhookDelivery(endpoint=endpoint, event=e, event_type="managed_account.disabled", data={})
            for e in AuditEvent.objects.exclude(pk__in=WebhookDelivery.objects.values("event"))[:count]
        )

    for _ in range(70):
        AuditEvent.objects.create(account=world.manager, change_type="x", resource_type="x", resource_id="1")
    deliveries(2)
    few = queries("webhooks_endpoints"), queries("webhooks_deliveries", endpoint.public_id)
    for i in range(4):
        add_endpoint(owner_client, world.manager, f"{receiver.url}/{i}", ["service.blocked"])
    deliveries(60)
    many = queries("webhooks_endpoints"), queries("webhooks_deliveries", endpoint.public_id)
    assert few == many


def test_the_delivery_log_shows_its_times_in_utc_and_a_dash_for_no_attempt_yet(world, owner_client, receiver):
    from datetime import UTC, datetime

    add_endpoint(owner_client, world.manager, receiver.url, ["managed_account.disabled"])
    endpoint = WebhookEndpoint.objects.get()
    events = [
        AuditEvent.objects.create(account=world.manager, change_type="x", resource_type="x", resource_id=str(i))
        for i in range(2)
    ]
    tried = WebhookDelivery.objects.create(
        endpoint=endpoint, event=events[0], event_type="managed_account.disabled", data={}, attempts=1
    )
    WebhookDelivery.objects.create(endpoint=endpoint, event=events[1], event_type="managed_account.disabled", data={})
    WebhookDelivery.objects.filter(pk=tried.pk).update(
        created_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        last_attempt_at=datetime(2026, 3, 4, 23, 59, 58, tzinfo=UTC),
    )
    log = page(owner_client, "webhooks_deliveries", world.manager.public_id, endpoint.public_id)
    assert "2026-03-04 05:06:07" in log and "2026-03-04 23:59:58" in log
    assert log.count("<td >—</td>") + log.count("<td>—</td>") >= 1  # the delivery not yet attempted
