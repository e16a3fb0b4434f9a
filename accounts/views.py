from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Page, Paginator
from django.db.models.query import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from hijack.views import AcquireUserView

from accounts import acting, audit, audit_text, managed_hub, onboarding, selectors, services
from accounts.access import AccountAccess, account_access, managed_account_access
from accounts.acting import ActingRequest, SignedInRequest
from accounts.actor import Actor
from accounts.audit_table import AuditLogTable
from accounts.forms import (
    AccountSettingsForm,
    ApiKeyForm,
    AuditFilterForm,
    InviteeSignupForm,
    InviteForm,
    ManagedAccountCreateForm,
    ManagedAccountSettingsForm,
    RoleForm,
    apply_refusal,
)
from accounts.models import (
    OTHER_BILLING_MODE,
    Account,
    ApiKey,
    Invitation,
    Membership,
    OnboardingUpload,
    User,
    month_of,
)
from accounts.permissions import (
    MANAGE_ACCOUNT,
    MANAGE_MANAGED_ACCOUNTS,
    can_assign_role,
    log_in_as_denial,
    log_in_as_target,
)
from accounts.tables import ManagedAccountFilter, ManagedAccountTable
from portal.pagination import paginate_table

GET_AND_POST = ["GET", "POST"]


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


# --- Home and account pages -----------------------------------------------------------------------


@login_required
@require_GET
def home(request: SignedInRequest) -> HttpResponse:
    if request.acting is not None:
        return redirect("dashboard", request.acting.managed_account.public_id)
    memberships = [m for m in selectors.accounts_for_user(request.user) if m.account.is_usable]
    if not memberships and request.user.is_staff:
        return redirect("admin:index")  # platform staff work in the staff site (it asks for MFA)
    if not memberships:
        return render(request, "accounts/no_account.html")
    return redirect("dashboard", memberships[0].account.public_id)


# The overview ("dashboard", a/<id>/) reads balances, usage and invoices from billing, which
# accounts never imports: it is reporting.dashboard_views.overview.


@login_required
@require_http_methods(GET_AND_POST)
def account_settings(request: SignedInRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_ACCOUNT)
    account = access.account
    initial = {"name": account.name, "admins_can_log_in_as": account.admins_can_log_in_as}
    form = AccountSettingsForm(
        request.POST or None, initial=initial, account=account, can_grant_log_in_as=access.can.grant_log_in_as
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.update_account_settings(
                account=account,
                actor=Actor.from_request(request),
                name=form.cleaned_data["name"],
                # Absent from the form of those who may not change it: None leaves it as it is.
                admins_can_log_in_as=form.cleaned_data.get("admins_can_log_in_as"),
            )
        except services.ServiceError as error:
            apply_refusal(form=form, refusal=error)
        else:
            messages.success(request, "Settings saved.")
            return redirect("account_settings", account.public_id)
    context = {"access": access, "account": account, "form": form}
    return render(request, "accounts/account_settings.html", context, status=422 if form.errors else 200)


# --- Members and invitations -------------------------------------------------------------------------


def _members_page(
    request: SignedInRequest, access: AccountAccess, invite_form: InviteForm, status: int = 200
) -> HttpResponse:
    context = {
        "access": access,
        "account": access.account,
        "members": selectors.members_of(access.account),
        "invitations": selectors.pending_invitations(access.account),
        "invite_form": invite_form,
    }
    return render(request, "accounts/members.html", context, status=status)


@login_required
@require_GET
def members(request: SignedInRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_ACCOUNT)
    return _members_page(request, access, InviteForm())


@require_POST
@login_required
def member_invite(request: SignedInRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_ACCOUNT)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation = services.invite_member(
                account=access.account, actor=Actor.from_request(request), **form.cleaned_data
            )
        except services.ServiceError as error:
            apply_refusal(form=form, refusal=error)
        else:
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect("members", access.account.public_id)
    return _members_page(request, access, form, status=422)


def _membership(access: AccountAccess, membership_id: int) -> Membership:
    return get_object_or_404(Membership.objects.select_related("user"), pk=membership_id, account=access.account)


@login_required
@require_http_methods(GET_AND_POST)
def member_role(request: SignedInRequest, account_id: UUID, membership_id: int) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_ACCOUNT)
    membership = _membership(access, membership_id)
    form = RoleForm(request.POST or None, initial={"role": membership.role})
    if request.method == "POST" and form.is_valid():
        try:
            services.change_member_role(
                membership=membership, role=form.cleaned_data["role"], actor=Actor.from_request(request)
            )
        except services.ServiceError as error:
            apply_refusal(form=form, refusal=error)
        else:
            messages.success(request, f"{membership.user.email} is now {form.cleaned_data['role']}.")
            return redirect("members", access.account.public_id)
    context = {"access": access, "account": access.account, "membership": membership, "form": form}
    return render(request, "accounts/member_role.html", context, status=422 if form.errors else 200)


