"""Cards, top-ups and auto-recharge through Stripe (billing.payments.gateway).

The rules, each in one place:
- Only an account that holds its own balance has cards and payments; a roll-up managed account is
  billed to its manager (`PaymentRefused`).
- Work is claimed before money moves: a pending Payment row with its idempotency key is committed
  before Stripe is asked, and every Stripe request carries an idempotency key derived from it.
- `settle` is the one way a Stripe answer reaches the ledger, whoever brings it (the top-up itself,
  the browser's return to the payment page, the webhook, the auto-recharge task), in any order and
  any number of times: the Payment moves pending -> succeeded by a conditional update in the
  transaction that posts the credit, whose ledger key is the PaymentIntent's id. It credits once.
- Auto-recharge: a debit that takes the balance from at or above the threshold to below it queues
  one attempt (billing.tasks.auto_recharge), claimed under the settings row's lock, at most
  settings.BILLING_AUTO_RECHARGE_MAX_PER_DAY attempts in 24 hours. A declined charge is recorded
  and shown, never retried: the next attempt needs the next crossing."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.errors import Refusal
from accounts.locks import lock_first, lock_or_create
from accounts.models import Account
from billing.ledger import services as ledger_services
from billing.ledger.selectors import current_balance
from billing.models import AutoRecharge, LedgerEntry, Payment, PaymentMethod, StripeCustomer
from billing.money import format_money, to_cents
from billing.payments import gateway
from billing.payments.selectors import ABANDONED_AFTER, DAY, cards_of, default_card, refusal

logger = logging.getLogger(__name__)


# An auto-recharge still pending after this long no longer blocks the next one (it still counts).
IN_FLIGHT = timedelta(hours=1)


SETTLING_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled")


class PaymentRefused(Refusal):
    """A card, top-up or auto-recharge request the rules refuse, before any money moves."""


def _require_own_balance(account: Account) -> None:
    reason = refusal(account)
    if reason:
        raise PaymentRefused(reason)


def validate_amount(amount: Decimal, *, label: str = "A payment") -> Decimal:
    """The one rule for a charged amount: more than zero, whole cents, at most BILLING_MAX_TOP_UP."""
    amount = Decimal(amount)
    if not amount.is_finite() or amount <= 0:
        raise PaymentRefused(f"{label} is more than zero.", field="amount")
    if to_cents(amount) != amount:
        raise PaymentRefused("Use at most 2 decimal places (whole cents).", field="amount")
    if amount > settings.BILLING_MAX_TOP_UP:
        raise PaymentRefused(f"{label} is at most {format_money(settings.BILLING_MAX_TOP_UP)}.", field="amount")
    return amount


def _customer_id(account: Account) -> str:
    """The account's Stripe customer, created on first use. Two racing first uses ask Stripe with
    the same idempotency key, and the database keeps one row per account."""
    existing = StripeCustomer.objects.filter(account=account).values_list("stripe_id", flat=True).first()
    if existing:
        return existing
    stripe_id = gateway.create_customer(
        name=account.name, email=account.email, reference=str(account.public_id), key=f"mc-customer-{account.public_id}"
    )
    try:
        with transaction.atomic():
            StripeCustomer.objects.create(account=account, stripe_id=stripe_id)
    except IntegrityError:
        return StripeCustomer.objects.get(account=account).stripe_id
    return stripe_id


def _lock_cards(account: Account) -> None:
    """Serialises changes to one account's cards (which one is the default) on its customer row."""
    lock_first(StripeCustomer.objects, account=account)


def start_card_setup(*, account: Account, key: str) -> gateway.SetupResult:
    """A SetupIntent for the page's card form (Stripe Elements confirms it in the browser)."""
    _require_own_balance(account)
    return gateway.create_setup_intent(customer=_customer_id(account), key=f"mc-setup-{account.public_id}-{key}")


