"""v2 API: managed accounts (manager keys only) and audit events. Every rule is the one the pages
use: the services write, accounts.access-style scoping reads, 404 for what the key may not see."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, cast, overload

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import JsonResponse
from django.utils import timezone

from accounts import audit, audit_text, selectors, services
from accounts.actor import Actor
from accounts.api_access import ActingRefused, ApiRequest, key_account, key_permission, managed_account_of
from accounts.models import Account, ApiKey, AuditEvent, Invitation, Membership, Role
from accounts.permissions import MANAGE_MANAGED_ACCOUNTS, log_in_as_facts, log_in_as_rule
from accounts.selectors import managed_accounts_for
from accounts.validators import validate_name
from portal.api import (
    ApiError,
    actor,
    api_view,
    bool_field,
    error,
    invalid,
    iso,
    json_body,
    page,
    query_bool,
    query_time,
    string_field,
)

if TYPE_CHECKING:
    from billing.models import Balance  # for the type checker only: accounts never imports billing

CONTAINS_MIN = 3
# The platform's own changes are "telnyx" in the v2 API (the SDK's enum); our log calls them "platform".
API_MADE_BY: dict[str, str] = {AuditEvent.MadeBy.PLATFORM: "telnyx"}
# `filter[status][eq]`, one place: Telnyx's values (the SDK's FilterStatus) beside ours, each the
# statuses it lists. `active`/`enabled` may use the platform, `blocked`/`disabled` may not;
# `blocked` also lists the enabled accounts a service block stops (`_service_blocked`: the records
# whose `service_status` is "blocked"). A status filter names the statuses it wants,
# cancelled included, so it overrides `include_cancelled_accounts`, as `cancelled` always did.
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "all": tuple(Account.Status.values),
    "active": (Account.Status.ENABLED,),
    "enabled": (Account.Status.ENABLED,),
    "blocked": (Account.Status.DISABLED,),
    "disabled": (Account.Status.DISABLED,),
    "cancelled": (Account.Status.CANCELLED,),
}
# Telnyx's enable re-enables the account's connections on request; there are none here.
REENABLE_NOTE = error(
    "ignored_field", "Ignored field",
    "There are no connections to re-enable here: enabling the account restores its sign-in, keys and usage, "
    "and reenable_all_connections changes nothing.",
    pointer="/reenable_all_connections",
)  # fmt: skip
SORTS = {"created_at": ("created_at", "id"), "-created_at": ("-created_at", "-id"), "email": ("email", "id"),
         "-email": ("-email", "-id")}  # fmt: skip


def managed_account_json(account: Account, *, api_key: str | None = None, with_balance: bool = False) -> dict[str, Any]:
    """The contract's record. `api_key` is the key in clear, only in the create response; later
    reads carry the prefix of the account's newest active key. `with_balance` (the retrieve
    response) adds the account's own balance, absent for roll-up accounts, which have none."""
    prefix = getattr(account, "latest_key_prefix", None)
    key = api_key or (f"{services.API_KEY_PREFIX}{prefix}…" if prefix else "")
    record: dict[str, Any] = {
        "record_type": "managed_account",
        "id": str(account.public_id),
        "email": account.email,
        "organization_name": account.name,
        "manager_account_id": str(account.managed_by.public_id),
        "api_user": account.managed_by.email,
        "api_key": key,
        "api_token": key,
        "rollup_billing": account.billing_mode_in() == Account.BillingMode.ROLLUP,
        # Ours: a change of `rollup_billing` takes effect at the start of the next UTC month.
        "billing_mode_change": _billing_mode_change_json(account),
        "managed_account_allow_custom_pricing": account.allow_custom_pricing,
        "pricing_hidden": account.pricing_hidden,
        "status": account.status,
        # New service (controls): "blocked" with the reason (Account.service_block), else "active".
        "service_status": "blocked" if account.service_block else "active",
        "service_blocked_reason": account.service_block or None,
        "created_at": iso(account.created_at),
        "updated_at": iso(account.updated_at),
    }
    if with_balance and account.has_own_balance:
        record["balance"] = _balance_json(account)
    return record