@login_required
@require_http_methods(GET_AND_POST)
def member_remove(request: SignedInRequest, account_id: UUID, membership_id: int) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_ACCOUNT)
    membership = _membership(access, membership_id)
    if request.method == "POST":
        try:
            services.remove_member(membership=membership, actor=Actor.from_request(request))
        except services.ServiceError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{membership.user.email} no longer has access to {access.account.name}.")
        return redirect("members", access.account.public_id)
    allowed = can_assign_role(actor_role=access.role, role=membership.role) or request.acting is not None
    context = {"access": access, "account": access.account, "membership": membership, "allowed": allowed}
    return render(request, "accounts/member_remove.html", context)


@require_POST
@login_required
def invitation_revoke(request: SignedInRequest, account_id: UUID, invitation_id: int) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_ACCOUNT)
    invitation = get_object_or_404(Invitation, pk=invitation_id, account=access.account)
    try:
        services.revoke_invitation(invitation=invitation, actor=Actor.from_request(request))
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Invitation to {invitation.email} revoked.")
    return redirect("members", access.account.public_id)


@require_http_methods(GET_AND_POST)
def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    invitation = get_object_or_404(Invitation.objects.select_related("account", "invited_by"), token=token)
    if not request.user.is_authenticated:
        return _invitee_without_session(request, invitation)
    if request.method == "POST":
        try:
            membership = services.accept_invitation(invitation=invitation, user=request.user)
        except services.ServiceError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"You joined {membership.account.name} as {membership.get_role_display()}.")
            return redirect("dashboard", membership.account.public_id)
    return render(request, "accounts/invitation.html", {"invitation": invitation})


def _invitee_without_session(request: HttpRequest, invitation: Invitation) -> HttpResponse:
    """Someone who opened the e-mailed link, not signed in: with a user already, it signs in to
    accept; without one, it chooses a password here and joins at once, creating no account of its own."""
    has_user = services.email_in_use(invitation.email)
    joinable = invitation.is_usable and not has_user
    form = InviteeSignupForm(request.POST if request.method == "POST" and joinable else None)
    if form.is_bound and form.is_valid():
        try:
            membership = services.join_by_invitation(invitation=invitation, password=form.cleaned_data["password1"])
        except services.ServiceError as error:
            apply_refusal(form=form, refusal=error)
        else:
            login(request, membership.user, backend="allauth.account.auth_backends.AuthenticationBackend")
            messages.success(
                request, f"Welcome: you joined {membership.account.name} as {membership.get_role_display()}."
            )
            return redirect("dashboard", membership.account.public_id)
    context = {"invitation": invitation, "form": form, "has_user": has_user}
    return render(request, "accounts/invitation.html", context, status=422 if form.errors else 200)


# --- Audit log ---------------------------------------------------------------------------------------------


