"""Cards, top-ups and Stripe's webhook, against the session's localstripe (no mocks)."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.actor import Actor
from accounts.models import AuditEvent
from billing.ledger import selectors as ledger_selectors
from billing.ledger import services as ledger
from billing.models import LedgerEntry, Payment, PaymentMethod
from billing.payments import gateway
from billing.payments import services as payments
from tests.conftest import log_in_as
from tests.payments_support import (
    DECLINED_ON_CHARGE,
    DECLINED_ON_SAVE,
    add_card,
    confirm_setup,
    confirmed_but_unsettled,
    separate_managed,
    signed_event,
    top_up_entries,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("localstripe")]


def _url(name: str, account, *args) -> str:
    return reverse(name, args=[account.public_id, *args])


def _pay(client, account, amount: str, card: PaymentMethod, key: str | None = None):
    data = {"amount": amount, "card": str(card.public_id), "key": key or str(uuid.uuid4())}
    return client.post(_url("top_up", account), data)


# --- Cards -----------------------------------------------------------------------------------------------


def test_a_billing_member_adds_a_card_through_the_pages(world, persona, localstripe):
    client = persona("billing")
    page = client.get(_url("payment_method_add", world.manager))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'<script src="{localstripe.url}/js.stripe.com/v3/"></script>' in html  # never a CDN
    assert "js/payments.js" in html

    answer = client.post(_url("payment_method_setup", world.manager), {"key": f"{uuid.uuid4()}-1"})
    assert answer.status_code == 200
    client_secret = answer.json()["client_secret"]
    status, setup = confirm_setup(localstripe, client_secret)
    assert status == 200 and setup["status"] == "succeeded"

    response = client.post(_url("payment_method_add", world.manager), {"setup_intent": setup["id"]})
    assert response.status_code == 302
    assert response["Location"] == _url("payment_methods", world.manager)
    card = PaymentMethod.objects.get(account=world.manager)
    assert (card.brand, card.last4, card.exp_month, card.exp_year, card.is_default) == ("visa", "4242", 12, 2034, True)
    assert card.added_by == world.users["billing"]
    assert gateway.retrieve_card(card.stripe_id).customer == world.manager.stripe_customer.stripe_id
    listing = client.get(_url("payment_methods", world.manager)).content.decode()
    assert "Visa •••• 4242" in listing and "Default" in listing
    event = AuditEvent.objects.get(account=world.manager, change_type="payment_method.added")
    assert event.user == world.users["billing"]

    # The same SetupIntent posted again (a reload) saves nothing twice.
    again = client.post(_url("payment_method_add", world.manager), {"setup_intent": setup["id"]})
    assert again.status_code == 302
    assert PaymentMethod.objects.filter(account=world.manager).count() == 1


def test_a_card_declined_when_saved_is_never_recorded(world, persona, localstripe):
    client = persona("owner")
    secret = client.post(_url("payment_method_setup", world.manager), {"key": f"{uuid.uuid4()}-1"}).json()
    status, answer = confirm_setup(localstripe, secret["client_secret"], DECLINED_ON_SAVE)
    assert status == 402 and answer["error"]["message"] == "Your card was declined."
    setup_id = secret["client_secret"].split("_secret_")[0]
    response = client.post(_url("payment_method_add", world.manager), {"setup_intent": setup_id})
    assert response.status_code == 422
    assert "The card was not confirmed" in response.content.decode()
    assert not PaymentMethod.objects.filter(account=world.manager).exists()


def test_a_setup_intent_of_another_account_is_refused(world, persona, localstripe):
    other_card_setup = payments.start_card_setup(account=world.standard, key=f"{uuid.uuid4()}-1")
    confirm_setup(localstripe, other_card_setup.client_secret)
    response = persona("owner").post(_url("payment_method_add", world.manager), {"setup_intent": other_card_setup.id})
    assert response.status_code == 422
    assert "not set up for this account" in response.content.decode()
    assert not PaymentMethod.objects.exists()


def test_make_default_moves_the_default_and_is_audited(world, persona, localstripe):
    first = add_card(localstripe, world.manager, world.users["owner"])
    second = add_card(localstripe, world.manager, world.users["owner"])
    assert first.is_default and not second.is_default
    response = persona("billing").post(_url("payment_method_default", world.manager, second.public_id))
    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.is_default and not first.is_default
    event = AuditEvent.objects.get(change_type="payment_method.made_default")
    assert event.user == world.users["billing"]
    assert event.changes == [{"field": "default", "from": "Visa •••• 4242", "to": "Visa •••• 4242"}]


def test_removing_a_card_asks_first_then_detaches_it_at_stripe(world, persona, localstripe):
    first = add_card(localstripe, world.manager, world.users["owner"])
    second = add_card(localstripe, world.manager, world.users["owner"])
    client = persona("billing")
    url = _url("payment_method_remove", world.manager, first.public_id)

    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "Remove Visa •••• 4242?" in confirm.content.decode()
    assert client.post(url).status_code == 200  # no `confirm`: still the confirmation step
    assert PaymentMethod.objects.filter(pk=first.pk).exists()

    response = client.post(url, {"confirm": "1"})
    assert response.status_code == 302
    assert not PaymentMethod.objects.filter(pk=first.pk).exists()
    second.refresh_from_db()
    assert second.is_default  # the default went, the other card took its place
    assert gateway.retrieve_card(first.stripe_id).customer is None
    assert AuditEvent.objects.filter(change_type="payment_method.removed", user=world.users["billing"]).exists()


# --- Top-ups ---------------------------------------------------------------------------------------------


def test_a_top_up_credits_the_balance_once(world, persona, localstripe):
    card = add_card(localstripe, world.manager, world.users["owner"])
    client = persona("billing")
    key = str(uuid.uuid4())

    response = _pay(client, world.manager, "25.00", card, key)
    payment = Payment.objects.get(account=world.manager)
    assert response.status_code == 302
    assert response["Location"] == _url("payment_detail", world.manager, payment.public_id)
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.stripe_payment_intent_id.startswith("pi_")
    assert payment.created_by == world.users["billing"]
    assert gateway.retrieve_payment_intent(payment.stripe_payment_intent_id).amount == Decimal("25.00")
    entry = top_up_entries(world.manager).get()
    assert entry.amount == Decimal("25.00")
    assert entry.idempotency_key == f"top_up:stripe:{payment.stripe_payment_intent_id}"
    assert payment.ledger_entry == entry

    # The return page, twice, and a double submit of the same form: still one credit.
    for _ in range(2):
        page = client.get(response["Location"])
        assert page.status_code == 200
        assert "Paid: USD 25.00 was added to your balance." in page.content.decode()
    assert _pay(client, world.manager, "25.00", card, key).status_code == 302
    assert Payment.objects.filter(account=world.manager).count() == 1
    assert top_up_entries(world.manager).count() == 1
    assert ledger.balance_of(world.manager).amount == Decimal("25.00") == ledger_selectors.ledger_sum(world.manager)
    assert "USD 25.00" in client.get(_url("balance", world.manager)).content.decode()
    event = AuditEvent.objects.get(change_type="top_up.succeeded")
    assert event.user == world.users["billing"] and event.account == world.manager


def test_a_declined_card_shows_stripes_message_and_charges_nothing(world, persona, localstripe):
    card = add_card(localstripe, world.manager, world.users["owner"], DECLINED_ON_CHARGE)
    client = persona("billing")
    response = _pay(client, world.manager, "40.00", card)
    assert response.status_code == 422
    html = response.content.decode()
    assert "Visa •••• 0341: Your card was declined. Nothing was charged; try another card." in html
    assert 'value="40.00"' in html  # the typed amount is kept
    payment = Payment.objects.get(account=world.manager)
    assert payment.status == Payment.Status.FAILED
    assert payment.failure_message == "Your card was declined."
    assert not top_up_entries(world.manager).exists()
    assert "Your card was declined." in client.get(_url("payment_history", world.manager)).content.decode()
    assert AuditEvent.objects.filter(change_type="top_up.failed", user=world.users["billing"]).exists()
    # The form came back with a new key: paying again is a new attempt, not the failed one.
    new_key = response.context["form"].data["key"]
    assert new_key != payment.idempotency_key.removeprefix("top-up:")


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "Pay more than zero."),
        ("0.00", "Pay more than zero."),
        ("-5", "Pay more than zero."),
        ("10000.01", "A payment is at most USD 10,000.00."),
        ("123456789012345", "A payment is at most USD 10,000.00."),
        ("12.345", "Use at most 2 decimal places (whole cents)."),
        ("twelve", "Enter an amount such as 25.00."),
        ("NaN", "Enter an amount such as 25.00."),
        ("", "Enter an amount."),
    ],
)
def test_a_bad_amount_is_refused_with_a_clear_message_and_kept(world, persona, amount, message):
    card = PaymentMethod.objects.create(
        account=world.manager,
        stripe_id="pm_never_charged",
        brand="visa",
        last4="4242",
        exp_month=1,
        exp_year=2035,
        is_default=True,
    )
    response = _pay(persona("billing"), world.manager, amount, card)
    assert response.status_code == 422
    html = response.content.decode()
    assert message in html
    if amount:
        assert f'value="{amount}"' in html
    assert not Payment.objects.exists()


def test_a_top_up_needs_a_card_of_this_account(world, persona, localstripe):
    add_card(localstripe, world.manager, world.users["owner"])
    foreign = add_card(localstripe, world.standard, world.users["standard_owner"])
    response = _pay(persona("owner"), world.manager, "10.00", foreign)
    assert response.status_code == 422
    assert "Choose one of your cards." in response.content.decode()
    assert not Payment.objects.filter(account=world.manager).exists()


# --- Who may ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["payment_methods", "payment_method_add", "top_up", "auto_recharge"])
def test_reporting_members_may_not_and_strangers_see_nothing(world, persona, name):
    assert persona("reporting").get(_url(name, world.manager)).status_code == 403
    assert persona("other_tenant").get(_url(name, world.manager)).status_code == 404
    assert persona("billing").get(_url(name, world.manager)).status_code == 200


def test_reporting_members_cannot_pay(world, persona, localstripe):
    card = add_card(localstripe, world.manager, world.users["owner"])
    assert _pay(persona("reporting"), world.manager, "10.00", card).status_code == 403
    assert persona("reporting").post(_url("payment_method_default", world.manager, card.public_id)).status_code == 403
    assert not Payment.objects.exists()


def test_a_rollup_managed_account_is_billed_to_its_manager(world, persona):
    client = persona("managed_owner")
    for name in ("payment_methods", "payment_method_add", "top_up", "auto_recharge", "payment_history"):
        response = client.get(_url(name, world.managed))
        assert response.status_code == 200, name
        assert "Alpine Voice is billed to Acme Reseller" in response.content.decode(), name
    refused = client.post(_url("top_up", world.managed), {"amount": "10.00"})
    assert refused.status_code == 422
    setup = client.post(_url("payment_method_setup", world.managed), {"key": f"{uuid.uuid4()}-1"})
    assert setup.status_code == 422 and "roll-up" in setup.json()["error"]
    assert not Payment.objects.exists()
    with pytest.raises(payments.PaymentRefused):
        payments.start_card_setup(account=world.managed, key=f"{uuid.uuid4()}-1")


def test_a_manager_acting_as_a_managed_account_pays_as_its_owner_and_is_audited_as_itself(world, client, localstripe):
    separate, separate_owner = separate_managed(world.manager)
    card = add_card(localstripe, separate, separate_owner)
    client.force_login(world.users["owner"])
    assert log_in_as(client, world.manager, separate).status_code == 302

    response = _pay(client, separate, "15.00", card)
    assert response.status_code == 302
    payment = Payment.objects.get(account=separate)
    assert payment.status == Payment.Status.SUCCEEDED
    assert (payment.created_by, payment.acting_as) == (world.users["owner"], separate_owner)
    assert ledger.balance_of(separate).amount == Decimal("15.00")
    event = AuditEvent.objects.get(change_type="top_up.succeeded", account=separate)
    assert event.user == world.users["owner"] and event.acting_as == separate_owner
    assert event.change_made_by == AuditEvent.MadeBy.ACCOUNT_MANAGER
    # Acting as the managed account, the manager's own payment pages are a stranger's.
    assert client.get(_url("payment_methods", world.manager)).status_code == 404


# --- The webhook -----------------------------------------------------------------------------------------


def _webhook(client, body: str, signature: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature else {}
    return client.post(reverse("stripe_webhook"), body, content_type="application/json", **headers)


def test_a_webhook_with_a_bad_signature_is_refused_and_writes_nothing(world, client, localstripe):
    card = add_card(localstripe, world.manager, world.users["owner"])
    payment, intent = confirmed_but_unsettled(world.manager, world.users["owner"], card)
    body, good = signed_event(intent)
    _, wrong_secret = signed_event(intent, secret="whsec_not_ours")
    tampered = body.replace('"amount": 2500', '"amount": 250000')
    assert tampered != body
    events_before = AuditEvent.objects.count()

    for case_body, signature in ((body, wrong_secret), (body, None), (body, "t=1,v1=00"), (tampered, good)):
        response = _webhook(client, case_body, signature)
        assert response.status_code == 400
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert not top_up_entries(world.manager).exists()
    assert AuditEvent.objects.count() == events_before
    assert client.get(reverse("stripe_webhook")).status_code == 405


def test_return_and_webhook_each_twice_credit_once(world, persona, localstripe):
    card = add_card(localstripe, world.manager, world.users["owner"])
    payment, intent = confirmed_but_unsettled(world.manager, world.users["owner"], card, "30.00")
    client = persona("billing")
    body, signature = signed_event(intent)

    assert _webhook(client, body, signature).status_code == 200
    assert client.get(_url("payment_detail", world.manager, payment.public_id)).status_code == 200
    assert _webhook(client, body, signature).status_code == 200
    assert client.get(_url("payment_detail", world.manager, payment.public_id)).status_code == 200

    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert top_up_entries(world.manager).count() == 1
    assert ledger.balance_of(world.manager).amount == Decimal("30.00") == ledger_selectors.ledger_sum(world.manager)
    assert AuditEvent.objects.filter(change_type="top_up.succeeded").count() == 1
    # The audit names the person who paid, whoever delivered the news.
    assert AuditEvent.objects.get(change_type="top_up.succeeded").user == world.users["owner"]


def test_the_return_settles_a_payment_the_webhook_has_not_reached(world, persona, localstripe):
    card = add_card(localstripe, world.manager, world.users["owner"])
    payment, _ = confirmed_but_unsettled(world.manager, world.users["owner"], card, "12.34")
    page = persona("billing").get(_url("payment_detail", world.manager, payment.public_id))
    assert "Paid: USD 12.34 was added to your balance." in page.content.decode()
    assert top_up_entries(world.manager).get().amount == Decimal("12.34")


def test_a_failure_event_marks_the_payment_failed_and_a_foreign_intent_is_ignored(world, client, localstripe):
    card = add_card(localstripe, world.manager, world.users["owner"])
    payment, intent = confirmed_but_unsettled(world.manager, world.users["owner"], card)
    stranger = dict(intent, id="pi_not_ours")
    assert _webhook(client, *signed_event(stranger)).status_code == 200
    declined = dict(intent, status="requires_payment_method", last_payment_error={"message": "Your card was declined."})
    # A decline reported for an intent that actually succeeded arrives late: pending -> failed...
    assert _webhook(client, *signed_event(declined, event_type="payment_intent.payment_failed")).status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED and payment.failure_message == "Your card was declined."
    # ...and Stripe's word that the money was taken wins: failed -> succeeded, credited once.
    assert _webhook(client, *signed_event(intent)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and payment.failure_message == ""
    assert top_up_entries(world.manager).count() == 1


@pytest.mark.django_db(transaction=True)
def test_localstripe_delivers_the_webhook_and_it_credits_once(world, localstripe, live_server, settings):
    """The real delivery: localstripe signs and posts payment_intent.succeeded to the live server."""
    card = add_card(localstripe, world.manager, world.users["owner"])
    payment, _ = payments.claim_top_up(
        account=world.manager,
        amount=Decimal("20.00"),
        card=card,
        key=str(uuid.uuid4()),
        actor=Actor(user=world.users["owner"]),
    )
    localstripe.register_webhook(
        live_server.url + reverse("stripe_webhook"), settings.STRIPE_WEBHOOK_SECRET, ["payment_intent.succeeded"]
    )
    try:
        intent = payments.charge(payment)  # confirmed at Stripe, not settled here: the webhook must do it
        assert intent is not None and intent.succeeded
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not top_up_entries(world.manager).exists():
            time.sleep(0.2)
    finally:
        localstripe.stop_webhooks(settings.STRIPE_WEBHOOK_SECRET)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert top_up_entries(world.manager).get().amount == Decimal("20.00")
    assert LedgerEntry.objects.filter(account=world.manager).count() == 1
