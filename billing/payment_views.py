"""Pages for cards, top-ups, payment history and auto-recharge, and Stripe's webhook.

Thin views: reach the account through accounts.access (404 for what is not yours, 403 for a role
without MANAGE_BILLING or VIEW_BILLING), call one function of billing.payments.services, redirect. A roll-up
managed account has no balance or cards: its pages say it is billed to its manager.
"""

from __future__ import annotations

import uuid
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import AccountAccess, account_access
from accounts.actor import Actor
from accounts.forms import apply_refusal
from accounts.permissions import MANAGE_BILLING, VIEW_BILLING
from billing.forms import AutoRechargeForm, CardSetupForm, SaveCardForm, TopUpForm
from billing.models import Payment, PaymentMethod
from billing.money import format_money
from billing.payments import gateway
from billing.payments import selectors as payment_selectors
from billing.payments import services as payments

GET_AND_POST = ["GET", "POST"]
PAYMENTS_PER_PAGE = 25


def _rollup(request: HttpRequest, access: AccountAccess, title: str) -> HttpResponse:
    """The page a roll-up managed account gets instead: billed to its manager (422 for a POST)."""
    context = {"access": access, "account": access.account, "title": title}
    return render(request, "billing/payment_rollup.html", context, status=422 if request.method == "POST" else 200)