@login_required
@require_GET
def audit_log(request: SignedInRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_ACCOUNT)
    form = AuditFilterForm(request.GET or None, change_types=audit_text.CHANGE_TYPE_CHOICES)
    events = audit.events_for_account(access.account)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        if data["start"]:
            events = events.filter(created_at__gte=datetime.combine(data["start"], time.min, tzinfo=UTC))
        if data["end"]:
            end = datetime.combine(data["end"] + timedelta(days=1), time.min, tzinfo=UTC)
            events = events.filter(created_at__lt=end)
        if data["change_type"]:
            events = events.filter(change_type=data["change_type"])
    table = AuditLogTable(events, reader=audit_text.Reader(log=access.account, pages=access.account))
    paginate_table(request, table, per_page=50)
    context = {"access": access, "account": access.account, "form": form, "table": table}
    # A filter it cannot apply (a day out of range, an end before the start) is a 422 showing why.
    return render(request, "accounts/audit_log.html", context, status=422 if form.errors else 200)


# --- Managed accounts --------------------------------------------------------------------------------------


@login_required
@require_GET
def managed_list(request: SignedInRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_MANAGED_ACCOUNTS)
    manager = access.account
    accounts = selectors.with_balances(selectors.managed_accounts_for(manager).select_related("manager"))
    filterset = ManagedAccountFilter(request.GET or None, queryset=accounts)
    table = ManagedAccountTable(filterset.qs)
    paginate_table(request, table, per_page=25)
    if access.can.log_in_as:  # the rule per row, set-based: a constant number of queries per page
        table.log_in_as = managed_hub.log_in_as_denials(access, (row.record for row in table.page.object_list))
    context = {
        "access": access,
        "account": manager,
        "filter": filterset,
        "table": table,
        "in_use": services.active_managed_count(manager),
    }
    return render(request, "accounts/managed_list.html", context)


def _managed_balance(managed: Account) -> dict[str, Decimal | str | None] | None:
    """A separately billed managed account's balance (see selectors.with_balances); None for roll-up."""
    if not managed.has_own_balance:
        return None
    row = (
        selectors.with_balances(Account.objects.filter(pk=managed.pk))
        .values("balance_amount", "balance_currency")
        .get()
    )
    return {"amount": row["balance_amount"], "currency": row["balance_currency"]}


@login_required
@require_http_methods(GET_AND_POST)
def managed_create(request: SignedInRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_MANAGED_ACCOUNTS)
    form = ManagedAccountCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        same_named = selectors.same_named_managed_accounts(access.account, data["name"])
        if same_named and not data["confirm_same_name"]:
            form.offer_same_name(same_named)
            context = {"access": access, "account": access.account, "form": form}
            return render(request, "accounts/managed_create.html", context, status=422)
        try:
            managed = services.create_managed_account(
                manager=access.account,
                name=data["name"],
                owner_email=data["email"],
                owner_password=data["password"] or None,
                billing_mode=data["billing_mode"],
                allow_custom_pricing=data["allow_custom_pricing"],
                pricing_hidden=data["pricing_hidden"],
                actor=Actor.from_request(request),
            )
        except services.ServiceError as error:
            apply_refusal(form=form, refusal=error)
        else:
            messages.success(request, f"Managed account {managed.name} created.")
            return redirect("managed_detail", access.account.public_id, managed.public_id)
    context = {"access": access, "account": access.account, "form": form}
    return render(request, "accounts/managed_create.html", context, status=422 if form.errors else 200)


# --- Bulk onboarding (accounts.onboarding): upload, report, confirm, progress ------------------------------


def _onboarding_upload(
    request: SignedInRequest, account_id: UUID, upload_id: UUID
) -> tuple[AccountAccess, OnboardingUpload]:
    """The manager's upload; another account's is not found."""
    access = account_access(request, account_id, MANAGE_MANAGED_ACCOUNTS)
    uploads = OnboardingUpload.objects.select_related("manager")
    upload = get_object_or_404(uploads, manager=access.account, public_id=upload_id)
    return access, upload


@login_required
@require_http_methods(GET_AND_POST)
def managed_onboarding(request: SignedInRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_MANAGED_ACCOUNTS)
    error = None
    if request.method == "POST":
        file = request.FILES.get("file")
        if file is None or not file.size:
            error = "Choose a CSV file to upload." if file is None else "The file is empty."
        else:
            try:
                actor = Actor.from_request(request)
                upload = onboarding.check_file(manager=access.account, upload=file, uploaded_by=actor)
            except onboarding.OnboardingRefused as refused:
                error = refused.message
            else:
                return redirect("managed_onboarding_report", access.account.public_id, upload.public_id)
    context = {
        "access": access,
        "account": access.account,
        "error": error,
        "max_rows": onboarding.MAX_ROWS,
        "room": onboarding.room_left(access.account),
    }
    return render(request, "accounts/onboarding/upload.html", context, status=422 if error else 200)