def save_card(*, account: Account, setup_intent_id: str, actor: Actor) -> tuple[PaymentMethod, bool]:
    """Records the card a confirmed SetupIntent saved; (card, created). Stripe is asked, not the
    browser: the SetupIntent must be this account's customer's and have succeeded."""
    _require_own_balance(account)
    customer = _customer_id(account)
    setup = gateway.retrieve_setup_intent(setup_intent_id)
    if setup.customer != customer:
        raise PaymentRefused("That card was not set up for this account.")
    if setup.status != "succeeded" or not setup.payment_method:
        raise PaymentRefused("The card was not confirmed; enter it again.")
    known = PaymentMethod.objects.filter(stripe_id=setup.payment_method).first()
    if known is not None:
        if known.account_id != account.pk:
            raise PaymentRefused("That card was not set up for this account.")
        return known, False
    card = gateway.retrieve_card(setup.payment_method)
    if card.customer is None:
        gateway.attach_card(payment_method_id=card.id, customer=customer)
    elif card.customer != customer:
        raise PaymentRefused("That card was not set up for this account.")
    return _record_card(account=account, card=card, actor=actor)


@transaction.atomic
def _record_card(*, account: Account, card: gateway.Card, actor: Actor) -> tuple[PaymentMethod, bool]:
    _lock_cards(account)
    first = not PaymentMethod.objects.filter(account=account, is_default=True).exists()
    method, created = PaymentMethod.objects.get_or_create(
        stripe_id=card.id,
        defaults={
            "account": account,
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "is_default": first,
            "added_by": actor.user,
        },
    )
    if created:
        changes: list[audit.FieldChange] = [
            {"field": "card", "from": None, "to": method.label},
            {"field": "expiry", "from": None, "to": method.expiry},
        ]
        if first:
            changes.append({"field": "default", "from": None, "to": True})
        audit.record(
            account=account,
            actor=actor,
            change_type=audit.ChangeType.PAYMENT_METHOD_ADDED,
            resource=method,
            changes=changes,
        )
    return method, created


@transaction.atomic
def make_default(*, account: Account, card: PaymentMethod, actor: Actor) -> PaymentMethod:
    _require_own_balance(account)
    _lock_cards(account)
    before = default_card(account)
    if before is not None and before.pk == card.pk:
        return card
    PaymentMethod.objects.filter(account=account, is_default=True).update(is_default=False)
    PaymentMethod.objects.filter(pk=card.pk, account=account).update(is_default=True)
    audit.record(
        account=account,
        actor=actor,
        change_type=audit.ChangeType.PAYMENT_METHOD_MADE_DEFAULT,
        resource=card,
        changes=[{"field": "default", "from": before.label if before else None, "to": card.label}],
    )
    card.is_default = True
    return card


@transaction.atomic
def remove_card(*, account: Account, card: PaymentMethod, actor: Actor) -> PaymentMethod | None:
    """Detaches the card at Stripe and forgets it; the newest other card becomes the default when
    the default goes (returned). A Stripe failure rolls everything back: the card stays."""
    _require_own_balance(account)
    _lock_cards(account)
    stored = PaymentMethod.objects.filter(pk=card.pk, account=account).first()
    if stored is None:
        return default_card(account)
    card = stored
    try:
        gateway.detach_card(card.stripe_id)
    except gateway.GatewayError as error:
        if error.code != "resource_missing":  # already gone at Stripe: forget it here too
            raise
    was_default, label = card.is_default, card.label
    card.delete()
    new_default = None
    if was_default:
        new_default = cards_of(account).first()
        if new_default is not None:
            PaymentMethod.objects.filter(pk=new_default.pk).update(is_default=True)
    changes: list[audit.FieldChange] = [{"field": "card", "from": label, "to": None}]
    if new_default is not None:
        changes.append({"field": "default", "from": label, "to": new_default.label})
    audit.record(
        account=account,
        actor=actor,
        change_type=audit.ChangeType.PAYMENT_METHOD_REMOVED,
        resource=card,
        changes=changes,
    )
    return new_default or default_card(account)


def top_up(*, account: Account, amount: Decimal, card: PaymentMethod, key: str, actor: Actor) -> Payment:
    """A person's payment with a saved card: claimed, charged, settled. A repeated key (a double
    submit) returns the first payment as it stands, and charges nothing."""
    payment, created = claim_top_up(account=account, amount=amount, card=card, key=key, actor=actor)
    if not created:
        return payment
    intent = charge(payment)
    if intent is not None:
        settle(intent)
    payment.refresh_from_db()
    return payment