def _billing_mode_change_json(account: Account) -> dict[str, Any] | None:
    """The pending billing-mode change: the `rollup_billing` it sets and its first day, or None."""
    if not account.billing_mode_change_pending or account.billing_mode_from is None:
        return None
    return {
        "rollup_billing": account.billing_mode_next == Account.BillingMode.ROLLUP,
        "effective_from": account.billing_mode_from.isoformat(),
    }


def _balance_json(account: Account) -> dict[str, str]:
    """The SDK's `ManagedAccountBalance`. `accounts` must not import `billing` (DESIGN section 6),
    so the row is read through the ORM's reverse one-to-one `Balance.account` (related_name
    "balance"), loaded by `_managed(..., with_balance=True)`."""
    row: Balance
    try:
        row = account.balance
    except ObjectDoesNotExist:
        # Nothing posted yet, so no row: an unsaved one carries the model's defaults (zero, USD).
        row = cast("Balance", Account._meta.get_field("balance").related_model(account=account))
    return {
        "record_type": "balance",
        "balance": f"{row.amount:.2f}",
        "credit_limit": f"{row.credit_limit:.2f}",
        "available_credit": f"{row.available_credit:.2f}",
        "currency": row.currency,
    }


def _records(manager: Account) -> QuerySet[Account]:
    newest_key = ApiKey.objects.filter(account=OuterRef("pk"), revoked_at__isnull=True).order_by("-created_at")
    return (
        managed_accounts_for(manager)
        .select_related("manager")
        .annotate(latest_key_prefix=Subquery(newest_key.values("prefix")[:1]))
    )


def _managed(request: ApiRequest, managed_id: str, *, with_balance: bool = False) -> Account:
    """One of the key's manager's managed accounts as the contract shows it; any other id is a 404."""
    manager = key_account(request)
    records = _records(manager).select_related("balance") if with_balance else _records(manager)
    return managed_account_of(request, public_id=managed_id, accounts=records)


@api_view("GET", "POST")
def managed_accounts(request: ApiRequest) -> JsonResponse:
    manager = key_permission(request, permission=MANAGE_MANAGED_ACCOUNTS)
    if request.method == "POST":
        return _create(request, manager)
    accounts = _filtered(request, _records(manager))
    return page(request, accounts, managed_account_json)


def _service_blocked() -> Q:
    """`Account.service_block` of an enabled managed account as a condition (the `blocked` filter):
    its own stored block while its period lasts, or, billed by roll-up this month, its manager's;
    or a manager that is not enabled. A disabled account is `blocked` by its status already."""
    now = timezone.now()

    def stored(prefix: str = "") -> Q:
        until = f"{prefix}service_blocked_until"
        lasting = Q(**{f"{until}__isnull": True}) | Q(**{f"{until}__gt": now})
        return ~Q(**{f"{prefix}service_blocked_reason": ""}) & lasting

    rollup = ~Account.pays_own_usage()
    manager_down = ~Q(manager__status=Account.Status.ENABLED)
    return Q(status=Account.Status.ENABLED) & (stored() | (rollup & stored("manager__")) | manager_down)


def _filtered(request: ApiRequest, accounts: QuerySet[Account]) -> QuerySet[Account]:
    params = request.GET
    for field, column in (("email", "email"), ("organization_name", "name")):
        contains = params.get(f"filter[{field}][contains]")
        if contains is not None:
            if len(contains.strip()) < CONTAINS_MIN:
                raise invalid(f"filter[{field}][contains]", f"Give at least {CONTAINS_MIN} characters.", query=True)
            accounts = accounts.filter(**{f"{column}__icontains": contains.strip()})
        equals = params.get(f"filter[{field}][eq]")
        if equals is not None:
            accounts = accounts.filter(**{f"{column}__iexact": equals.strip()})
    status = params.get("filter[status][eq]")
    if status is not None:
        if status not in STATUS_FILTERS:
            raise invalid("filter[status][eq]", f"Must be one of {', '.join(STATUS_FILTERS)}.", query=True)
        wanted = Q(status__in=STATUS_FILTERS[status])
        accounts = accounts.filter(wanted | _service_blocked() if status == "blocked" else wanted)
    elif not query_bool(request, "include_cancelled_accounts"):
        accounts = accounts.exclude(status=Account.Status.CANCELLED)
    sort = params.get("sort", "-created_at")
    if sort not in SORTS:
        raise invalid("sort", f"Must be one of {', '.join(SORTS)}.", query=True)
    return accounts.order_by(*SORTS[sort])


