"""The one door to Stripe, through the official `stripe` package.

Which Stripe is a matter of settings alone: STRIPE_API_BASE empty is Stripe itself; in development
and tests it is localstripe on loopback. Nothing here touches the database: billing.payments
decides, records and claims; this module only talks to the provider and turns its answers and
errors into plain values. Amounts cross this door as Decimal and leave as integer cents.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings

from billing.money import to_cents

# Amounts cross to Stripe in the currency's smallest unit. Only two-decimal currencies (USD) here.
MINOR_UNITS = 100
# With idempotency keys on every POST, the client may resend a request whose answer it never saw.
NETWORK_RETRIES = 2
TIMEOUT_SECONDS = 30


class GatewayError(Exception):
    """Stripe refused the request, or could not be reached: nothing to show but a short message."""

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code  # Stripe's error code, e.g. resource_missing


class CardDeclined(GatewayError):
    """The card was declined (or failed authentication). Never retried automatically."""

    def __init__(self, message: str, *, payment_intent_id: str | None = None):
        super().__init__(message)
        self.payment_intent_id = payment_intent_id


class ProviderUnavailable(GatewayError):
    """A network failure or a Stripe-side error: whether the request took effect is unknown, so the
    same call may be repeated with the same idempotency key."""


class BadSignature(Exception):
    pass


class MalformedEvent(ValueError):
    """A signed webhook event that is not the shape Stripe sends (not a JSON object, no type, a
    settling event without its PaymentIntent, a field of the wrong type): nothing to act on."""


def to_minor(amount: Decimal) -> int:
    """USD 12.34 -> 1234, exactly; an amount with fractions of a cent is refused, never rounded here."""
    amount = Decimal(amount)
    if not amount.is_finite() or to_cents(amount) != amount:
        raise ValueError(f"{amount} is not a whole number of cents")
    return int(amount * MINOR_UNITS)


def from_minor(cents: int) -> Decimal:
    return to_cents(Decimal(int(cents)) / MINOR_UNITS)


@functools.lru_cache(maxsize=4)
def _client(api_key: str, api_base: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
    )


def client() -> stripe.StripeClient:
    """Read from settings on every call (cached per key and base), so a test's override applies."""
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


def _call(
    method: Callable[..., stripe.StripeObject], params: dict[str, Any], *, key: str | None = None
) -> dict[str, Any]:
    """One API call, answered as a plain dict; every Stripe error becomes one of ours."""
    options = {"idempotency_key": key} if key else None
    try:
        answer = method(params=params, options=options) if options else method(params=params)
        return answer.to_dict()
    except stripe.CardError as error:
        intent = getattr(error.error, "payment_intent", None) if error.error else None
        message = error.user_message or str(error) or "The card was declined."
        raise CardDeclined(message, payment_intent_id=intent.get("id") if intent else None) from error
    except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as error:
        raise ProviderUnavailable("The payment provider could not be reached; try again in a minute.") from error
    except stripe.StripeError as error:
        message = error.user_message or str(error) or "The payment provider refused the request."
        raise GatewayError(message, code=error.code) from error


# --- Customers and cards ---------------------------------------------------------------------------


def create_customer(*, name: str, email: str, reference: str, key: str) -> str:
    customer = _call(
        client().v1.customers.create,
        {"name": name, "email": email, "metadata": {"mission_control_account": reference}},
        key=key,
    )
    customer_id: str = customer["id"]
    return customer_id


@dataclass(frozen=True)
class SetupResult:
    id: str
    status: str
    customer: str | None
    payment_method: str | None
    client_secret: str


def create_setup_intent(*, customer: str, key: str) -> SetupResult:
    intent = _call(
        client().v1.setup_intents.create,
        {"customer": customer, "usage": "off_session", "payment_method_types": ["card"]},
        key=key,
    )
    return _setup_result(intent)


def retrieve_setup_intent(setup_intent_id: str) -> SetupResult:
    return _setup_result(_call(functools.partial(client().v1.setup_intents.retrieve, setup_intent_id), {}))


