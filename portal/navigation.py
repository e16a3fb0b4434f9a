"""The portal's left navigation and account switcher: their structure in one place.

Each link names the permission flags (`access.can`, from `accounts.permissions.permissions_for`)
that show it, the same flags the page's view checks, so the navigation offers exactly what the
person may open. The current page is found from the resolved URL name: a link is current on its
own page and on the pages under it (a managed account's pages under "Managed accounts").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

from django.db.models import Count, QuerySet
from django.db.models.functions import Lower
from django.http import HttpRequest
from django.urls import reverse

from accounts.access import AccountAccess
from accounts.models import Membership, User
from accounts.selectors import accounts_for_user

SWITCHER_PREVIEW = 8  # accounts listed in the switcher before one searches


@dataclass(frozen=True)
class Viewer:
    """What the navigation asks of the person: their flags in the account of the page (None on pages
    outside an account, such as two-factor set-up) and whether they are logged in as someone."""

    access: AccountAccess | None
    acting: bool


@dataclass(frozen=True)
class Link:
    label: str
    url_name: str
    shown: Callable[[Viewer], bool]
    under: tuple[str, ...] = ()  # URL-name prefixes of the pages this link is current on
    per_account: bool = True  # False: a page of the person (security), not of the account


@dataclass(frozen=True)
class Section:
    label: str
    links: tuple[Link, ...]


def _flag(name: str) -> Callable[[Viewer], bool]:
    return lambda viewer: viewer.access is not None and bool(getattr(viewer.access.can, name))


def _pays_by_card(viewer: Viewer) -> bool:
    return _flag("manage_billing")(viewer) and viewer.access is not None and viewer.access.account.has_own_balance


def _sets_own_limits(viewer: Viewer) -> bool:
    """A separately billed managed account's people set its own spend limits (controls.views.own_limits)."""
    account = viewer.access.account if viewer.access is not None else None
    return _flag("manage_account")(viewer) and account is not None and account.is_managed and account.has_own_balance


def _own_security(viewer: Viewer) -> bool:
    return not viewer.acting  # a manager logged in as an account never changes its owner's sign-in


def _own_security_in_account(viewer: Viewer) -> bool:
    return _own_security(viewer) and viewer.access is not None


def _own_security_outside(viewer: Viewer) -> bool:
    """On the person's own pages (outside any account) their sign-in pages are a section of their own."""
    return _own_security(viewer) and viewer.access is None


NAVIGATION: tuple[Section, ...] = (
    Section(
        "",
        (
            Link("Overview", "dashboard", _flag("view_account")),
            Link("Managed accounts", "managed_list", _flag("manage_managed_accounts"), under=("managed_",)),
        ),
    ),
    Section(
        "Usage",
        (
            Link("Usage reports", "usage_report", _flag("view_reports")),
            Link("Usage records", "usage_records", _flag("view_reports")),
            Link("Upload usage", "usage_upload", _flag("submit_usage")),
        ),
    ),
    Section(
        "Billing",
        (
            Link("Balance", "balance", _flag("view_billing")),
            Link("Payments", "payment_methods", _pays_by_card, under=("payment_", "top_up", "auto_recharge")),
            Link("Invoices", "invoice_list", _flag("view_billing"), under=("invoice_",)),
            # Resale prices (the markup's per-product exceptions) is reached from Reseller invoices.
            Link("Reseller invoices", "resale_invoices", _flag("resell"), under=("issued_invoice_", "resale_")),
            Link("Billing profile", "billing_profile", _flag("manage_billing")),
            Link("Rates", "rate_card", _flag("view_rates")),
            Link("Spend limits", "controls_limits", _flag("manage_managed_accounts"), under=("controls_managed_",)),
            Link("Spend limits", "controls_own_limits", _sets_own_limits),
        ),
    ),
    Section(
        "Developers",
        (
            Link("API keys", "api_keys", _flag("manage_account"), under=("api_key_",)),
            Link("Webhooks", "webhooks_endpoints", _flag("manage_account"), under=("webhooks_",)),
        ),
    ),
    Section(
        "Settings",
        (
            Link("Members", "members", _flag("manage_account"), under=("member_", "invitation_")),
            Link(
                "Security",
                "mfa_index",
                _own_security_in_account,
                under=("mfa_", "account_change_password", "account_email", "account_reauthenticate"),
                per_account=False,
            ),
            Link("Notifications", "notification_settings", _flag("view_account"), under=("notification_",)),
            Link("Audit log", "audit_log", _flag("manage_account")),
            Link("Account settings", "account_settings", _flag("manage_account")),
        ),
    ),
    Section(
        "Your sign-in",
        (
            Link(
                "Two-factor authentication",
                "mfa_index",
                _own_security_outside,
                under=("mfa_", "account_reauthenticate"),
                per_account=False,
            ),
            Link("Password", "account_change_password", _own_security_outside, per_account=False),
            Link("E-mail addresses", "account_email", _own_security_outside, per_account=False),
        ),
    ),
)


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    current: bool