@overload
def _name_field(body: dict[str, Any], field: str, *, required: Literal[True]) -> str: ...
@overload
def _name_field(body: dict[str, Any], field: str, *, required: bool = False) -> str | None: ...
def _name_field(body: dict[str, Any], field: str, *, required: bool = False) -> str | None:
    """A name from the body: a string as `string_field` checks it, then the rule every name of the
    portal follows (accounts.validators.validate_name, the forms' too), as a 422 at the field."""
    value = string_field(body, field, required=required)
    if value:
        try:
            validate_name(value)
        except ValidationError as error:
            raise invalid(field, error.messages[0]) from None
    return value


def _create(request: ApiRequest, manager: Account) -> JsonResponse:
    body = json_body(request, allowed=("business_name", "email", "password", "managed_account_allow_custom_pricing",
                                       "rollup_billing", "pricing_hidden"))  # fmt: skip
    name = _name_field(body, "business_name", required=True)
    # `email` is optional, as in Telnyx's API. Without it the account is created with no owner and
    # no invitation: the key in the answer works, nobody signs in to it, it cannot be logged in as,
    # and its record's `email` is "". A password needs an owner to belong to.
    email = string_field(body, "email", max_length=254)
    password = string_field(body, "password", max_length=128)
    if email is not None and not email.strip():
        raise invalid("email", "Give the owner's e-mail address, or leave email out to create no owner.")
    if password and email is None:
        raise invalid("password", "A password is the owner's: give the owner's email with it.")
    rollup = bool_field(body, "rollup_billing", default=False)
    managed = services.create_managed_account(
        manager=manager,
        name=name,
        owner_email=email or "",
        owner_password=password or None,
        billing_mode=Account.BillingMode.ROLLUP if rollup else Account.BillingMode.SEPARATE,
        allow_custom_pricing=bool_field(body, "managed_account_allow_custom_pricing", default=False),
        pricing_hidden=bool_field(body, "pricing_hidden", default=False),
        actor=actor(request),
    )
    _, raw = services.create_api_key(account=managed, name="Created with the account", actor=actor(request))
    return JsonResponse({"data": managed_account_json(managed, api_key=raw)}, status=201)


@api_view("GET", "PATCH")
def managed_account(request: ApiRequest, managed_id: str) -> JsonResponse:
    retrieve = request.method == "GET"  # the contract puts `balance` on retrieve only
    managed = _managed(request, managed_id, with_balance=retrieve)
    if request.method == "PATCH":
        body = json_body(
            request,
            allowed=("managed_account_allow_custom_pricing", "pricing_hidden", "organization_name", "rollup_billing"),
        )
        values: dict[str, bool | str] = {}
        for field, target in (("managed_account_allow_custom_pricing", "allow_custom_pricing"),
                              ("pricing_hidden", "pricing_hidden")):  # fmt: skip
            value = bool_field(body, field)
            if value is not None:
                values[target] = value
        name = _name_field(body, "organization_name")
        if name is not None:
            if not name:
                raise invalid("organization_name", "organization_name cannot be blank.")
            values["name"] = name
        rollup = bool_field(body, "rollup_billing")
        with transaction.atomic():  # a refused billing-mode change leaves the other fields unchanged too
            if rollup is not None:  # from the start of next month (services.set_billing_mode)
                mode = Account.BillingMode.ROLLUP if rollup else Account.BillingMode.SEPARATE
                services.set_billing_mode(managed=managed, mode=mode, actor=actor(request))
            services.update_managed_account(managed=managed, actor=actor(request), **values)
        managed = _managed(request, managed_id)
    return JsonResponse({"data": managed_account_json(managed, with_balance=retrieve)})


@api_view("POST")
def managed_account_action(request: ApiRequest, managed_id: str, action: str) -> JsonResponse:
    managed = _managed(request, managed_id)
    body = json_body(request, allowed=("reenable_all_connections",)) if request.body else {}
    bool_field(body, "reenable_all_connections")  # checked, then ignored: the answer's meta says so
    services.change_managed_account_status(managed=managed, action=action, actor=actor(request))
    answer: dict[str, Any] = {"data": managed_account_json(_managed(request, managed_id))}
    if "reenable_all_connections" in body:
        answer["meta"] = {"notes": [REENABLE_NOTE]}
    return JsonResponse(answer)