def _setup_result(intent: dict[str, Any]) -> SetupResult:
    payment_method = intent.get("payment_method")
    if isinstance(payment_method, dict):
        payment_method = payment_method["id"]
    return SetupResult(intent["id"], intent["status"], intent.get("customer"), payment_method, intent["client_secret"])


@dataclass(frozen=True)
class Card:
    id: str
    customer: str | None
    brand: str
    last4: str
    exp_month: int
    exp_year: int


def retrieve_card(payment_method_id: str) -> Card:
    method = _call(functools.partial(client().v1.payment_methods.retrieve, payment_method_id), {})
    if method["type"] != "card":
        raise GatewayError("Only cards can be saved.")
    card = method["card"]
    customer = method.get("customer")
    if isinstance(customer, dict):
        customer = customer["id"]
    return Card(method["id"], customer, card["brand"], card["last4"], int(card["exp_month"]), int(card["exp_year"]))


def attach_card(*, payment_method_id: str, customer: str) -> None:
    # Stripe attaches a card confirmed through a customer's SetupIntent by itself; localstripe does not.
    _call(functools.partial(client().v1.payment_methods.attach, payment_method_id), {"customer": customer})


def detach_card(payment_method_id: str) -> None:
    _call(functools.partial(client().v1.payment_methods.detach, payment_method_id), {})


# --- Payments --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntentResult:
    id: str
    status: str  # requires_confirmation, requires_action, processing, succeeded, requires_payment_method, canceled
    amount: Decimal
    currency: str
    client_secret: str | None
    failure_message: str

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def failed(self) -> bool:
        # A confirmed intent back at requires_payment_method was declined; canceled is final too.
        return self.status == "canceled" or (self.status == "requires_payment_method" and bool(self.failure_message))


def intent_result(intent: dict[str, Any]) -> IntentResult:
    """An IntentResult from a PaymentIntent as a dict (an API answer or a webhook event's object)."""
    error = intent.get("last_payment_error") or {}
    return IntentResult(
        id=intent["id"],
        status=intent["status"],
        amount=from_minor(intent["amount"]),
        currency=str(intent["currency"]).upper(),
        client_secret=intent.get("client_secret"),
        failure_message=(error.get("message") or "") if error else "",
    )


def create_payment_intent(
    *,
    amount: Decimal,
    currency: str,
    customer: str,
    payment_method: str,
    metadata: dict[str, str],
    key: str,
    off_session: bool = False,
) -> IntentResult:
    """Create a PaymentIntent for a saved card. On session it is only created (confirm it with
    `confirm_payment_intent`, so its id is recorded before any money moves); off session (an
    auto-recharge, nobody at the keyboard) Stripe requires it created and confirmed in one call."""
    params = {
        "amount": to_minor(amount),
        "currency": currency.lower(),
        "customer": customer,
        "payment_method": payment_method,
        "payment_method_types": ["card"],
        "metadata": metadata,
    }
    if off_session:
        params |= {"confirm": True, "off_session": True}
    return intent_result(_call(client().v1.payment_intents.create, params, key=key))


def confirm_payment_intent(payment_intent_id: str, *, key: str) -> IntentResult:
    return intent_result(_call(functools.partial(client().v1.payment_intents.confirm, payment_intent_id), {}, key=key))


def retrieve_payment_intent(payment_intent_id: str) -> IntentResult:
    return intent_result(_call(functools.partial(client().v1.payment_intents.retrieve, payment_intent_id), {}))


# --- Webhooks --------------------------------------------------------------------------------------


def verified_event(payload: bytes, signature: str | None) -> stripe.Event:
    """The event Stripe signed with STRIPE_WEBHOOK_SECRET; BadSignature for anything else."""
    try:
        event: stripe.Event = stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
        return event
    except (stripe.SignatureVerificationError, ValueError) as error:
        raise BadSignature(str(error)) from error
    except (AttributeError, TypeError) as error:  # signed, but stripe cannot build an Event of it
        raise MalformedEvent("The event is not a JSON object.") from error
