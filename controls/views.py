"""Pages of controls: a manager's limits page and one managed account's limits and credit limit; a
separately billed account's own limits. Thin: the access helpers, one service call, a redirect."""

from __future__ import annotations

from datetime import date
from typing import cast
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import managed_hub
from accounts.access import AccountAccess, account_access, managed_account_access
from accounts.acting import SignedInRequest
from accounts.actor import Actor
from accounts.forms import apply_refusal
from accounts.models import Account
from accounts.permissions import MANAGE_ACCOUNT, MANAGE_MANAGED_ACCOUNTS
from billing.ledger.selectors import current_balance
from billing.money import format_money
from controls import selectors, services
from controls.forms import CreditLimitForm, SpendLimitForm
from controls.models import SpendLimit
from controls.tables import LimitsTable, service_badge
from portal.pagination import paginate_table

GET_AND_POST = ["GET", "POST"]
ACCOUNTS_PER_PAGE = 50


@login_required
@require_GET
def limits_overview(request: HttpRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_MANAGED_ACCOUNTS)
    today = timezone.now().date()
    table = LimitsTable(selectors.limits_overview(access.account, today=today), today=today)
    paginate_table(request, table, per_page=ACCOUNTS_PER_PAGE)
    return render(request, "controls/limits.html", {"access": access, "account": access.account, "table": table})


@login_required
@require_http_methods(GET_AND_POST)
def managed_limit(request: HttpRequest, account_id: UUID, managed_id: UUID) -> HttpResponse:
    """GET: the account's limits and the forms. POST: set the manager's limit on one product (or all)."""
    access, managed = managed_account_access(request, account_id, managed_id)
    form = SpendLimitForm(request.POST or None)
    if request.method == "POST" and _set_limit(request, form, managed, SpendLimit.SetBy.MANAGER):
        return redirect("controls_managed_limit", access.account.public_id, managed.public_id)
    return _managed_page(request, access, managed, form=form, status=422 if request.method == "POST" else 200)


@login_required
@require_POST
def managed_credit_limit(request: HttpRequest, account_id: UUID, managed_id: UUID) -> HttpResponse:
    access, managed = managed_account_access(request, account_id, managed_id)
    credit_form = CreditLimitForm(request.POST)
    if credit_form.is_valid():
        try:
            balance = services.set_managed_credit_limit(
                manager=access.account,
                managed=managed,
                limit=credit_form.cleaned_data["credit_limit"],
                actor=Actor.from_request(request),
            )
        except services.ControlsError as refusal:
            apply_refusal(form=credit_form, refusal=refusal)
        else:
            messages.success(request, f"{managed.name}'s credit limit is {format_money(balance.credit_limit)}.")
            return redirect("controls_managed_limit", access.account.public_id, managed.public_id)
    return _managed_page(request, access, managed, credit_form=credit_form, status=422)


@login_required
@require_POST
def managed_limit_remove(request: HttpRequest, account_id: UUID, managed_id: UUID, limit_id: UUID) -> HttpResponse:
    """The manager removes its own limit on the account, or the account's own limit once nobody else
    can: a roll-up account has no limits page of its own, and its own limits outlive the switch."""
    access, managed = managed_account_access(request, account_id, managed_id)
    removable = _removable_by_manager(managed)
    limit = get_object_or_404(SpendLimit, account=managed, set_by__in=removable, public_id=limit_id)
    services.remove_spend_limit(limit=limit, actor=Actor.from_request(request))
    whose = f"{managed.name}'s own limit" if limit.set_by == SpendLimit.SetBy.OWNER else "The limit"
    messages.success(request, f"{whose} on {limit.scope} is removed.")
    return redirect("controls_managed_limit", access.account.public_id, managed.public_id)


@login_required
@require_http_methods(GET_AND_POST)
def own_limits(request: HttpRequest, account_id: UUID) -> HttpResponse:
    """A separately billed managed account's own people set their own limits, never above the manager's."""
    access = _own_access(request, account_id)
    form = SpendLimitForm(request.POST or None)
    if request.method == "POST" and _set_limit(request, form, access.account, SpendLimit.SetBy.OWNER):
        return redirect("controls_own_limits", access.account.public_id)
    return _own_page(request, access, form, status=422 if request.method == "POST" else 200)


