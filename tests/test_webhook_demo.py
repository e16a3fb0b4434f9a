"""The demo's webhook endpoint: `./dev run`'s demo steps add one on the demo manager, pointed at the
receiver the portal serves itself in development, and the events that follow are delivered to it
(signed, checked by the receiver); a second run adds nothing. The receiver exists in development
only: in tests and in production it is a 404, whatever DEBUG says."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.actor import Actor
from accounts.demo import MANAGER_EMAIL
from accounts.models import Account
from tests.test_demo_history import run_demo
from webhooks import signing
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import create_endpoint

RECEIVER = "/dev/webhook-receiver/"


def signed_post(client: Client, secret: str, body: str, *, webhook_id: str = "msg_demo", stamp: int | None = None):
    stamp = int(time.time()) if stamp is None else stamp
    headers = signing.headers(secret=secret, webhook_id=webhook_id, timestamp=stamp, body=body)
    return client.post(RECEIVER, body, content_type="application/json",
                       headers=dict(headers))  # fmt: skip


def endpoint_here(world, url: str) -> str:

    _, secret = create_endpoint(
        account=world.manager, url=url, event_types=["service.blocked"], actor=Actor(user=world.users["owner"])
    )
    return secret


@pytest.mark.parametrize(
    ("env", "debug", "production", "served"),
    [
        ("development", False, False, True),
        ("test", True, False, True),  # DEBUG on: a developer's own settings
        ("test", False, False, False),
        ("production", False, True, False),
        ("production", True, True, False),  # never in production, even with DEBUG forced on
    ],
)
def test_the_receiver_answers_in_development_only(world, settings, env, debug, production, served):
    secret = endpoint_here(world, "http://127.0.0.1:8000" + RECEIVER)  # added in development
    settings.MC_ENV, settings.DEBUG, settings.PRODUCTION = env, debug, production
    response = signed_post(Client(), secret, json.dumps({"data": {"event_type": "service.blocked"}}))
    assert response.status_code == (204 if served else 404)


def test_the_receiver_refuses_a_bad_or_stale_signature(world, settings):
    settings.MC_ENV = "development"
    secret = endpoint_here(world, "http://127.0.0.1:8000" + RECEIVER)
    body = json.dumps({"data": {"event_type": "service.blocked"}})
    assert signed_post(Client(), signing.new_secret(), body).status_code == 401  # another secret
    assert signed_post(Client(), secret, body, stamp=int(time.time()) - 3600).status_code == 401  # an hour old
    tampered = signing.headers(secret=secret, webhook_id="msg_x", timestamp=int(time.time()), body=body)
    response = Client().post(RECEIVER, body + " ", content_type="application/json", headers=tampered)
    assert response.status_code == 401
    assert Client().get(RECEIVER).status_code == 405


@pytest.mark.django_db(transaction=True)
def test_the_demo_has_an_endpoint_whose_deliveries_reach_the_development_receiver(catalogue, live_server, settings):
    settings.MC_ENV, settings.SITE_URL = "development", live_server.url
    end = timezone.now().isoformat()
    run_demo(end)  # deliveries are sent as the events commit (tasks run eagerly in tests)

    manager = Account.objects.get(email=MANAGER_EMAIL, kind=Account.Kind.MANAGER)
    (endpoint,) = WebhookEndpoint.objects.filter(account=manager)
    assert endpoint.url == live_server.url + reverse("webhooks_dev_receiver") and endpoint.include_managed_accounts
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert deliveries.count() >= 1
    assert set(deliveries.values_list("status", flat=True)) == {"delivered"}
    assert set(deliveries.values_list("response_code", flat=True)) == {204}  # the receiver checked each signature
    assert "service.blocked" in set(deliveries.values_list("event_type", flat=True))  # the demo's blocked account
    counts = (WebhookEndpoint.objects.count(), deliveries.count())

    run_demo(end)  # a second ./dev run
    assert (WebhookEndpoint.objects.count(), deliveries.count()) == counts

    owner = Client()
    owner.force_login(manager.memberships.get(role="owner").user)
    log = owner.get(reverse("webhooks_deliveries", args=[manager.public_id, endpoint.public_id]))
    latest = deliveries.order_by("-created_at", "-id").first()
    page = log.content.decode()
    assert log.status_code == 200 and latest.event_type in page and str(latest.public_id) in page  # newest first
