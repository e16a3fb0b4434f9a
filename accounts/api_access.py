"""The one way API views reach an account, as `accounts.access` is for pages: the account a key acts
on, 404 for what the key may not see, 403 for what it may not do. `portal.api.api_view` turns
Http404, PermissionDenied and Refusal into the contract's error shape, so this module needs no API types.

A manager's key acts on one of its managed accounts when the request names it in
`X-Managed-Account-Id` (as Stripe's `Stripe-Account`): `on_behalf` resolves the header under the
log-in-as rule, with the key's creator as the real person, on every request; `key_account` then
answers that managed account, so every view gets the same rules (hidden pricing included) as that
account's own key, and `portal.api.actor` audits the change as the browser's log-in-as does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from accounts.errors import Problem, Refusal
from accounts.models import Account, ApiKey, User
from accounts.permissions import (
    MANAGE_MANAGED_ACCOUNTS,
    RESELL,
    Denial,
    key_allows,
    log_in_as_facts,
    log_in_as_rule,
)
from accounts.selectors import managed_accounts_for

MANAGED_ACCOUNT_HEADER = "X-Managed-Account-Id"

REFUSALS = {
    MANAGE_MANAGED_ACCOUNTS: "Only a manager account's key can manage managed accounts.",
    RESELL: "Only a manager account's key can issue reseller invoices.",
}


class ApiRequest(HttpRequest):
    """A request to an API view: `portal.api.api_view` has authenticated its key. For the type
    checker only (Django builds plain HttpRequests; the decorator sets `api_key`)."""

    api_key: ApiKey
    on_behalf: OnBehalf | None


@dataclass(frozen=True)
class OnBehalf:
    """A manager's key acting on one of its managed accounts (`X-Managed-Account-Id`). `acting_as`
    is the managed account's owner: the audit names them beside the key's creator, the real person,
    as it names whom a person logged in as the account acts as."""

    account: Account
    acting_as: User


class _HeaderRefusal(Refusal):
    """A refused `X-Managed-Account-Id`: about a header, so its error item points at no body field."""

    def problems(self) -> list[Problem]:
        return [Problem(detail=self.message, pointer=None, code=self.code, title=self.title)]


class HeaderNotAllowed(_HeaderRefusal):
    status = 403
    code = "managed_account_header_not_allowed"
    title = "Header not allowed"


class InvalidHeader(_HeaderRefusal):
    code = "invalid_header"
    title = "Invalid header"


class ActingRefused(_HeaderRefusal):
    """The log-in-as rule refuses acting on the named managed account; `code` is the rule's."""

    status = 403
    title = "Cannot act on this managed account"

    def __init__(self, denial: Denial) -> None:
        super().__init__(denial.message)
        self.code = denial.code


def on_behalf(key: ApiKey, header: str | None) -> OnBehalf | None:
    """The managed account `header` (the request's `X-Managed-Account-Id`, None when absent) names,
    when `key` may act on it: a manager's key, one of its own managed accounts (any other id is a
    404 that tells nothing), and the log-in-as rule with the key's creator as the real person (a
    disabled or cancelled account, an admin without the owner's grant: 403). Asked on every
    request, from the database: nothing is kept between requests."""
    if header is None:
        return None
    manager = key.account
    if not manager.is_manager:
        raise HeaderNotAllowed(
            f"Only a manager account's key may name a managed account in {MANAGED_ACCOUNT_HEADER}; "
            "this key acts on its own account only. Send the request without the header."
        )
    public_id = _header_uuid(header)
    managed = managed_accounts_for(manager).select_related("manager").filter(public_id=public_id).first()
    if managed is None:
        raise Http404("No such managed account.")
    facts = log_in_as_facts(user=key.created_by, managed_account=managed)
    denial = log_in_as_rule(facts)
    if denial is not None:
        raise ActingRefused(denial)
    assert facts.owner is not None, "the log-in-as rule allows only an account with an active owner"
    return OnBehalf(account=facts.managed_account, acting_as=facts.owner)


def acting_on(request: ApiRequest) -> OnBehalf | None:
    """The request's `on_behalf`, as `portal.api.api_view` resolved it (None on a request built
    without it, as tests of these helpers build them)."""
    acting: OnBehalf | None = getattr(request, "on_behalf", None)
    return acting


def key_account(request: ApiRequest) -> Account:
    """The account the request's key acts on (authenticated by `portal.api.api_view`): the managed
    account it names in `X-Managed-Account-Id`, else the key's own."""
    acting = acting_on(request)
    return acting.account if acting is not None else request.api_key.account


def key_permission(request: ApiRequest, *, permission: str) -> Account:
    """The key's account when its key may do `permission`; a 403 otherwise (the account exists and
    is the key's own, so there is nothing to hide)."""
    account = key_account(request)
    if not key_allows(account=account, permission=permission):
        raise PermissionDenied(REFUSALS.get(permission, "This key may not do that."))
    return account


def managed_account_of(request: ApiRequest, *, public_id: str, accounts: QuerySet[Account] | None = None) -> Account:
    """One of the key's manager's managed accounts; any other id, a malformed one, or a key that is
    not a manager's is a 404, so a key learns nothing of accounts that are not its own.
    `accounts` narrows or annotates the lookup; it is always limited to the key's managed accounts."""
    manager = key_account(request)
    if not key_allows(account=manager, permission=MANAGE_MANAGED_ACCOUNTS):
        raise Http404("No such managed account.")
    records = managed_accounts_for(manager) if accounts is None else accounts.filter(manager=manager)
    return get_object_or_404(records, public_id=_uuid(public_id))


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Http404("No such managed account.") from None


def _header_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidHeader(
            f"{MANAGED_ACCOUNT_HEADER} must be the id of one of your managed accounts, a UUID "
            "(like 0f8fad5b-d9cb-469f-a165-70867728950e)."
        ) from None
