"""The one way API views reach an account, as `accounts.access` is for pages: the account a key acts
on, 404 for what the key may not see, 403 for what it may not do. `portal.api.api_view` turns
Http404 and PermissionDenied into the contract's error shape, so this module needs no API types."""

from __future__ import annotations

import uuid

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from accounts.models import Account, ApiKey
from accounts.permissions import MANAGE_MANAGED_ACCOUNTS, RESELL, key_allows
from accounts.selectors import managed_accounts_for

REFUSALS = {
    MANAGE_MANAGED_ACCOUNTS: "Only a manager account's key can manage managed accounts.",
    RESELL: "Only a manager account's key can issue reseller invoices.",
}


class ApiRequest(HttpRequest):
    """A request to an API view: `portal.api.api_view` has authenticated its key. For the type
    checker only (Django builds plain HttpRequests; the decorator sets `api_key`)."""

    api_key: ApiKey


def key_account(request: ApiRequest) -> Account:
    """The account the request's key acts on (authenticated by `portal.api.api_view`)."""
    return request.api_key.account


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