@dataclass(frozen=True)
class NavGroup:
    label: str
    items: list[NavItem]


def is_current(link: Link, url_name: str | None) -> bool:
    """Whether `link` marks the page named `url_name` (its own page, or one under it)."""
    if not url_name:
        return False
    return url_name == link.url_name or any(url_name.startswith(prefix) for prefix in link.under)


def navigation_for(*, viewer: Viewer, url_name: str | None) -> list[NavGroup]:
    """The sections the person sees on the page named `url_name`, each with the links they may open.
    Outside an account, only the person's own pages (their sign-in) are listed; the sidebar adds
    their accounts (the switcher's first few, templates/portal/_sidebar.html)."""
    groups = []
    for section in NAVIGATION:
        items = [
            NavItem(label=link.label, url=_url(link, viewer), current=is_current(link, url_name))
            for link in section.links
            if (viewer.access is not None or not link.per_account) and link.shown(viewer)
        ]
        if items:
            groups.append(NavGroup(label=section.label, items=items))
    return groups


def _url(link: Link, viewer: Viewer) -> str:
    if link.per_account and viewer.access is not None:
        return reverse(link.url_name, args=[viewer.access.account.public_id])
    return reverse(link.url_name)


# --- The account switcher -----------------------------------------------------------------------------


def memberships_matching(user: User, query: str = "") -> QuerySet[Membership]:
    """The person's own memberships whose account name contains `query`, by name: the switcher's
    search, never anyone else's accounts."""
    found = accounts_for_user(user)
    return found.filter(account__name__icontains=query) if query else found


def names_held_twice(user: User, names: Iterable[str]) -> set[str]:
    """Of `names`, those (in lower case) that two or more of the person's accounts are called: the
    switcher shows the owner e-mail beside them, so that the two can be told apart. One query."""
    lowered = {name.lower() for name in names}
    if not lowered:
        return set()
    held = (
        Membership.objects.filter(user=user)
        .annotate(lower_name=Lower("account__name"))
        .filter(lower_name__in=lowered)
        .values("lower_name")
        .order_by()
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    return {row["lower_name"] for row in held}


class AccountSwitcher:
    """The switcher in the sidebar: how many accounts the person has and the first few, each one query
    run only when the page shows the switcher (a person may belong to thousands of accounts)."""

    def __init__(self, user: User) -> None:
        self._user = user

    @cached_property
    def total(self) -> int:
        return accounts_for_user(self._user).count()

    @cached_property
    def preview(self) -> list[Membership]:
        return list(accounts_for_user(self._user)[:SWITCHER_PREVIEW])

    @property
    def has_more(self) -> bool:
        return self.total > SWITCHER_PREVIEW

    @cached_property
    def duplicates(self) -> set[str]:
        """The preview's names (lower case) that more than one of the person's accounts has."""
        return names_held_twice(self._user, (m.account.name for m in self.preview))


def navigation(request: HttpRequest) -> dict[str, object]:
    """Context processor: the resolved URL name (the current-page mark) and the account switcher."""
    match = getattr(request, "resolver_match", None)
    context: dict[str, object] = {"nav_url_name": match.url_name if match else None}
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        context["account_switcher"] = AccountSwitcher(user)
    return context