def _stripe_context() -> dict[str, str]:
    return {"stripe_js_url": settings.STRIPE_JS_URL, "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY}


# --- Cards -------------------------------------------------------------------------------------------


@login_required
@require_GET
def payment_methods(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_BILLING)
    account = access.account
    if payment_selectors.refusal(account):
        return _rollup(request, access, "Payment methods")
    context = {
        "access": access,
        "account": account,
        "cards": payment_selectors.cards_of(account).select_related("added_by"),
        "auto_recharge": payment_selectors.auto_recharge_of(account),
    }
    return render(request, "billing/payment_methods.html", context)


@login_required
@require_http_methods(GET_AND_POST)
def payment_method_add(request: HttpRequest, account_id: UUID) -> HttpResponse:
    """GET: the card form (Stripe Elements). POST: the SetupIntent the browser confirmed, checked
    with Stripe and recorded."""
    access = account_access(request, account_id, MANAGE_BILLING)
    account = access.account
    if payment_selectors.refusal(account):
        return _rollup(request, access, "Add a card")
    form = SaveCardForm(request.POST) if request.method == "POST" else SaveCardForm()
    if request.method == "POST" and form.is_valid():
        try:
            card, created = payments.save_card(
                account=account, setup_intent_id=form.cleaned_data["setup_intent"], actor=Actor.from_request(request)
            )
        except payments.PaymentRefused as refused:
            apply_refusal(form=form, refusal=refused)
        except gateway.GatewayError as error:  # Stripe's answer, not a refusal of ours: no field
            form.add_error(None, error.message)
        else:
            default = " It is your default card." if card.is_default else ""
            messages.success(
                request, f"{card.label} saved.{default}" if created else f"{card.label} was already saved."
            )
            return redirect("payment_methods", account.public_id)
    context = {"access": access, "account": account, "form": form, "key": uuid.uuid4(), **_stripe_context()}
    return render(request, "billing/payment_method_add.html", context, status=422 if form.errors else 200)


@require_POST
@login_required
def payment_method_setup(request: HttpRequest, account_id: UUID) -> HttpResponse:
    """The browser asks for a SetupIntent to confirm the typed card with; answers its client secret."""
    access = account_access(request, account_id, MANAGE_BILLING)
    reason = payment_selectors.refusal(access.account)
    form = CardSetupForm(request.POST)
    if reason or not form.is_valid():
        message = reason or form.errors["key"][0]
        return JsonResponse({"error": message}, status=422)
    try:
        setup = payments.start_card_setup(account=access.account, key=form.cleaned_data["key"])
    except gateway.GatewayError as error:
        return JsonResponse({"error": error.message}, status=502)
    return JsonResponse({"client_secret": setup.client_secret})


@require_POST
@login_required
def payment_method_default(request: HttpRequest, account_id: UUID, card_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_BILLING)
    card = get_object_or_404(payment_selectors.cards_of(access.account), public_id=card_id)
    payments.make_default(account=access.account, card=card, actor=Actor.from_request(request))
    messages.success(request, f"{card.label} is now your default card.")
    return redirect("payment_methods", access.account.public_id)


@login_required
@require_http_methods(GET_AND_POST)
def payment_method_remove(request: HttpRequest, account_id: UUID, card_id: UUID) -> HttpResponse:
    """GET (or a POST without `confirm`): the confirmation step. POST with `confirm`: removed."""
    access = account_access(request, account_id, MANAGE_BILLING)
    account = access.account
    card = get_object_or_404(payment_selectors.cards_of(account), public_id=card_id)
    if request.method == "GET" or request.POST.get("confirm") != "1":
        auto = payment_selectors.auto_recharge_of(account)
        context = {
            "access": access,
            "account": account,
            "card": card,
            "others": payment_selectors.cards_of(account).exclude(pk=card.pk).exists(),
            "auto_recharge": auto,
        }
        return render(request, "billing/payment_method_remove.html", context)
    try:
        new_default = payments.remove_card(account=account, card=card, actor=Actor.from_request(request))
    except gateway.GatewayError as error:
        messages.error(request, f"{card.label} was not removed: {error.message}")
        return redirect("payment_methods", account.public_id)
    promoted = f" {new_default.label} is now your default card." if card.is_default and new_default else ""
    messages.success(request, f"{card.label} removed.{promoted}")
    return redirect("payment_methods", account.public_id)


# --- Top-ups ----------------------------------------------------------------------------------------------


@login_required
@require_http_methods(GET_AND_POST)
def top_up(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_BILLING)
    account = access.account
    if payment_selectors.refusal(account):
        return _rollup(request, access, "Make a payment")
    cards = list(payment_selectors.cards_of(account))
    if request.method == "GET":
        default = next((c for c in cards if c.is_default), cards[0] if cards else None)
        form = TopUpForm(initial={"key": uuid.uuid4(), "card": default and str(default.public_id)}, cards=cards)
        return _top_up_page(request, access, form, cards)
    form = TopUpForm(request.POST, cards=cards)
    if not form.is_valid():
        return _top_up_page(request, access, form, cards, status=422)
    data = form.cleaned_data
    try:
        payment = payments.top_up(
            account=account,
            amount=data["amount"],
            card=data["card"],
            key=str(data["key"]),
            actor=Actor.from_request(request),
        )
    except payments.PaymentRefused as refused:
        # On the form shown again with its new key: errors added to `form` would not be on it.
        retry = _with_new_key(request.POST, cards)
        apply_refusal(form=retry, refusal=refused)
        return _top_up_page(request, access, retry, cards, status=422)
    except gateway.GatewayError as error:
        retry = _with_new_key(request.POST, cards)
        retry.add_error(None, error.message)
        return _top_up_page(request, access, retry, cards, status=422)
    if payment.status == Payment.Status.FAILED:
        failed = _with_new_key(request.POST, cards)
        failed.add_error(
            None, f"{payment.card_label}: {payment.failure_message} Nothing was charged; try another card."
        )
        return _top_up_page(request, access, failed, cards, status=422)
    if payment.status == Payment.Status.SUCCEEDED:
        messages.success(request, f"{format_money(payment.amount, payment.currency)} added to your balance.")
    return redirect("payment_detail", account.public_id, payment.public_id)


def _with_new_key(posted: QueryDict, cards: list[PaymentMethod]) -> TopUpForm:
    """The posted form again, typed values kept, with a new key: the next submit is a new payment."""
    data = posted.copy()
    data["key"] = str(uuid.uuid4())
    fresh = TopUpForm(data, cards=cards)
    fresh.is_valid()
    return fresh


def _top_up_page(
    request: HttpRequest, access: AccountAccess, form: TopUpForm, cards: list[PaymentMethod], status: int = 200
) -> HttpResponse:
    context = {
        "access": access,
        "account": access.account,
        "form": form,
        "cards": cards,
        "max_top_up": format_money(settings.BILLING_MAX_TOP_UP),
        "balance": payment_selectors.balance_facts(access.account),
    }
    return render(request, "billing/payment_new.html", context, status=status)


@login_required
@require_GET
def payment_detail(request: HttpRequest, account_id: UUID, payment_id: UUID) -> HttpResponse:
    """One payment, and the return to the portal after paying: a pending payment is checked with
    Stripe and settled here (a GET, as Stripe's return is a redirect; settling is idempotent and
    only applies what Stripe already did). A card that needs authentication gets its button here."""
    access = account_access(request, account_id, VIEW_BILLING)
    account = access.account
    payment = get_object_or_404(payment_selectors.payments_of(account), public_id=payment_id)
    intent, unreachable = None, None
    try:
        payment, intent = payments.refresh(payment)
    except gateway.GatewayError as error:
        unreachable = error.message
    needs_action = (
        payment.status == Payment.Status.PENDING and intent is not None and intent.status == "requires_action"
    )
    context = {
        "access": access,
        "account": account,
        "payment": payment,
        "unreachable": unreachable,
        "client_secret": intent.client_secret if needs_action and intent is not None else None,
        "balance": payment_selectors.balance_facts(account),
        **_stripe_context(),
    }
    return render(request, "billing/payment_detail.html", context)


@login_required
@require_GET
def payment_history(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, VIEW_BILLING)
    account = access.account
    if payment_selectors.refusal(account):
        return _rollup(request, access, "Payment history")
    page = Paginator(payment_selectors.payments_of(account), PAYMENTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"access": access, "account": account, "page": page}
    return render(request, "billing/payment_history.html", context)


# --- Auto-recharge ----------------------------------------------------------------------------------------


@login_required
@require_http_methods(GET_AND_POST)
def auto_recharge(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_BILLING)
    account = access.account
    if payment_selectors.refusal(account):
        return _rollup(request, access, "Auto-recharge")
    row = payment_selectors.auto_recharge_of(account)
    if request.method == "GET":
        form = AutoRechargeForm(initial={"enabled": row.enabled, "threshold": row.threshold, "amount": row.amount})
        return _auto_recharge_page(request, access, form)
    form = AutoRechargeForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            payments.update_auto_recharge(account=account, **data, actor=Actor.from_request(request))
        except payments.PaymentRefused as refused:
            apply_refusal(form=form, refusal=refused)
        else:
            state = "on" if data["enabled"] else "off"
            messages.success(request, f"Auto-recharge is {state}.")
            return redirect("auto_recharge", account.public_id)
    return _auto_recharge_page(request, access, form, status=422)


def _auto_recharge_page(
    request: HttpRequest, access: AccountAccess, form: AutoRechargeForm, status: int = 200
) -> HttpResponse:
    account = access.account
    context = {
        "access": access,
        "account": account,
        "form": form,
        "default_card": payment_selectors.default_card(account),
        "last_attempt": payment_selectors.last_auto_recharge(account),
        "attempts_today": payment_selectors.auto_recharge_attempts(account),
        "max_per_day": settings.BILLING_AUTO_RECHARGE_MAX_PER_DAY,
        "max_top_up": format_money(settings.BILLING_MAX_TOP_UP),
    }
    return render(request, "billing/auto_recharge.html", context, status=status)


# --- Stripe's webhook ------------------------------------------------------------------------------------


@csrf_exempt  # Stripe cannot send our CSRF token; the signature is the credential
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Payment outcomes from Stripe, signed with STRIPE_WEBHOOK_SECRET. A bad signature is a 400
    and nothing is written; a good event settles its payment through the same function as the
    browser's return, so either may come first, and any number of times. A signed event that is not
    what Stripe sends is a 400 too; a well-formed event of a type we do not act on is a 200."""
    try:
        event = gateway.verified_event(request.body, request.headers.get("Stripe-Signature"))
        payments.handle_event(event.to_dict())
    except gateway.BadSignature:
        return HttpResponseBadRequest("Bad signature.", content_type="text/plain")
    except gateway.MalformedEvent as error:
        return HttpResponseBadRequest(f"Malformed event: {error}", content_type="text/plain")
    return HttpResponse("OK", content_type="text/plain")
