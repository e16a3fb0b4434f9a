"""The one way views reach an account: 404 for what the user may not see, 403 for what their role
may not do. Platform staff have no memberships and so see no customer pages."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from accounts.actor import request_user
from accounts.models import Account, Membership
from accounts.permissions import (
    MANAGE_MANAGED_ACCOUNTS,
    Permissions,
    permission_applies,
    permissions_for,
    role_allows,
)


@dataclass(frozen=True)
class AccountAccess:
    account: Account
    membership: Membership
    can: Permissions  # what the person may do here: templates and views read these flags, not the role

    @property
    def role(self) -> str:
        return self.membership.role


def account_access(request: HttpRequest, account_id: UUID, permission: str) -> AccountAccess:
    # The account's low-balance threshold comes joined: the layout's banner reads it on every page
    # (notifications.selectors.low_balance) without a query of its own.
    membership = (
        Membership.objects.select_related("account", "account__manager", "account__low_balance_threshold")
        .filter(user=request_user(request), account__public_id=account_id)
        .first()
    )
    if membership is None:
        raise Http404("No such account.")
    account = membership.account
    if not permission_applies(account, permission):
        raise Http404("This account has no such page.")
    blocked = account.blocked_reason
    if blocked is not None:
        raise PermissionDenied(f"{blocked}.")
    if not role_allows(membership.role, permission):
        raise PermissionDenied(f"Your role ({membership.get_role_display()}) does not allow this.")
    return AccountAccess(account=account, membership=membership, can=permissions_for(membership=membership))


def managed_account_access(
    request: HttpRequest, account_id: UUID, managed_id: UUID, permission: str = MANAGE_MANAGED_ACCOUNTS
) -> tuple[AccountAccess, Account]:
    """A manager's access to one of its own managed accounts (`permission` in the manager: its billing
    members read a managed account's invoices with RESELL); any other id is a 404."""
    access = account_access(request, account_id, permission)
    managed = get_object_or_404(Account.objects.select_related("manager"), manager=access.account, public_id=managed_id)
    return access, managed
