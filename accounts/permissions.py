"""Who may do what. Every page, API view and task asks these functions; no rule lives elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from accounts.models import Account, Membership, Role, User

VIEW_ACCOUNT = "view_account"
MANAGE_ACCOUNT = "manage_account"  # account settings, members, invitations, audit log
MANAGE_MANAGED_ACCOUNTS = "manage_managed_accounts"
VIEW_BILLING = "view_billing"
MANAGE_BILLING = "manage_billing"  # payment methods, top-ups, auto-recharge: moving the account's money
RESELL = "resell"  # a manager's reseller invoicing: its markup, the invoices it issued, marking them paid or void
VIEW_REPORTS = "view_reports"
SUBMIT_USAGE = "submit_usage"

_ALL: set[str] = {Role.OWNER, Role.ADMIN, Role.BILLING, Role.REPORTING}
ROLE_PERMISSIONS: dict[str, set[str]] = {
    VIEW_ACCOUNT: _ALL,
    MANAGE_ACCOUNT: {Role.OWNER, Role.ADMIN},
    MANAGE_MANAGED_ACCOUNTS: {Role.OWNER, Role.ADMIN},
    VIEW_BILLING: {Role.OWNER, Role.ADMIN, Role.BILLING},
    MANAGE_BILLING: {Role.OWNER, Role.ADMIN, Role.BILLING},
    RESELL: {Role.OWNER, Role.ADMIN, Role.BILLING},
    VIEW_REPORTS: {Role.OWNER, Role.ADMIN, Role.REPORTING},
    SUBMIT_USAGE: {Role.OWNER, Role.ADMIN},
}


def role_allows(role: str, permission: str) -> bool:
    return role in ROLE_PERMISSIONS[permission]


def permission_applies(account: Account, permission: str) -> bool:
    """Managing managed accounts, and billing them as a reseller, exist only on manager accounts."""
    return permission not in (MANAGE_MANAGED_ACCOUNTS, RESELL) or account.is_manager


def key_allows(*, account: Account, permission: str) -> bool:
    """An API key acts with its account's whole rights (only owners and admins create keys), so only
    what the account's kind offers limits it: managed accounts and reselling on manager accounts."""
    return permission_applies(account, permission)


@dataclass(frozen=True)
class Permissions:
    """What one member may do in one account, as flags: pages and templates read these, never the
    role, so each rule stays here (`access.can.view_billing`, not `role == "owner" or ...`)."""

    view_account: bool
    manage_account: bool
    manage_managed_accounts: bool
    view_billing: bool
    manage_billing: bool
    resell: bool
    view_reports: bool
    submit_usage: bool
    see_pricing: bool  # any rate, cost or priced amount (can_see_pricing)
    view_rates: bool  # the rate card: billing's page, shown only where pricing is seen
    log_in_as: bool  # may log in as this manager's managed accounts (log_in_as_denial decides per account)
    grant_log_in_as: bool  # may let this manager's admins log in as its managed accounts (owners only)


def permissions_for(*, membership: Membership) -> Permissions:
    """The flags of `membership` in its account, from ROLE_PERMISSIONS and permission_applies: the
    same two checks `accounts.access.account_access` makes before it opens a page."""
    account, role = membership.account, membership.role

    def may(permission: str) -> bool:
        return permission_applies(account, permission) and role_allows(role, permission)

    pricing = can_see_pricing(account)
    return Permissions(
        view_account=may(VIEW_ACCOUNT),
        manage_account=may(MANAGE_ACCOUNT),
        manage_managed_accounts=may(MANAGE_MANAGED_ACCOUNTS),
        view_billing=may(VIEW_BILLING),
        manage_billing=may(MANAGE_BILLING),
        resell=may(RESELL),
        view_reports=may(VIEW_REPORTS),
        submit_usage=may(SUBMIT_USAGE),
        see_pricing=pricing,
        view_rates=may(VIEW_BILLING) and pricing,
        log_in_as=account.is_manager and account.is_enabled and _role_may_log_in_as(role=role, manager=account),
        grant_log_in_as=account.is_manager and may_grant_log_in_as(role),
    )


def can_assign_role(*, actor_role: str, role: str) -> bool:
    """Admins manage members but cannot create, change or remove owners."""
    return actor_role == Role.OWNER or (actor_role == Role.ADMIN and role != Role.OWNER)


def may_grant_log_in_as(role: str | None) -> bool:
    """Only a manager's owners decide whether its admins may log in as its managed accounts: an
    admin must not grant the right to itself."""
    return role == Role.OWNER


def can_see_pricing(account: Account) -> bool:
    """Whether the people working in `account` (its users, or a manager acting as it) may see any
    rate, cost or priced amount. Pages, CSV exports, charts, e-mails and the API all ask this.

    A manager always sees the pricing of its own managed accounts from its own pages; what it sees
    while logged in as one is decided by that account, like for its own users."""
    return not (account.is_managed and account.pricing_hidden)


def can_see_manager_notes(account: Account) -> bool:
    """Whether `account` may read its manager's free-text notes on the reseller invoices billed to
    it (how it was paid, why it was voided): they may name the manager's own costs, so never where
    pricing is hidden. The invoice page and the audit log both ask this."""
    return can_see_pricing(account)