# Resources whose label is an identifier people use (Telnyx's `alternate_resource_id`, as a phone
# number is for a number): a member's or invitee's e-mail, a key's or card's name, an invoice's
# number. An account's name is not one (two managed accounts may share a name), nor is a batch's.
ALTERNATE_ID_TYPES = ("user", "membership", "invitation", "apikey", "paymentmethod", "invoice")


def change_made_by(event: AuditEvent, reader: Account) -> str:
    """Telnyx's `change_made_by` as `reader`'s log reads the event: `telnyx` for the platform;
    `account_manager` for a change its manager made to a managed account (stored on the manager, or
    made while logged in as it, or from the manager's pages or keys); else who the person is in the
    account the event was recorded on (`account_owner` or `organization_member`)."""
    if event.change_made_by == AuditEvent.MadeBy.PLATFORM:
        return API_MADE_BY[AuditEvent.MadeBy.PLATFORM]
    if reader.is_managed and event.account_id == reader.manager_id:
        return AuditEvent.MadeBy.ACCOUNT_MANAGER
    return event.change_made_by


def audit_event_json(event: AuditEvent, reader: Account) -> dict[str, Any]:
    """The event as Telnyx's audit event, read from `reader`'s log: `changes` by the API's field
    names (accounts.audit_text, the page's renderer), `user_id` the person's public UUID,
    `alternate_resource_id` the resource's human identifier where it has one, else null."""
    alternate = audit_text.resource_label(event) if event.resource_type in ALTERNATE_ID_TYPES else ""
    return {
        "id": str(event.public_id),
        "record_type": "audit_event",
        "resource_id": event.resource_id,
        "alternate_resource_id": alternate or None,
        "change_type": event.change_type,
        "changes": audit_text.api_changes(event),
        "change_made_by": change_made_by(event, reader),
        "user_id": str(event.user.public_id) if event.user is not None else None,
        "organization_id": str(event.account.public_id),
        "created_at": iso(event.created_at),
    }


@api_view("GET")
def audit_events(request: ApiRequest) -> JsonResponse:
    reader = key_account(request)
    events = audit.events_for_account(reader)
    after = query_time(request, "filter[created_after]")
    before = query_time(request, "filter[created_before]")
    if after:
        events = events.filter(created_at__gte=after)
    if before:
        events = events.filter(created_at__lte=before)
    sort = request.GET.get("sort", "desc")
    if sort not in ("asc", "desc"):
        raise invalid("sort", "Must be asc or desc.", query=True)
    events = events.order_by(*(("created_at", "id") if sort == "asc" else ("-created_at", "-id")))
    return page(request, events, lambda event: audit_event_json(event, reader))


# --- A managed account's users (Telnyx's /organizations/users, from the manager's key) ----------------

USER_RECORD_TYPE = "organization_sub_user"  # Telnyx's, for members and pending invitations alike
USER_STATUSES = ("enabled", "disabled", "invited")  # Telnyx's user_status, and "invited" for an invitation
# A pending invitation's public id: a name-based UUID of the account and the invitation, so it is a
# UUID like a member's, stable, and meaningless outside the managed account it belongs to.
INVITATION_ID_NAMESPACE = uuid.UUID("3f0d5a4e-8c2b-4f7a-9e61-5b2d7c9a1e04")


def invitation_public_id(invitation: Invitation) -> uuid.UUID:
    return uuid.uuid5(INVITATION_ID_NAMESPACE, f"{invitation.account.public_id}:{invitation.pk}")


def managed_user_json(row: Membership | Invitation) -> dict[str, Any]:
    """A member (`id` the user's public UUID) or a pending invitation (`user_status` "invited", `id`
    the invitation's, `invitation_public_id`), in one shape: Telnyx's OrganizationUser and the role."""
    if isinstance(row, Membership):
        return {
            "record_type": USER_RECORD_TYPE,
            "id": str(row.user.public_id),
            "email": row.user.email,
            "role": row.role,
            "user_status": "enabled" if row.user.is_active else "disabled",
            "created_at": iso(row.created_at),
            "last_sign_in_at": iso(row.user.last_login),
            "invitation_expires_at": None,
        }
    return {
        "record_type": USER_RECORD_TYPE,
        "id": str(invitation_public_id(row)),
        "email": row.email,
        "role": row.role,
        "user_status": "invited",
        "created_at": iso(row.created_at),
        "last_sign_in_at": None,
        "invitation_expires_at": iso(row.expires_at),
    }