def claim_top_up(
    *, account: Account, amount: Decimal, card: PaymentMethod, key: str, actor: Actor
) -> tuple[Payment, bool]:
    _require_own_balance(account)
    amount = validate_amount(amount)
    if card.account_id != account.pk:
        raise PaymentRefused("Choose one of this account's cards.", field="card")
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                account=account,
                kind=Payment.Kind.TOP_UP,
                amount=amount,
                currency=_currency(account),
                idempotency_key=f"top-up:{key}",
                payment_method=card,
                card_label=card.label,
                created_by=actor.user,
                acting_as=actor.acting_as,
            )
    except IntegrityError:
        return Payment.objects.get(account=account, idempotency_key=f"top-up:{key}"), False
    return payment, True


def charge(payment: Payment) -> gateway.IntentResult | None:
    """Creates the payment's PaymentIntent (its id recorded before any money moves), then confirms
    it, both with idempotency keys of this payment. A decline is recorded on the payment; the
    intent is returned for `settle`, or None when there is nothing to settle."""
    card = payment.payment_method
    if card is None:
        _fail(payment, "The card was removed before it could be charged.")
        return None
    off_session = payment.kind == Payment.Kind.AUTO_RECHARGE
    try:
        intent = gateway.create_payment_intent(
            amount=payment.amount,
            currency=payment.currency,
            customer=_customer_id(payment.account),
            payment_method=card.stripe_id,
            metadata={"mission_control_payment": str(payment.public_id), "kind": payment.kind},
            key=f"mc-payment-{payment.public_id}",
            off_session=off_session,
        )
        _record_intent(payment, intent.id)
        if not off_session:
            intent = gateway.confirm_payment_intent(intent.id, key=f"mc-payment-{payment.public_id}-confirm")
    except gateway.CardDeclined as declined:
        if declined.payment_intent_id:
            _record_intent(payment, declined.payment_intent_id)
        _fail(payment, declined.message)
        return None
    except gateway.ProviderUnavailable as error:
        if off_session:
            raise  # created and confirmed in one call, or not: the task asks again with the same key
        if payment.stripe_payment_intent_id is None:
            _fail(payment, error.message)  # no intent, so nothing was charged
        return None  # confirmed or not, Stripe knows: the payment page and the webhook will tell
    except gateway.GatewayError as error:
        _fail(payment, error.message)
        return None
    if intent.status == "requires_action" and off_session:
        _fail(payment, "The bank asked to authenticate this charge; make a payment by hand.")
        return None
    return intent


def _record_intent(payment: Payment, intent_id: str) -> None:
    Payment.objects.filter(pk=payment.pk, stripe_payment_intent_id__isnull=True).update(
        stripe_payment_intent_id=intent_id, updated_at=timezone.now()
    )
    payment.stripe_payment_intent_id = intent_id


def refresh(payment: Payment) -> tuple[Payment, gateway.IntentResult | None]:
    """The browser's return to a payment's page: a pending payment is checked with Stripe and
    settled. Returns the payment as it stands and the intent (for one needing authentication)."""
    if payment.status != Payment.Status.PENDING:
        return payment, None
    if payment.stripe_payment_intent_id is None:
        if timezone.now() - payment.created_at > ABANDONED_AFTER:
            _fail(payment, "The payment was not completed; nothing was charged.")
            payment.refresh_from_db()
        return payment, None
    intent = gateway.retrieve_payment_intent(payment.stripe_payment_intent_id)
    settle(intent)
    payment.refresh_from_db()
    return payment, intent


def settle(intent: gateway.IntentResult) -> Payment | None:
    """Applies a PaymentIntent's state to its payment: succeeded credits the ledger once, a decline
    or cancellation marks it failed; anything else (processing, requires_action) waits."""
    payment = (
        Payment.objects.select_related("account", "created_by", "acting_as")
        .filter(stripe_payment_intent_id=intent.id)
        .first()
    )
    if payment is None:
        logger.info("Stripe PaymentIntent %s is none of ours; ignored", intent.id)
        return None
    if intent.succeeded:
        _credit(payment, intent)
    elif intent.failed:
        _fail(payment, intent.failure_message or "The payment did not go through.")
    return payment


