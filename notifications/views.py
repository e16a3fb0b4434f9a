"""Settings -> Notifications: which alerts reach the person, by e-mail, in this account; and the
account's low-balance threshold for those who move its money. Thin: access, one service, redirect."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import AccountAccess, account_access
from accounts.actor import Actor
from accounts.forms import apply_refusal
from accounts.models import User
from accounts.permissions import MANAGE_BILLING, VIEW_ACCOUNT
from billing.ledger.selectors import current_balance
from billing.money import format_money
from notifications import selectors, services
from notifications.forms import ChoicesForm, ThresholdForm, threshold_initial


def _acting(request: HttpRequest) -> bool:
    return getattr(request, "acting", None) is not None


def _person(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required
    return user


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, VIEW_ACCOUNT)
    user = _person(request)
    choices = services.choices_of(user=user, membership=access.membership)
    form = ChoicesForm(request.POST or None, choices=choices, manager=access.account.is_manager)
    if request.method == "POST":
        if _acting(request):
            raise PermissionDenied(
                "These alert choices are the account owner's own; return to your account to set yours."
            )
        if form.is_valid():
            email, managed = form.chosen()
            services.set_choices(
                user=user, membership=access.membership, email=email, managed_email=managed,
                actor=Actor.from_request(request),
            )  # fmt: skip
            messages.success(request, "Your alert e-mails are saved.")
            return redirect("notification_settings", access.account.public_id)
        return _page(request, access, form=form, status=422)
    return _page(request, access, form=form)


@login_required
@require_POST
def low_balance_threshold(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_BILLING)
    if services.threshold_refusal(access.account) is not None:
        raise Http404("A roll-up account has no balance of its own.")
    threshold_form = ThresholdForm(request.POST)
    if threshold_form.is_valid():
        data = threshold_form.cleaned_data
        try:
            row = services.set_low_balance_threshold(
                account=access.account, amount=data["threshold_amount"], enabled=data["enabled"],
                actor=Actor.from_request(request),
            )  # fmt: skip
        except services.NotificationsError as refusal:
            apply_refusal(form=threshold_form, refusal=refusal)
        else:
            state = f"on, below {format_money(row.amount)}" if row.enabled else "off"
            messages.success(request, f"The low-balance alert is {state}.")
            return redirect("notification_settings", access.account.public_id)
    choices = services.choices_of(user=_person(request), membership=access.membership)
    form = ChoicesForm(choices=choices, manager=access.account.is_manager)
    return _page(request, access, form=form, threshold_form=threshold_form, status=422)


def _page(
    request: HttpRequest,
    access: AccountAccess,
    *,
    form: ChoicesForm,
    threshold_form: ThresholdForm | None = None,
    status: int = 200,
) -> HttpResponse:
    account = access.account
    sets_threshold = access.can.manage_billing and services.threshold_refusal(account) is None
    threshold = selectors.threshold_of(account) if account.has_own_balance else None
    if sets_threshold and threshold_form is None:
        threshold_form = ThresholdForm(
            initial=threshold_initial(threshold.amount if threshold else None, bool(threshold and threshold.enabled))
        )
    context = {
        "access": access,
        "account": account,
        "form": form,
        "rows": form.rows(),
        "acting": getattr(request, "acting", None),
        "threshold": threshold,
        "threshold_text": format_money(threshold.amount) if threshold else "",
        "threshold_form": threshold_form if sets_threshold else None,
        "balance": format_money(current_balance(account).amount)
        if account.has_own_balance and access.can.view_billing
        else None,
    }
    return render(request, "notifications/settings.html", context, status=status)