@login_required
@require_GET
def managed_onboarding_report(request: SignedInRequest, account_id: UUID, upload_id: UUID) -> HttpResponse:
    access, upload = _onboarding_upload(request, account_id, upload_id)
    context = {
        "access": access,
        "account": access.account,
        "upload": upload,
        "invalid": len(upload.rows) - upload.total,
        "refusal": onboarding.start_refusal(upload),
    }
    return render(request, "accounts/onboarding/report.html", context)


@require_POST
@login_required
def managed_onboarding_start(request: SignedInRequest, account_id: UUID, upload_id: UUID) -> HttpResponse:
    access, upload = _onboarding_upload(request, account_id, upload_id)
    try:
        onboarding.start_upload(upload=upload, actor=Actor.from_request(request))
    except onboarding.OnboardingRefused as refused:
        messages.error(request, refused.message)
        if upload.status == OnboardingUpload.Status.CHECKED:
            return redirect("managed_onboarding_report", access.account.public_id, upload.public_id)
    return redirect("managed_onboarding_progress", access.account.public_id, upload.public_id)


@login_required
@require_GET
def managed_onboarding_progress(request: SignedInRequest, account_id: UUID, upload_id: UUID) -> HttpResponse:
    access, upload = _onboarding_upload(request, account_id, upload_id)
    context = {"access": access, "account": access.account, "upload": upload}
    response = render(request, "accounts/onboarding/progress.html", context)
    add_never_cache_headers(response)
    return response


@login_required
@require_GET
def managed_onboarding_status(request: SignedInRequest, account_id: UUID, upload_id: UUID) -> JsonResponse:
    _, upload = _onboarding_upload(request, account_id, upload_id)
    response = JsonResponse(
        {"status": upload.status, "done": upload.done, "failed": upload.failed, "total": upload.total}
    )
    add_never_cache_headers(response)
    return response


# A managed account's page is its hub (accounts.managed_hub): these tabs, plus Usage (reporting),
# Invoices and Balance (billing), Spend limits (controls) and Settings below.


@login_required
@require_GET
def managed_detail(request: SignedInRequest, account_id: UUID, managed_id: UUID) -> HttpResponse:
    """The Overview tab: facts, status, billing mode, owner and recent activity."""
    access, managed = managed_account_access(request, account_id, managed_id)
    context = managed_hub.hub_context(request, access, managed, managed_hub.OVERVIEW) | {
        "owner": log_in_as_target(managed),
        "events": audit.events_for_account(managed)[:10],
        "status_actions": _status_actions(managed),
        "balance": _managed_balance(managed),
    }
    return render(request, "accounts/managed_detail.html", context)


def _managed_api_keys_page(
    request: SignedInRequest, access: AccountAccess, managed: Account, api_key_form: ApiKeyForm, status: int = 200
) -> HttpResponse:
    context = managed_hub.hub_context(request, access, managed, managed_hub.API_KEYS) | {
        "api_keys": _api_keys_page(request, managed),
        "api_key_form": api_key_form,
    }
    return render(request, "accounts/managed_hub/api_keys.html", context, status=status)


@login_required
@require_GET
def managed_api_keys(request: SignedInRequest, account_id: UUID, managed_id: UUID) -> HttpResponse:
    access, managed = managed_account_access(request, account_id, managed_id)
    return _managed_api_keys_page(request, access, managed, ApiKeyForm())