@transaction.atomic
def _credit(payment: Payment, intent: gateway.IntentResult) -> None:
    if intent.amount != payment.amount or intent.currency != payment.currency:
        logger.error(
            "PaymentIntent %s is for %s %s, payment %s for %s %s: not credited",
            intent.id,
            intent.currency,
            intent.amount,
            payment.pk,
            payment.currency,
            payment.amount,
        )
        return
    moved = Payment.objects.filter(pk=payment.pk, status__in=(Payment.Status.PENDING, Payment.Status.FAILED)).update(
        status=Payment.Status.SUCCEEDED, failure_message="", updated_at=timezone.now()
    )
    if not moved:
        return  # already credited by whoever came first
    actor = _actor_of(payment)
    label = "Auto-recharge" if payment.kind == Payment.Kind.AUTO_RECHARGE else "Top-up"
    posted = ledger_services.post_entry(
        account=payment.account,
        kind=LedgerEntry.Kind.TOP_UP,
        amount=payment.amount,
        key=f"stripe:{intent.id}",
        description=f"{label} with {payment.card_label}" if payment.card_label else label,
        actor=actor,
    )
    Payment.objects.filter(pk=payment.pk).update(ledger_entry=posted.entry)
    change_type = (
        audit.ChangeType.AUTO_RECHARGE_CHARGED
        if payment.kind == Payment.Kind.AUTO_RECHARGE
        else audit.ChangeType.TOP_UP_SUCCEEDED
    )
    audit.record(
        account=payment.account,
        actor=actor,
        change_type=change_type,
        resource=payment,
        changes=[
            {"field": "amount", "from": None, "to": str(payment.amount)},
            {"field": "card", "from": None, "to": payment.card_label},
        ],
    )


@transaction.atomic
def _fail(payment: Payment, message: str) -> None:
    moved = Payment.objects.filter(pk=payment.pk, status=Payment.Status.PENDING).update(
        status=Payment.Status.FAILED, failure_message=message[:500], updated_at=timezone.now()
    )
    if not moved:
        return
    payment.status, payment.failure_message = Payment.Status.FAILED, message[:500]
    change_type = (
        audit.ChangeType.AUTO_RECHARGE_FAILED
        if payment.kind == Payment.Kind.AUTO_RECHARGE
        else audit.ChangeType.TOP_UP_FAILED
    )
    audit.record(
        account=payment.account,
        actor=_actor_of(payment),
        change_type=change_type,
        resource=payment,
        changes=[
            {"field": "amount", "from": None, "to": str(payment.amount)},
            {"field": "failure", "from": None, "to": message[:500]},
        ],
    )


def _actor_of(payment: Payment) -> Actor:
    """Whoever started the payment (the real person when a manager acted); the platform for an
    auto-recharge. The same whether the return, the webhook or a task settles it."""
    if payment.created_by_id is None:
        return Actor(user=None, platform=True)
    return Actor(user=payment.created_by, acting_as=payment.acting_as)


# The PaymentIntent fields `gateway.intent_result` reads, and their JSON types (None: may be absent).
_INTENT_FIELDS: dict[str, tuple[type, bool]] = {
    "id": (str, True),
    "status": (str, True),
    "amount": (int, True),
    "currency": (str, True),
    "client_secret": (str, False),
    "last_payment_error": (dict, False),
}