class _ManagedUsers:
    """What `page` pages: the account's members (oldest first), then its pending invitations (oldest first)."""

    def __init__(self, managed: Account) -> None:
        self.members = selectors.members_of(managed)
        self.invitations = selectors.pending_invitations(managed).select_related("account").order_by("created_at", "id")
        self._members = self.members.count()

    def count(self) -> int:
        return self._members + self.invitations.count()

    def __getitem__(self, index: slice, /) -> list[Membership | Invitation]:
        start, stop, members = index.start or 0, index.stop, self._members
        rows: list[Membership | Invitation] = list(self.members[start : min(stop, members)]) if start < members else []
        if stop > members:
            rows.extend(self.invitations[max(start - members, 0) : stop - members])
        return rows


def _users_of(request: ApiRequest, managed_id: str) -> Account:
    """The managed account whose users the request names: a manager's key only (any other key, and a
    manager's key acting as a managed account, which has none, is a 403); another tenant's is a 404."""
    key_permission(request, permission=MANAGE_MANAGED_ACCOUNTS)
    return _managed(request, managed_id)


def _manager_acting(request: ApiRequest, managed: Account) -> Actor:
    """Changing a managed account's people is done as the manager's pages do it, logged in as the
    account: the log-in-as rule with the key's creator as the real person (a manager's admins only
    when its owner allows it; never a disabled account or one whose owner belongs elsewhere), and the
    change audited as that person acting as the account's owner (`change_made_by` account_manager)."""
    facts = log_in_as_facts(user=request.api_key.created_by, managed_account=managed)
    denial = log_in_as_rule(facts)
    if denial is not None:
        raise ActingRefused(denial)
    return replace(actor(request), acting_as=facts.owner)


@api_view("GET", "POST")
def managed_account_users(request: ApiRequest, managed_id: str) -> JsonResponse:
    managed = _users_of(request, managed_id)
    if request.method == "GET":
        return page(request, _ManagedUsers(managed), managed_user_json)
    body = json_body(request, allowed=("email", "role"))
    email = string_field(body, "email", required=True, max_length=254)
    try:
        validate_email(email)
    except ValidationError:
        raise invalid("email", "Give a valid e-mail address, like name@example.com.") from None
    role = string_field(body, "role", required=True)
    if role not in Role.values:
        raise invalid("role", f"Must be one of {', '.join(Role.values)}.")
    # The same answer whether or not someone already uses the address (hole 9): an invitation either way.
    invitation = services.invite_member(
        account=managed, email=email, role=role, actor=_manager_acting(request, managed)
    )
    return JsonResponse({"data": managed_user_json(invitation)}, status=201)


@api_view("DELETE")
def managed_account_user(request: ApiRequest, managed_id: str, user_id: str) -> JsonResponse:
    """Removes the member whose user has `user_id`, or revokes the pending invitation with that id;
    answers the record as it was. A malformed or unknown id is a 404."""
    managed = _users_of(request, managed_id)
    try:
        public_id = uuid.UUID(user_id)
    except ValueError:
        raise ApiError(404, "not_found", "Not found", "No such user or pending invitation in this account.") from None
    membership = selectors.members_of(managed).filter(user__public_id=public_id).first()
    if membership is not None:
        record = managed_user_json(membership)
        services.remove_member(membership=membership, actor=_manager_acting(request, managed))
        return JsonResponse({"data": record})
    pending = selectors.pending_invitations(managed).select_related("account")
    invitation = next((i for i in pending if invitation_public_id(i) == public_id), None)
    if invitation is None:
        raise ApiError(404, "not_found", "Not found", "No such user or pending invitation in this account.")
    record = managed_user_json(invitation)
    services.revoke_invitation(invitation=invitation, actor=_manager_acting(request, managed))
    return JsonResponse({"data": record})