@login_required
@require_GET
def managed_members(request: SignedInRequest, account_id: UUID, managed_id: UUID) -> HttpResponse:
    """Read-only: a managed account's people manage its members themselves (or the manager, logged in
    as it); no rule lets the manager's own pages change them."""
    access, managed = managed_account_access(request, account_id, managed_id)
    context = managed_hub.hub_context(request, access, managed, managed_hub.MEMBERS) | {
        "members": selectors.members_of(managed),
        "invitations": selectors.pending_invitations(managed),
    }
    return render(request, "accounts/managed_hub/members.html", context)


@login_required
@require_GET
def managed_audit(request: SignedInRequest, account_id: UUID, managed_id: UUID) -> HttpResponse:
    """The managed account's own log (audit.events_for_account), in words, with the manager's links."""
    access, managed = managed_account_access(request, account_id, managed_id)
    reader = audit_text.Reader(log=managed, pages=access.account)
    table = AuditLogTable(audit.events_for_account(managed), reader=reader)
    paginate_table(request, table, per_page=50)
    context = managed_hub.hub_context(request, access, managed, managed_hub.AUDIT) | {"table": table}
    return render(request, "accounts/managed_hub/audit.html", context)


def _status_actions(managed: Account) -> list[str]:
    return [action for action, (_, allowed, _) in services.STATUS_ACTIONS.items() if managed.status in allowed]


@login_required
@require_http_methods(GET_AND_POST)
def managed_settings(request: SignedInRequest, account_id: UUID, managed_id: UUID) -> HttpResponse:
    access, managed = managed_account_access(request, account_id, managed_id)
    settings_url = reverse("managed_settings", args=[access.account.public_id, managed.public_id])
    billing_action = request.POST.get("billing_action") if request.method == "POST" else None
    if billing_action is not None:
        _change_billing_mode(request, managed, billing_action)
        return HttpResponseRedirect(settings_url)
    initial = {f: getattr(managed, f) for f in services.MANAGED_SETTINGS_FIELDS}
    form = ManagedAccountSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_managed_account(managed=managed, actor=Actor.from_request(request), **form.cleaned_data)
        except services.ServiceError as error:
            apply_refusal(form=form, refusal=error)
        else:
            messages.success(request, "Settings saved.")
            return redirect("managed_detail", access.account.public_id, managed.public_id)
    context = managed_hub.hub_context(request, access, managed, managed_hub.SETTINGS) | {
        "form": form,
        "billing": _billing_mode_context(managed),
    }
    return render(request, "accounts/managed_settings.html", context, status=422 if form.errors else 200)


def _change_billing_mode(request: SignedInRequest, managed: Account, action: str) -> None:
    """The settings page's billing-mode buttons: schedule the switch to the other mode, or cancel
    the pending one; the outcome (or the refusal) as a message."""
    actor = Actor.from_request(request)
    try:
        if action == "cancel":
            services.cancel_billing_mode_change(managed=managed, actor=actor)
            messages.success(request, f"The billing-mode change of {managed.name} is cancelled.")
        elif action == "schedule":
            other = OTHER_BILLING_MODE[managed.billing_mode_in()]
            managed = services.schedule_billing_mode_change(managed=managed, mode=other, actor=actor)
            messages.success(
                request, f"{managed.name} changes to {Account.BillingMode(other).label.lower()} billing on "
                f"{managed.billing_mode_from}.",
            )  # fmt: skip
        else:
            messages.error(request, "Unknown billing-mode action.")
    except services.ServiceError as error:
        messages.error(request, error.message)


def _billing_mode_context(managed: Account) -> dict[str, Any]:
    """What the page says about the billing mode: the mode now, a pending change's "until/from"
    line, and, in the first month of separate billing, the offer of an opening credit transfer."""
    current = managed.billing_mode_in()
    first_separate_month = (
        current == Account.BillingMode.SEPARATE
        and managed.billing_mode_from == month_of()
        and managed.billing_mode_next == Account.BillingMode.SEPARATE
    )
    return {
        "current": Account.BillingMode(current).label,
        "other": Account.BillingMode(OTHER_BILLING_MODE[current]).label.lower(),
        "pending": managed.billing_mode_change_pending,
        "next": Account.BillingMode(managed.billing_mode_next).label.lower() if managed.billing_mode_next else "",
        "until": managed.billing_mode_until,
        "start": managed.billing_mode_from,
        "next_start": services.next_month(month_of()),
        "offer_transfer": first_separate_month,
        "can_change": managed.status != Account.Status.CANCELLED,
    }


