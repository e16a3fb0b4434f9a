"""`billing_mode.changed`: a change the manager scheduled in June takes effect at the start of July
(beat's apply_billing_mode_changes), and the event goes, signed, to the managed account's own
endpoints and to its manager's endpoints that take its managed accounts' events; not to a manager
endpoint that takes only the manager's own events, nor to another tenant."""

from __future__ import annotations

import pytest
from django.urls import reverse
from standardwebhooks import Webhook

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from billing.tasks import apply_billing_mode_changes
from tests import webhook_receiver
from tests.test_billing_mode_change import IN_JUNE, SWITCH
from tests.test_monthly_close import backdate, clock
from tests.test_webhook_deliveries import add_endpoint
from webhooks.models import WebhookDelivery

EVENT = "billing_mode.changed"


@pytest.fixture
def receivers():
    started = {name: webhook_receiver.start() for name in ("fleet", "own_only", "managed", "other")}
    yield started
    for receiver in started.values():
        receiver.stop()


def test_a_change_taking_effect_at_the_month_boundary_is_sent_to_the_account_and_its_managers_fleet_endpoint(
    world, persona, receivers, django_capture_on_commit_callbacks
):
    owner = persona("owner")
    fleet = add_endpoint(owner, world.manager, receivers["fleet"].url, [EVENT], managed=True)
    add_endpoint(owner, world.manager, receivers["own_only"].url, [EVENT])
    own = add_endpoint(persona("managed_owner"), world.managed, receivers["managed"].url, [EVENT])
    add_endpoint(persona("other_tenant"), world.other_manager, receivers["other"].url, [EVENT], managed=True)
    backdate()
    with clock(IN_JUNE):
        services.schedule_billing_mode_change(
            managed=world.managed, mode=Account.BillingMode.SEPARATE, actor=Actor(user=world.users["owner"])
        )
    assert not WebhookDelivery.objects.exists()  # scheduling is not the change

    with django_capture_on_commit_callbacks(execute=True), clock(SWITCH):  # sent after commit, at the real time
        assert apply_billing_mode_changes()["changed"] == 1

    event = AuditEvent.objects.get(change_type=EVENT)
    for name, secret in (("fleet", fleet), ("managed", own)):
        (request,) = receivers[name].requests
        sent = Webhook(secret).verify(request.body, request.headers)
        data = sent["data"]
        assert (data["event_type"], data["id"]) == (EVENT, str(event.public_id))
        assert data["occurred_at"] == "2025-07-01T00:00:05Z"
        payload = data["payload"]
        assert payload["account_id"] == payload["managed_account_id"] == str(world.managed.public_id)
        assert payload["manager_account_id"] == str(world.manager.public_id)
        assert (payload["from"], payload["to"], payload["effective_date"]) == ("rollup", "separate", "2025-07-01")
    assert not receivers["own_only"].requests and not receivers["other"].requests
    assert (
        receivers["fleet"].requests[0].headers["webhook-id"] != receivers["managed"].requests[0].headers["webhook-id"]
    )
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}

    # Beat's hourly re-run on the 1st changes nothing and sends nothing again.
    with django_capture_on_commit_callbacks(execute=True), clock(SWITCH):
        assert apply_billing_mode_changes()["changed"] == 0
    assert [len(receivers[n].requests) for n in ("fleet", "managed")] == [1, 1]


def test_the_event_is_offered_on_the_endpoint_form(owner_client, world):
    page = owner_client.get(reverse("webhooks_create", args=[world.manager.public_id])).content.decode()
    assert f'value="{EVENT}"' in page and "Billing mode changed" in page