@dataclass(frozen=True)
class Denial:
    """Why logging in as a managed account is not (or no longer) allowed: `code` for the audit log,
    `message` for the person."""

    code: str
    message: str


@dataclass(frozen=True)
class LogInAsFacts:
    """What the log-in-as rule looks at. `log_in_as_denial` gathers them before a session starts,
    `acting_facts` on every request of one; `log_in_as_rule` is the one rule over them."""

    managed_account: Account  # with its manager loaded
    role: str | None  # the real person's role in the managed account's manager; None when not a member
    owner: User | None  # the managed account's owner the person becomes (or has become)
    owner_elsewhere: bool  # that owner belongs to some other account too


def log_in_as_rule(facts: LogInAsFacts) -> Denial | None:
    """Allowed for the owners of the managed account's manager (and its admins when the owner has
    granted it), into an enabled managed account whose owner belongs to no other account, never
    from a disabled manager account."""
    managed = facts.managed_account
    if not managed.is_managed:
        return Denial("not_managed", "Only managed accounts can be logged in as.")
    manager = managed.managed_by
    if facts.role is None:
        return Denial("not_a_member", "This managed account is not yours.")
    if not manager.is_enabled:
        return Denial("manager_not_enabled", "Your account is disabled.")
    if not _role_may_log_in_as(role=facts.role, manager=manager):
        return Denial(
            "not_allowed",
            "Only the manager account's owners (or admins the owner allows) can log in as a managed account.",
        )
    if managed.status == Account.Status.CANCELLED:
        return Denial("account_not_enabled", f"{managed.name} is cancelled: it can no longer be logged in as.")
    if not managed.is_enabled:
        status = managed.get_status_display().lower()
        return Denial("account_not_enabled", f"{managed.name} is {status}; enable it first.")
    owner = facts.owner
    if owner is None or not owner.is_active:
        return Denial("no_owner", f"{managed.name} has no active owner to log in as.")
    if owner.is_staff or facts.owner_elsewhere:
        return Denial(
            "owner_elsewhere", f"{managed.name}'s owner also belongs to other accounts, so it cannot be logged in as."
        )
    return None


def log_in_as_denial(*, user: User, managed_account: Account, already_acting: bool) -> str | None:
    """Why `user` may not log in as `managed_account` now, or None when they may (`log_in_as_rule`),
    never while already acting (no chaining)."""
    if already_acting:
        return "You are already logged in as a managed account. Return to your own account first."
    if not managed_account.is_managed:
        return "Only managed accounts can be logged in as."
    denial = log_in_as_rule(log_in_as_facts(user=user, managed_account=managed_account))
    return denial.message if denial else None


def log_in_as_facts(*, user: User | None, managed_account: Account) -> LogInAsFacts:
    """`log_in_as_rule`'s facts before acting as a (managed) `managed_account`: `user`'s role in its
    manager (None for nobody) and the owner they would act as. Log-in-as asks it once; a manager key's
    `X-Managed-Account-Id` on every request (accounts.api_access.on_behalf)."""
    memberships = Membership.objects.filter(user=user, account=managed_account.managed_by)
    role = memberships.values_list("role", flat=True).first() if user is not None else None
    owner = log_in_as_target(managed_account)
    elsewhere = owner is not None and owner.memberships.exclude(account=managed_account).exists()
    return LogInAsFacts(managed_account=managed_account, role=role, owner=owner, owner_elsewhere=elsewhere)


def acting_facts(*, real_user_id: int, acted_as: User, manager_id: int, managed_account_id: int) -> LogInAsFacts:
    """`log_in_as_rule`'s facts for a session already acting as `acted_as` in a managed account, in
    one query (the real person's membership of the manager, and every membership of `acted_as` with
    its account and manager), so every acting request can afford the check. A second query only
    when `acted_as` left the managed account."""
    memberships = list(
        Membership.objects.filter(
            Q(user_id=real_user_id, account_id=manager_id) | Q(user_id=acted_as.pk)
        ).select_related("account", "account__manager")
    )
    role = next((m.role for m in memberships if m.user_id == real_user_id and m.account_id == manager_id), None)
    own = [m for m in memberships if m.user_id == acted_as.pk]
    here = next((m for m in own if m.account_id == managed_account_id), None)
    if here is None:
        managed = Account.objects.select_related("manager").get(pk=managed_account_id)
        return LogInAsFacts(managed_account=managed, role=role, owner=None, owner_elsewhere=bool(own))
    owner = acted_as if here.role == Role.OWNER else None
    return LogInAsFacts(managed_account=here.account, role=role, owner=owner, owner_elsewhere=len(own) > 1)


def _role_may_log_in_as(*, role: str, manager: Account) -> bool:
    """Owners of a manager may log in as its managed accounts; its admins when the owner allows it."""
    return role == Role.OWNER or (role == Role.ADMIN and manager.admins_can_log_in_as)


def log_in_as_target(managed_account: Account) -> User | None:
    """The user a manager becomes when logging in as a managed account: its first owner."""
    membership = managed_account.memberships.filter(role=Role.OWNER).select_related("user").first()
    return membership.user if membership else None


def hijack_permission_check(*, hijacker: User, hijacked: User) -> bool:
    """django-hijack's own hook. Our log-in-as view checks `log_in_as_denial` on the managed
    account itself; hijack's generic user-to-user URLs are not mounted, so nothing else may."""
    return False
