"""What the payment tests share: cards confirmed the way Stripe.js confirms them (against the
session's localstripe), separately billed accounts, and webhook payloads signed like Stripe's."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid
from decimal import Decimal

from django.conf import settings

from accounts.actor import Actor
from accounts.models import Account, User
from billing.ledger import services as ledger
from billing.models import LedgerEntry, PaymentMethod
from billing.payments import gateway
from billing.payments import services as payments
from tests.factories import account_with_owner

GOOD_CARD = "4242424242424242"
DECLINED_ON_CHARGE = "4000000000000341"  # localstripe: saves, then every charge is declined
DECLINED_ON_SAVE = "4000000000000002"  # localstripe: declined when saved


def confirm_setup(localstripe, client_secret: str, number: str = GOOD_CARD) -> tuple[int, dict]:
    """What Stripe.js's confirmCardSetup sends for a typed card: (HTTP status, answer)."""
    setup_intent = client_secret.split("_secret_")[0]
    body = {
        "key": settings.STRIPE_PUBLISHABLE_KEY,
        "use_stripe_sdk": True,
        "client_secret": client_secret,
        "payment_method_data": {
            "type": "card",
            "card": {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"},
        },
    }
    request = urllib.request.Request(
        f"{localstripe.url}/v1/setup_intents/{setup_intent}/confirm", data=json.dumps(body).encode()
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def add_card(localstripe, account: Account, user: User, number: str = GOOD_CARD) -> PaymentMethod:
    setup = payments.start_card_setup(account=account, key=f"{uuid.uuid4()}-1")
    status, answer = confirm_setup(localstripe, setup.client_secret, number)
    assert status == 200, answer
    card, created = payments.save_card(account=account, setup_intent_id=setup.id, actor=Actor(user=user))
    assert created
    return card


def separate_managed(manager: Account, name: str = "Harbor Separate") -> tuple[Account, User]:
    """A separately billed managed account of `manager`, with its owner."""
    return account_with_owner(name=name, managed_kind=True, manager=manager, billing_mode=Account.BillingMode.SEPARATE)


def give_credit(account: Account, amount: str) -> None:
    ledger.adjust_balance(
        account=account,
        amount=Decimal(amount),
        reason="Test credit",
        key=str(uuid.uuid4()),
        actor=Actor.platform_staff(),
    )


def confirmed_but_unsettled(account: Account, user: User, card: PaymentMethod, amount: str = "25.00"):
    """A top-up Stripe has taken the money for, whose news has reached nobody yet (the browser's
    return and the webhook are still to come): (payment, Stripe's PaymentIntent as a dict)."""
    payment, created = payments.claim_top_up(
        account=account, amount=Decimal(amount), card=card, key=str(uuid.uuid4()), actor=Actor(user=user)
    )
    assert created
    intent = payments.charge(payment)
    assert intent is not None and intent.succeeded, intent
    return payment, gateway.client().v1.payment_intents.retrieve(intent.id).to_dict()


def signed_event(intent: dict, *, event_type: str = "payment_intent.succeeded", secret: str | None = None):
    """(body, Stripe-Signature header) as Stripe signs a webhook delivery."""
    event = {"id": f"evt_{uuid.uuid4().hex[:14]}", "object": "event", "type": event_type, "data": {"object": intent}}
    body = json.dumps(event)
    timestamp = int(time.time())
    key = (secret or settings.STRIPE_WEBHOOK_SECRET).encode()
    signature = hmac.new(key, f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return body, f"t={timestamp},v1={signature}"


def top_up_entries(account: Account):
    return LedgerEntry.objects.filter(account=account, kind=LedgerEntry.Kind.TOP_UP)