@login_required
@require_http_methods(GET_AND_POST)
def managed_status(request: SignedInRequest, account_id: UUID, managed_id: UUID, action: str) -> HttpResponse:
    """GET shows the confirmation step; POST makes the change."""
    access, managed = managed_account_access(request, account_id, managed_id)
    detail_url = reverse("managed_detail", args=[access.account.public_id, managed.public_id])
    if request.method == "POST":
        try:
            managed = services.change_managed_account_status(
                managed=managed, action=action, actor=Actor.from_request(request)
            )
        except services.ServiceError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{managed.name} is now {managed.get_status_display().lower()}.")
        return HttpResponseRedirect(detail_url)
    context = {
        "access": access,
        "account": access.account,
        "managed": managed,
        "action": action,
        "allowed": action in _status_actions(managed),
        "target_label": services.STATUS_ACTIONS[action][0].label.lower(),
        "detail_url": detail_url,
    }
    return render(request, "accounts/managed_status_confirm.html", context)


# --- API keys ------------------------------------------------------------------------------------------------
# An account's owners and admins manage its keys on its API keys page (and so does a manager logged in
# as it); a manager also manages its managed accounts' keys from their page on the manager side.

API_KEYS_PER_PAGE = 25


def _api_keys_page(request: HttpRequest, account: Account) -> Page[ApiKey]:
    keys = ApiKey.objects.filter(account=account).select_related("created_by")
    return Paginator(keys, API_KEYS_PER_PAGE).get_page(request.GET.get("page"))


def _api_keys_list(
    request: SignedInRequest, access: AccountAccess, form: ApiKeyForm, status: int = 200
) -> HttpResponse:
    context = {
        "access": access,
        "account": access.account,
        "api_keys": _api_keys_page(request, access.account),
        "form": form,
    }
    return render(request, "accounts/api_keys.html", context, status=status)


def _create_api_key(request: HttpRequest, account: Account, form: ApiKeyForm) -> tuple[ApiKey, str] | None:
    """The new key and its secret, or None with the reason on the form."""
    if not form.is_valid():
        return None
    try:
        return services.create_api_key(
            account=account, name=form.cleaned_data["name"], actor=Actor.from_request(request)
        )
    except services.ServiceError as error:
        apply_refusal(form=form, refusal=error)
        return None


def _api_key_created(request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
    """The one page that ever shows the secret: rendered straight from the POST, never stored in the
    session or a message, and never cached."""
    response = render(request, "accounts/api_keys_created.html", context)
    add_never_cache_headers(response)
    return response


def _api_key_revoke(
    request: HttpRequest, context: dict[str, Any], key_account: Account, key_id: int, back_url: str
) -> HttpResponse:
    """GET shows the confirmation step; POST revokes. Another account's key is a 404."""
    key = get_object_or_404(ApiKey.objects.select_related("created_by"), pk=key_id, account=key_account)
    if request.method == "POST":
        try:
            services.revoke_api_key(key=key, actor=Actor.from_request(request))
        except services.ServiceError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"The key “{key.name}” is revoked: programs using it can no longer sign in.")
        return HttpResponseRedirect(back_url)
    context = {**context, "key": key, "key_account": key_account, "back_url": back_url}
    return render(request, "accounts/api_keys_revoke.html", context)


@login_required
@require_GET
def api_keys(request: SignedInRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_ACCOUNT)
    return _api_keys_list(request, access, ApiKeyForm())


@require_POST
@login_required
def api_key_create(request: SignedInRequest, account_id: UUID) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_ACCOUNT)
    form = ApiKeyForm(request.POST)
    created = _create_api_key(request, access.account, form)
    if created is None:
        return _api_keys_list(request, access, form, status=422)
    key, raw_key = created
    context = {
        "access": access,
        "account": access.account,
        "key_account": access.account,
        "key": key,
        "raw_key": raw_key,
        "back_url": reverse("api_keys", args=[access.account.public_id]),
    }
    return _api_key_created(request, context)