def _event_intent(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    intent = data.get("object") if isinstance(data, dict) else None
    if not isinstance(intent, dict):
        raise gateway.MalformedEvent(f"A {event['type']} event carries its PaymentIntent in data.object.")
    for name, (kind, required) in _INTENT_FIELDS.items():
        value = intent.get(name)
        if value is None and not required:
            continue
        if isinstance(value, bool) or not isinstance(value, kind):
            raise gateway.MalformedEvent(f"The PaymentIntent's {name} is missing or not a {kind.__name__}.")
    message = (intent.get("last_payment_error") or {}).get("message")
    if intent["amount"] < 0 or not (message is None or isinstance(message, str)):
        raise gateway.MalformedEvent("The PaymentIntent's amount or last_payment_error is not what Stripe sends.")
    return intent


def handle_event(event: dict[str, Any]) -> Payment | None:
    """A verified webhook event (billing.payment_views.stripe_webhook). An event of a type we do not
    act on is ignored whatever it carries; a settling one must carry its PaymentIntent, else
    `gateway.MalformedEvent` (a signature proves who sent the bytes, not that they are well formed)."""
    if not isinstance(event.get("type"), str):
        raise gateway.MalformedEvent("The event has no type.")
    if event["type"] not in SETTLING_EVENTS:
        return None
    return settle(gateway.intent_result(_event_intent(event)))


def _currency(account: Account) -> str:
    return current_balance(account).currency


@transaction.atomic
def update_auto_recharge(
    *, account: Account, enabled: bool, threshold: Decimal, amount: Decimal, actor: Actor
) -> AutoRecharge:
    _require_own_balance(account)
    amount = validate_amount(amount, label="A recharge")
    if not threshold.is_finite() or threshold < 0 or to_cents(threshold) != threshold:
        raise PaymentRefused("The threshold is zero or more, in whole cents.", field="threshold")
    if enabled and default_card(account) is None:
        raise PaymentRefused("Add a card first: auto-recharge charges your default card.", field="enabled")
    row = lock_or_create(AutoRecharge.objects, account=account)
    before = {"enabled": row.enabled, "threshold": str(row.threshold), "amount": str(row.amount)}
    row.enabled, row.threshold, row.amount, row.updated_by = enabled, to_cents(threshold), amount, actor.user
    row.save()
    after = {"enabled": row.enabled, "threshold": str(row.threshold), "amount": str(row.amount)}
    changes: list[audit.FieldChange] = [
        {"field": f, "from": before[f], "to": after[f]} for f in after if before[f] != after[f]
    ]
    if changes:
        audit.record(
            account=account,
            actor=actor,
            change_type=audit.ChangeType.AUTO_RECHARGE_CHANGED,
            resource=row,
            changes=changes,
        )
    return row


@transaction.atomic
def claim_auto_recharge(*, account_id: int, trigger: str) -> Payment | None:
    """The pending Payment of one attempt, or None when none is due. Under the settings row's lock,
    so two workers triggered at once claim once: still enabled, the balance still below the
    threshold, no attempt in flight, fewer than the daily maximum in the last 24 hours, a default
    card, and this trigger (the debit that crossed) not tried before."""
    row = lock_first(AutoRecharge.objects, account_id=account_id, enabled=True)
    if row is None:
        return None
    account = Account.objects.select_related("manager").get(pk=account_id)
    if not account.has_own_balance or not account.is_usable:  # `Account.blocked_reason`
        return None
    balance = current_balance(account).amount
    if balance >= row.threshold:
        return None
    now = timezone.now()
    attempts = Payment.objects.filter(account=account, kind=Payment.Kind.AUTO_RECHARGE, created_at__gte=now - DAY)
    if attempts.filter(status=Payment.Status.PENDING, created_at__gte=now - IN_FLIGHT).exists():
        return None
    if attempts.count() >= settings.BILLING_AUTO_RECHARGE_MAX_PER_DAY:
        logger.info("Auto-recharge of account %s skipped: daily maximum reached", account_id)
        return None
    card = default_card(account)
    key = f"auto-recharge:{trigger}"
    if card is None or Payment.objects.filter(account=account, idempotency_key=key).exists():
        return None
    return Payment.objects.create(
        account=account,
        kind=Payment.Kind.AUTO_RECHARGE,
        amount=row.amount,
        currency=_currency(account),
        idempotency_key=key,
        payment_method=card,
        card_label=card.label,
    )


def charge_auto_recharge(payment_id: int) -> Payment:
    """Charges a claimed auto-recharge off session and settles it. Raises ProviderUnavailable when
    Stripe could not be reached (the task retries with the same idempotency key)."""
    payment = Payment.objects.select_related("account", "payment_method").get(pk=payment_id)
    if payment.status == Payment.Status.PENDING:
        intent = charge(payment)
        if intent is not None:
            settle(intent)
        payment.refresh_from_db()
    return payment


def give_up(payment_id: int, message: str) -> None:
    """The task's last retry failed: the attempt is recorded as failed, and counts."""
    payment = Payment.objects.select_related("account").get(pk=payment_id)
    _fail(payment, message)