@login_required
@require_POST
def own_limit_remove(request: HttpRequest, account_id: UUID, limit_id: UUID) -> HttpResponse:
    access = _own_access(request, account_id)
    limit = get_object_or_404(SpendLimit, account=access.account, set_by=SpendLimit.SetBy.OWNER, public_id=limit_id)
    services.remove_spend_limit(limit=limit, actor=Actor.from_request(request))
    messages.success(request, f"Your limit on {limit.scope} is removed.")
    return redirect("controls_own_limits", access.account.public_id)


def _removable_by_manager(managed: Account) -> list[str]:
    """Whose limits the manager may remove on `managed`: its own; and the account's own while it is
    billed by roll-up (its people have no limits page then: `_own_access`)."""
    if managed.has_own_balance:
        return [SpendLimit.SetBy.MANAGER]
    return [SpendLimit.SetBy.MANAGER, SpendLimit.SetBy.OWNER]


def _own_access(request: HttpRequest, account_id: UUID) -> AccountAccess:
    access = account_access(request, account_id, MANAGE_ACCOUNT)
    if not (access.account.is_managed and access.account.has_own_balance):
        raise Http404("This account has no such page.")  # roll-up and other accounts: the manager's to set
    return access


def _set_limit(request: HttpRequest, form: SpendLimitForm, account: Account, set_by: str) -> bool:
    if not form.is_valid():
        return False
    data = form.cleaned_data
    try:
        limit = services.set_spend_limit(
            account=account,
            set_by=set_by,
            product=data["product"],
            monthly_amount=data["monthly_amount"],
            daily_amount=data["daily_amount"],
            action=data["action"],
            actor=Actor.from_request(request),
        )
    except services.ControlsError as refusal:
        apply_refusal(form=form, refusal=refusal)
        return False
    messages.success(request, f"Saved: {limit.rule}, {limit.get_action_display().lower()}.")
    return True


def _managed_page(
    request: HttpRequest,
    access: AccountAccess,
    managed: Account,
    *,
    form: SpendLimitForm | None = None,
    credit_form: CreditLimitForm | None = None,
    status: int = 200,
) -> HttpResponse:
    today = timezone.now().date()
    managed.refresh_from_db(fields=["service_blocked_reason", "service_blocked_until"])
    balance = current_balance(managed) if managed.has_own_balance else None
    context = {
        "access": access,
        "account": access.account,
        "managed": managed,
        "service": service_badge(managed),
        "limits": _limit_rows(selectors.limits_of(managed, today=today), today, pricing=True),  # the manager's view
        "own_removable": SpendLimit.SetBy.OWNER in _removable_by_manager(managed),
        "form": form or SpendLimitForm(),
        "credit_form": credit_form
        or (CreditLimitForm(initial={"credit_limit": balance.credit_limit}) if balance else None),
        "balance": balance
        and {"amount": format_money(balance.amount), "available": format_money(balance.available_credit)},
        # the managed account's hub header and tab bar, this page being its Spend limits tab
        "hub": managed_hub.hub_context(cast(SignedInRequest, request), access, managed, managed_hub.LIMITS),
    }
    return render(request, "controls/managed_limit.html", context, status=status)


def _own_page(request: HttpRequest, access: AccountAccess, form: SpendLimitForm, *, status: int) -> HttpResponse:
    today = timezone.now().date()
    account = access.account
    context = {
        "access": access,
        "account": account,
        "service": service_badge(account),
        "limits": _limit_rows(selectors.limits_of(account, today=today), today, pricing=access.can.see_pricing),
        "form": form,
    }
    return render(request, "controls/own_limits.html", context, status=status)


def _limit_rows(limits: list[SpendLimit], today: date, *, pricing: bool) -> list[dict[str, object]]:
    """Each limit with its state; its spend (a priced amount) only where the viewer sees pricing: a
    hidden-pricing account sees its own limit and whether it is near or reached, never its spend."""
    rows = []
    for limit in limits:
        monthly, daily = selectors.spend_cents(limit) if pricing else (None, None)
        rows.append(
            {
                "limit": limit,
                "state": selectors.limit_state(limit, today=today),
                "monthly_used": monthly,
                "daily_used": daily,
                "own": limit.set_by == SpendLimit.SetBy.OWNER,
            }
        )
    return rows