@login_required
@require_http_methods(GET_AND_POST)
def api_key_revoke(request: SignedInRequest, account_id: UUID, key_id: int) -> HttpResponse:
    access = account_access(request, account_id, MANAGE_ACCOUNT)
    back_url = reverse("api_keys", args=[access.account.public_id])
    return _api_key_revoke(request, {"access": access, "account": access.account}, access.account, key_id, back_url)


@require_POST
@login_required
def managed_api_key_create(request: SignedInRequest, account_id: UUID, managed_id: UUID) -> HttpResponse:
    access, managed = managed_account_access(request, account_id, managed_id)
    form = ApiKeyForm(request.POST)
    created = _create_api_key(request, managed, form)
    if created is None:
        return _managed_api_keys_page(request, access, managed, form, status=422)
    key, raw_key = created
    context = {
        "access": access,
        "account": access.account,
        "managed": managed,
        "key_account": managed,
        "key": key,
        "raw_key": raw_key,
        "back_url": reverse("managed_api_keys", args=[access.account.public_id, managed.public_id]),
    }
    return _api_key_created(request, context)


@login_required
@require_http_methods(GET_AND_POST)
def managed_api_key_revoke(request: SignedInRequest, account_id: UUID, managed_id: UUID, key_id: int) -> HttpResponse:
    access, managed = managed_account_access(request, account_id, managed_id)
    back_url = reverse("managed_api_keys", args=[access.account.public_id, managed.public_id])
    context = {"access": access, "account": access.account, "managed": managed}
    return _api_key_revoke(request, context, managed, key_id, back_url)


class LogInAsView(AcquireUserView):
    """POST only. hijack does the session switch (CSRF, row lock, last_login and session age kept);
    `log_in_as_denial` is the whole permission rule, checked against the managed account in the URL."""

    http_method_names = ["post"]
    raise_exception = True
    # dispatch() turns away anyone not signed in before anything reads it as signed in.
    request: SignedInRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if (request.method or "").lower() not in self.http_method_names:
            return self.http_method_not_allowed(request, *args, **kwargs)
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        self.access, self.managed = managed_account_access(request, kwargs["account_id"], kwargs["managed_id"])
        # Skip hijack's `user_pk` form field: the target comes from the URL, through our access helper.
        return super(AcquireUserView, self).dispatch(request, *args, **kwargs)

    def get_object(self, queryset: QuerySet[Any] | None = None) -> User:
        target = log_in_as_target(self.managed)
        if target is None:  # test_func has refused a managed account without an owner already
            raise Http404("This managed account has no owner to log in as.")
        return target

    def test_func(self) -> bool:
        self.denial = log_in_as_denial(
            user=self.request.user, managed_account=self.managed, already_acting=self.request.acting is not None
        )
        return self.denial is None

    def handle_no_permission(self) -> HttpResponseRedirect:
        messages.error(self.request, self.denial or "You may not log in as this managed account.")
        return redirect("managed_detail", self.access.account.public_id, self.managed.public_id)

    def get_success_url(self) -> str:
        return self.get_redirect_url() or reverse("dashboard", args=[self.managed.public_id])

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseRedirect:
        real_user = self.request.user  # the request itself, seen as signed in (dispatch made sure)
        session_ends_at = acting.session_ends_at(request)  # before hijack's switch flushes the session
        response = super().post(request, *args, **kwargs)
        acting.begin(request, real_user=real_user, managed=self.managed, session_ends_at=session_ends_at)
        return response


@require_POST
def acting_return(request: ActingRequest) -> HttpResponse:
    if not request.user.is_authenticated or request.acting is None:
        messages.info(request, "You are not logged in as a managed account.")
        return redirect("home")
    state = acting.end(request, reason="returned")
    managed = state.managed_account
    fallback = reverse("managed_detail", args=[managed.managed_by.public_id, managed.public_id])
    messages.success(request, f"You are back in {managed.managed_by.name}.")
    return HttpResponseRedirect(_safe_next(request, fallback))
