"""A managed account's hub on its manager's side: the tab bar every tab page shows, and the
"Log in as" box above it. Billing and reporting tab views build their context here too (they may
import accounts; accounts imports neither), so every tab shows the same header and the same rule.

Which tabs a person sees follows the permission flags of their role in the manager (`access.can`):
owners and admins see every tab, billing members the invoices and balance, reporting members the
usage. A tab the person may not open is neither shown nor served (its view asks the same flag).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count
from django.urls import reverse

from accounts.access import AccountAccess
from accounts.acting import SignedInRequest
from accounts.models import Account, Membership, Role, User
from accounts.permissions import LogInAsFacts, log_in_as_denial, log_in_as_rule

OVERVIEW = "overview"
USAGE = "usage"
INVOICES = "invoices"
BALANCE = "balance"
API_KEYS = "api_keys"
MEMBERS = "members"
LIMITS = "limits"
AUDIT = "audit"
SETTINGS = "settings"


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    url: str
    current: bool


# (key, label, URL name, the `access.can` flag that shows it)
_TABS = (
    (OVERVIEW, "Overview", "managed_detail", "manage_managed_accounts"),
    (USAGE, "Usage", "managed_usage", "view_reports"),
    (INVOICES, "Invoices", "managed_invoices", "resell"),
    (BALANCE, "Balance and transfers", "managed_balance", "resell"),
    (API_KEYS, "API keys", "managed_api_keys", "manage_managed_accounts"),
    (MEMBERS, "Members", "managed_members", "manage_managed_accounts"),
    (LIMITS, "Spend limits", "controls_managed_limit", "manage_managed_accounts"),
    (AUDIT, "Audit", "managed_audit", "manage_managed_accounts"),
    (SETTINGS, "Settings", "managed_settings", "manage_managed_accounts"),
)


def tabs(access: AccountAccess, managed: Account, current: str) -> list[Tab]:
    args = [access.account.public_id, managed.public_id]
    return [
        Tab(key=key, label=label, url=reverse(name, args=args), current=key == current)
        for key, label, name, flag in _TABS
        if getattr(access.can, flag) and not (key == SETTINGS and managed.status == Account.Status.CANCELLED)
    ]


def hub_context(request: SignedInRequest, access: AccountAccess, managed: Account, current: str) -> dict[str, Any]:
    """What the hub's header needs on every tab. The log-in-as rule is asked only for the manager's
    owners and admins (the people who manage managed accounts): they see the button or the reason it
    is refused; billing and reporting members are never offered it."""
    denial = None
    if access.can.manage_managed_accounts:
        denial = log_in_as_denial(user=request.user, managed_account=managed, already_acting=request.acting is not None)
    return {
        "access": access,
        "account": access.account,
        "managed": managed,
        "tabs": tabs(access, managed, current),
        "current_tab": current,
        "offer_log_in_as": access.can.manage_managed_accounts,
        "log_in_as_denial": denial,
    }


def log_in_as_denials(access: AccountAccess, accounts: Iterable[Account]) -> dict[int, str | None]:
    """`log_in_as_rule` for each of a page of the manager's managed accounts, by pk (None: allowed),
    with its facts gathered set-based: two queries per page, whatever its size, where
    `log_in_as_facts` would take three per account. The same facts: the person's role in the manager
    (`access`), each account's first owner (log_in_as_target's order) and whether that owner belongs
    to any other account. The log-in-as view checks the rule again on the POST."""
    page = list(accounts)
    owners: dict[int, User] = {}
    for membership in (
        Membership.objects.filter(account__in=page, role=Role.OWNER)
        .select_related("user")
        .order_by("account_id", "created_at", "id")
    ):
        owners.setdefault(membership.account_id, membership.user)
    counts = dict(
        Membership.objects.filter(user__in=[owner.pk for owner in owners.values()])
        .values("user_id")
        .order_by()
        .annotate(n=Count("id"))
        .values_list("user_id", "n")
    )
    denials: dict[int, str | None] = {}
    for managed in page:
        owner = owners.get(managed.pk)
        facts = LogInAsFacts(
            managed_account=managed,
            role=access.role,
            owner=owner,
            owner_elsewhere=owner is not None and counts.get(owner.pk, 0) > 1,
        )
        denial = log_in_as_rule(facts)
        denials[managed.pk] = denial.message if denial else None
    return denials
