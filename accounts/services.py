"""Everything that changes accounts, memberships and invitations. Each function commits the change
and its audit event in one transaction; e-mails leave only after the commit."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, timedelta
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import audit
from accounts.actor import Actor
from accounts.errors import Refusal
from accounts.locks import lock_row
from accounts.models import Account, ApiKey, Invitation, Membership, Role, User, month_of
from accounts.permissions import can_assign_role, may_grant_log_in_as
from accounts.tasks import send_invitation_email


class ServiceError(Refusal):
    """A refused change to accounts, memberships, invitations or keys."""


class ManagedAccountLimitReached(ServiceError):
    pass


class EmailTaken(ServiceError):
    pass


class InvalidTransition(ServiceError):
    pass


# --- Accounts -------------------------------------------------------------------------------


EMAIL_TAKEN_MESSAGE = "A user with this e-mail address already exists."


def email_in_use(email: str) -> bool:
    return User.objects.filter(email__iexact=email.strip()).exists()


def _checked_owner_address(*, email: str, password: str | None) -> str:
    """The owner e-mail of a new account, normalised, once it and the password pass the checks
    every new owner passes. They never depend on whether a user has the address, so a refusal says
    nothing about that."""
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ServiceError("Enter a valid e-mail address.", field="email") from None
    if password:
        try:
            validate_password(password, User(email=email))
        except ValidationError as error:
            raise ServiceError(" ".join(error.messages), field="password") from None
    return email


def _created_user(*, email: str, password: str | None) -> User | None:
    """A new user for a checked address (unverified, as allauth records it), or None when a user
    has the address already, or a concurrent request gave it one meanwhile."""
    if email_in_use(email):
        return None
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password)
    except IntegrityError:
        return None
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=False)
    return user


def _new_owner(*, email: str, password: str | None) -> User:
    """The new owner user of a manager account. Only platform staff create those, and they may be
    told that the address is taken; managers are not (see create_managed_account)."""
    email = _checked_owner_address(email=email, password=password)
    user = _created_user(email=email, password=password)
    if user is None:
        raise EmailTaken(EMAIL_TAKEN_MESSAGE, field="email")
    return user


@transaction.atomic
def create_standard_account(*, owner: User, name: str) -> Account:
    account = Account.objects.create(name=name.strip(), email=owner.email, kind=Account.Kind.STANDARD)
    Membership.objects.create(user=owner, account=account, role=Role.OWNER)
    audit.record(
        account=account, actor=Actor(user=owner), change_type=audit.ChangeType.ACCOUNT_CREATED, resource=account
    )
    return account


def manager_owner_problem(email: str) -> str | None:
    """Why a user with this e-mail cannot own a new manager account, or None."""
    owner = User.objects.filter(email__iexact=email.strip()).first()
    if owner is not None and owner.memberships.exclude(account__kind=Account.Kind.MANAGER).exists():
        return "That user belongs to a standard or managed account; a manager needs its own owner."
    return None


@transaction.atomic
def create_manager_account(
    *, name: str, owner_email: str, owner_password: str | None, actor: Actor, limit: int | None = None
) -> Account:
    """Platform staff only (admin site, `create_manager` command). The owner may be an existing user
    who owns or works for other manager accounts, never one of a standard or managed account."""
    problem = manager_owner_problem(owner_email)
    if problem:
        raise EmailTaken(problem, field="email")
    owner = User.objects.filter(email__iexact=owner_email.strip()).first()
    if owner is None:
        owner = _new_owner(email=owner_email, password=owner_password)
    account = Account.objects.create(
        name=name.strip(),
        email=owner.email,
        kind=Account.Kind.MANAGER,
        managed_account_limit=settings.MANAGED_ACCOUNT_LIMIT_DEFAULT if limit is None else limit,
    )
    Membership.objects.create(user=owner, account=account, role=Role.OWNER)
    audit.record(account=account, actor=actor, change_type=audit.ChangeType.ACCOUNT_CREATED, resource=account)
    return account


def active_managed_count(manager: Account) -> int:
    """Managed accounts that count against the limit: all but cancelled ones."""
    return manager.managed_accounts.exclude(status=Account.Status.CANCELLED).count()


@transaction.atomic
def create_managed_account(
    *,
    manager: Account,
    name: str,
    owner_email: str,
    owner_password: str | None,
    billing_mode: str,
    allow_custom_pricing: bool,
    pricing_hidden: bool,
    actor: Actor,
) -> Account:
    """A manager's new managed account and its owner.

    The owner e-mail never tells the manager whether someone already uses that address (issue 11,
    hole 9: "A user with this e-mail address already exists" let a manager probe any address at the
    API's rate). The choice: the account is created either way, with the same answer (page and
    API), and
    - an address nobody uses gets a new user, the owner, with the password given (or none: the
      owner then resets it to sign in);
    - an address a user already has gets an invitation to own the account, e-mailed to it, which
      that user accepts signed in as themselves (accounts.services.accept_invitation); the
      password given is ignored (nobody sets another person's password) but costs the same hashing,
      so the answer takes as long. Until accepted, the account has no owner: nobody signs in to it
      and it cannot be logged in as; once accepted, its owner also belongs to other accounts, so it
      still cannot be (DESIGN section 2, accounts.permissions.log_in_as_denial). An expired
      invitation leaves it ownerless: the manager cancels it and creates it again.
    What is refused (a bad address, a weak password, the limit) is refused alike for both. The
    manager can still tell the two apart afterwards (no log-in-as), at the price of a managed
    account per address, an audit event and an e-mail to the address's owner, never silently.
    """
    if not manager.is_manager:
        raise ServiceError("Only manager accounts can create managed accounts.")
    # The row lock serialises creations for one manager, so the limit holds when requests race.
    manager = lock_row(Account.objects, pk=manager.pk)
    limit = manager.managed_account_limit  # every manager has one (a check constraint)
    if limit is not None and active_managed_count(manager) >= limit:
        raise ManagedAccountLimitReached(
            f"You have reached your limit of {manager.managed_account_limit:,} managed accounts. "
            "Cancel one you no longer need, or ask support to raise the limit."
        )
    # Without an owner e-mail (optional in the API, as in Telnyx's) the account has no owner and no
    # invitation: its API keys work, nobody signs in to it, and it cannot be logged in as.
    email = _checked_owner_address(email=owner_email, password=owner_password or None) if owner_email else ""
    owner = _created_user(email=email, password=owner_password or None) if email else None
    managed = Account.objects.create(
        name=name.strip(),
        email=email,
        kind=Account.Kind.MANAGED,
        manager=manager,
        billing_mode=billing_mode,
        allow_custom_pricing=allow_custom_pricing,
        pricing_hidden=pricing_hidden,
    )
    if owner is not None:
        Membership.objects.create(user=owner, account=managed, role=Role.OWNER)
    audit.record(
        account=manager,
        related_account=managed,
        actor=actor,
        change_type=audit.ChangeType.MANAGED_ACCOUNT_CREATED,
        resource=managed,
        changes=[
            {"field": f, "from": None, "to": getattr(managed, f)}
            for f in ("name", "email", "billing_mode", "allow_custom_pricing", "pricing_hidden")
        ],
    )
    if owner is None and email:
        _invite_existing_owner(managed=managed, email=email, password=owner_password or None, actor=actor)
    return managed


def _invite_existing_owner(*, managed: Account, email: str, password: str | None, actor: Actor) -> Invitation:
    """The owner of a new managed account whose address a user already has: an invitation to own
    it (see create_managed_account), audited on the managed account, e-mailed after the commit."""
    if password:
        make_password(password)  # the hashing creating a user with it would do: the same answer time
    invitation = Invitation.objects.create(
        account=managed,
        email=email,
        role=Role.OWNER,
        token=secrets.token_urlsafe(32),
        invited_by=actor.user or _first_owner(managed),
        expires_at=timezone.now() + timedelta(days=settings.INVITATION_MAX_AGE_DAYS),
    )
    audit.record(
        account=managed,
        actor=actor,
        change_type=audit.ChangeType.INVITATION_CREATED,
        resource=invitation,
        changes=[{"field": "email", "from": None, "to": email}, {"field": "role", "from": None, "to": Role.OWNER}],
    )
    transaction.on_commit(lambda: _send_invitation(invitation.pk))
    return invitation


def _first_owner(managed: Account) -> User:
    """Who invites when the key that asked has lost its creator: the manager's first owner."""
    owners = Membership.objects.select_related("user").filter(account__managed_accounts=managed, role=Role.OWNER)
    first = owners.order_by("created_at", "id").first()
    if first is None:  # every manager has an owner; without one, nobody could be named as inviting
        raise ServiceError("Your account has no owner to send the invitation in its name.")
    return first.user


MANAGED_SETTINGS_FIELDS = ("name", "pricing_hidden", "allow_custom_pricing")


@transaction.atomic
def update_managed_account(*, managed: Account, actor: Actor, **values: object) -> Account:
    unknown = set(values) - set(MANAGED_SETTINGS_FIELDS)
    if unknown:
        raise ServiceError(f"Cannot change {', '.join(sorted(unknown))}.")
    managed = lock_row(Account.objects, pk=managed.pk)
    if managed.status == Account.Status.CANCELLED:
        raise InvalidTransition("A cancelled account cannot be changed.")
    before = {f: getattr(managed, f) for f in MANAGED_SETTINGS_FIELDS}
    for field, value in values.items():
        setattr(managed, field, value.strip() if isinstance(value, str) else value)
    changes = audit.field_changes(managed, before, MANAGED_SETTINGS_FIELDS)
    if changes:
        managed.save()
        audit.record(
            account=managed.managed_by,
            related_account=managed,
            actor=actor,
            change_type=audit.ChangeType.MANAGED_ACCOUNT_UPDATED,
            resource=managed,
            changes=changes,
        )
    return managed


# --- Billing mode ---------------------------------------------------------------------------------


def next_month(month: date) -> date:
    """The first day of the month after `month`."""
    return (month + timedelta(days=32)).replace(day=1)


def _mode_label(mode: str) -> str:
    return Account.BillingMode(mode).label.lower()


def _own_balance(account: Account) -> Decimal:
    """The account's own balance: billing's Balance row, read through the ORM's reverse one-to-one
    `balance` (accounts never imports billing, as accounts.selectors), zero when it has none."""
    amount = Account.objects.filter(pk=account.pk).values_list("balance__amount", flat=True).first()
    return amount or Decimal(0)


def billing_mode_refusal(managed: Account, mode: str, *, at_switch: bool = False) -> str | None:
    """Why `managed` cannot go to `mode` billing, or None. Going to roll-up needs its own balance
    settled when the change is scheduled (zero: refunded, or transferred back to the manager
    through the ledger's transfer), and again when it takes effect (`at_switch`): then it may not
    hold credit, which roll-up would strand; what it owes by then is its usage since, billed by
    the close of its last separate month on its own invoice, which the manager can settle with a
    transfer (billing.ledger)."""
    if mode != Account.BillingMode.ROLLUP:
        return None
    held = _own_balance(managed)
    if held == 0 or (at_switch and held < 0):
        return None
    what = f"holds USD {held:,.2f} of credit" if held > 0 else f"owes USD {-held:,.2f}"
    return (
        f"{managed.name} {what} on its own balance. Settle it first (transfer its credit back to you, or "
        "transfer credit to cover what it owes) so that its balance is zero; roll-up billing has no balance "
        "of its own."
    )


def _billing_changes(before: str, after: str, start: date) -> list[audit.FieldChange]:
    return [
        {"field": "billing_mode", "from": before, "to": after},
        {"field": "billing_mode_from", "from": None, "to": start.isoformat()},
    ]


@transaction.atomic
def schedule_billing_mode_change(*, managed: Account, mode: str, actor: Actor) -> Account:
    """Schedules `managed` to be billed by `mode` from the start of next UTC month
    (Account.billing_mode_in holds the rule; apply_billing_mode_changes makes it take effect).
    Scheduling what is already scheduled changes nothing. Refused for a cancelled account, while
    another change is pending, in the month a change took effect (a mode holds a whole month at
    least), and, going to roll-up, while the account's own balance is not settled."""
    if mode not in Account.BillingMode.values:
        raise ServiceError("Choose roll-up or separate billing.", field="billing_mode")
    managed = lock_row(Account.objects, pk=managed.pk)
    if not managed.is_managed:
        raise ServiceError("Only a managed account has a billing mode.")
    if managed.status == Account.Status.CANCELLED:
        raise InvalidTransition("A cancelled account cannot be changed.")
    this_month = month_of()
    current = managed.billing_mode_in(this_month)
    if managed.billing_mode_change_pending:
        if managed.billing_mode_next == mode:
            return managed
        raise ServiceError(
            f"A change to {_mode_label(managed.billing_mode_next)} billing from {managed.billing_mode_from} is "
            "pending: cancel it to keep the current mode.",
            field="billing_mode",
        )
    if mode == current:
        return managed
    if managed.billing_mode_from == this_month:
        raise ServiceError(
            f"{managed.name} changed to {_mode_label(current)} billing on {this_month}; a billing mode holds for a "
            f"whole month at least, so the next change can be scheduled from {next_month(this_month)}.",
            field="billing_mode",
        )
    refusal = billing_mode_refusal(managed, mode)
    if refusal is not None:
        raise ServiceError(refusal, field="billing_mode")
    start = next_month(this_month)
    managed.billing_mode_next, managed.billing_mode_from = mode, start
    managed.save(update_fields=["billing_mode_next", "billing_mode_from", "updated_at"])
    audit.record(
        account=managed.managed_by,
        related_account=managed,
        actor=actor,
        change_type=audit.ChangeType.BILLING_MODE_CHANGE_SCHEDULED,
        resource=managed,
        changes=_billing_changes(current, mode, start),
    )
    return managed


@transaction.atomic
def cancel_billing_mode_change(*, managed: Account, actor: Actor, reason: str = "") -> Account:
    """Cancels the pending billing-mode change of `managed` before it takes effect: the account
    keeps its mode (both change fields cleared, so every month reads `billing_mode` again)."""
    managed = lock_row(Account.objects, pk=managed.pk)
    if managed.billing_mode_from is None or managed.billing_mode_from < month_of() or not managed.billing_mode_next:
        raise ServiceError("No billing-mode change is pending.", field="billing_mode")
    if managed.billing_mode_from == month_of() and managed.billing_mode == managed.billing_mode_next:
        raise ServiceError("The billing-mode change has taken effect already.", field="billing_mode")
    _clear_billing_change(managed, actor=actor, reason=reason)
    return managed


def _clear_billing_change(managed: Account, *, actor: Actor, reason: str) -> None:
    assert managed.billing_mode_from is not None
    changes = _billing_changes(managed.billing_mode, managed.billing_mode_next, managed.billing_mode_from)
    if reason:
        changes.append({"field": "reason", "from": None, "to": reason})
    managed.billing_mode_next, managed.billing_mode_from = "", None
    managed.save(update_fields=["billing_mode_next", "billing_mode_from", "updated_at"])
    audit.record(
        account=managed.managed_by,
        related_account=managed,
        actor=actor,
        change_type=audit.ChangeType.BILLING_MODE_CHANGE_CANCELLED,
        resource=managed,
        changes=changes,
    )


def set_billing_mode(*, managed: Account, mode: str, actor: Actor) -> Account:
    """The API's `rollup_billing`: asking for the mode in force now while a change is pending
    cancels the change; asking for another schedules it (schedule_billing_mode_change)."""
    if managed.billing_mode_change_pending and mode == managed.billing_mode:
        return cancel_billing_mode_change(managed=managed, actor=actor)
    return schedule_billing_mode_change(managed=managed, mode=mode, actor=actor)


SETTLE_AT_SWITCH = "its own balance held credit when the change was to take effect: settle it and schedule again"


def apply_billing_mode_changes(*, month: date | None = None) -> dict[str, int]:
    """Run by beat early on the 1st (UTC), before the close, and again hourly that day: each
    change due by `month` (this month by default) takes effect, one account per transaction:
    `billing_mode` is flipped and `billing_mode_next`/`billing_mode_from` stay as the record of the
    change, so the close of the month before still bills it by the old mode
    (Account.billing_mode_in). A change to roll-up whose account's own balance is not settled by
    then is refused when it holds credit (billing_mode_refusal): cancelled, audited with the reason,
    the account keeps separate billing.
    Idempotent. Returns {"changed": n, "refused": n, "skipped": n}."""
    done = {"changed": 0, "refused": 0, "skipped": 0}
    for pk in Account.objects.billing_mode_changes_due(month).order_by("pk").values_list("pk", flat=True):
        done[_apply_billing_mode_change(pk, month_of(month))] += 1
    return done


@transaction.atomic
def _apply_billing_mode_change(pk: int, month: date) -> str:
    managed = lock_row(Account.objects, pk=pk)
    if not Account.objects.billing_mode_changes_due(month).filter(pk=pk).exists():
        return "skipped"  # a concurrent run applied it meanwhile
    actor = Actor(user=None, platform=True)
    if billing_mode_refusal(managed, managed.billing_mode_next, at_switch=True) is not None:
        _clear_billing_change(managed, actor=actor, reason=SETTLE_AT_SWITCH)
        return "refused"
    assert managed.billing_mode_from is not None
    before, managed.billing_mode = managed.billing_mode, managed.billing_mode_next
    managed.save(update_fields=["billing_mode", "updated_at"])
    audit.record(
        account=managed.managed_by,
        related_account=managed,
        actor=actor,
        change_type=audit.ChangeType.BILLING_MODE_CHANGED,
        resource=managed,
        changes=_billing_changes(before, managed.billing_mode, managed.billing_mode_from),
    )
    return "changed"


# The status changes a manager can make, and the statuses each one starts from.
STATUS_ACTIONS = {
    "disable": (Account.Status.DISABLED, {Account.Status.ENABLED}, audit.ChangeType.MANAGED_ACCOUNT_DISABLED),
    "enable": (Account.Status.ENABLED, {Account.Status.DISABLED}, audit.ChangeType.MANAGED_ACCOUNT_ENABLED),
    "cancel": (
        Account.Status.CANCELLED,
        {Account.Status.ENABLED, Account.Status.DISABLED},
        audit.ChangeType.MANAGED_ACCOUNT_CANCELLED,
    ),
}


@transaction.atomic
def change_managed_account_status(*, managed: Account, action: str, actor: Actor) -> Account:
    current, previous = _switch_status(account=managed, action=action)
    target, _, change_type = STATUS_ACTIONS[action]
    audit.record(
        account=current.managed_by,
        related_account=current,
        actor=actor,
        change_type=change_type,
        resource=current,
        changes=[{"field": "status", "from": previous, "to": target}],
    )
    return current


# Platform staff disable and enable manager and standard accounts (the admin site); a managed
# account's status is its manager's to change. A disabled manager blocks its managed accounts without
# changing their statuses (`Account.blocked_reason`).
STAFF_STATUS_ACTIONS = ("disable", "enable")


@transaction.atomic
def change_account_status(*, account: Account, action: str, actor: Actor) -> Account:
    if action not in STAFF_STATUS_ACTIONS:
        raise ServiceError(f"Staff cannot {action} an account here.", field="status")
    if account.is_managed:
        raise ServiceError(f"{account.name} is a managed account: its manager disables or enables it.", field="status")
    current, previous = _switch_status(account=account, action=action)
    audit.record(
        account=current,
        actor=actor,
        change_type=audit.ChangeType.ACCOUNT_UPDATED,
        resource=current,
        changes=[{"field": "status", "from": previous, "to": current.status}],
    )
    return current


def _switch_status(*, account: Account, action: str) -> tuple[Account, str]:
    """Move `account` by `action` (STATUS_ACTIONS) under its row lock; the account and its previous
    status. Refused when its status does not allow the action."""
    target, allowed_from, _ = STATUS_ACTIONS[action]
    current = lock_row(Account.objects, pk=account.pk)
    previous = current.status
    if previous not in allowed_from:
        if previous == target:
            raise InvalidTransition(
                f"{current.name} is already {target.label.lower()}; nothing changed.", field="status"
            )
        raise InvalidTransition(
            f"{current.name} is {current.get_status_display().lower()}, so it cannot be {target.label.lower()}.",
            field="status",
        )
    # Conditional update: only from an allowed status, so a concurrent change cannot be overwritten.
    updated = Account.objects.filter(pk=current.pk, status__in=allowed_from).update(
        status=target, updated_at=timezone.now()
    )
    if not updated:
        raise InvalidTransition("The account changed meanwhile; reload and try again.", field="status")
    current.refresh_from_db()
    return current, previous


@transaction.atomic
def update_account_settings(
    *, account: Account, actor: Actor, name: str, admins_can_log_in_as: bool | None = None
) -> Account:
    """`admins_can_log_in_as` (manager accounts; None leaves it alone) is the owners' to change only."""
    account = lock_row(Account.objects, pk=account.pk)
    before = {"name": account.name, "admins_can_log_in_as": account.admins_can_log_in_as}
    account.name = name.strip()
    if account.is_manager and admins_can_log_in_as is not None:
        if not may_grant_log_in_as(_actor_role(account, actor)):
            raise ServiceError(
                "Only an owner can choose whether admins may log in as managed accounts.",
                field="admins_can_log_in_as",
            )
        account.admins_can_log_in_as = admins_can_log_in_as
    changes = audit.field_changes(account, before, before.keys())
    if changes:
        account.save()
        audit.record(
            account=account,
            actor=actor,
            change_type=audit.ChangeType.ACCOUNT_UPDATED,
            resource=account,
            changes=changes,
        )
    return account


@transaction.atomic
def set_managed_account_limit(*, manager: Account, limit: int, actor: Actor) -> Account:
    """Platform staff raise (or lower) a manager's limit; existing managed accounts stay."""
    manager = lock_row(Account.objects, pk=manager.pk, kind=Account.Kind.MANAGER)
    before = {"managed_account_limit": manager.managed_account_limit}
    manager.managed_account_limit = limit
    manager.save(update_fields=["managed_account_limit", "updated_at"])
    audit.record(
        account=manager,
        actor=actor,
        change_type=audit.ChangeType.ACCOUNT_LIMIT_CHANGED,
        resource=manager,
        changes=audit.field_changes(manager, before, before.keys()),
    )
    return manager


# --- Members and invitations --------------------------------------------------------------------


def _actor_role(account: Account, actor: Actor) -> str | None:
    if actor.acting_as is not None:
        return Role.OWNER  # the manager acts with the managed owner's rights
    return Membership.objects.filter(account=account, user=actor.user).values_list("role", flat=True).first()


def _check_can_assign(*, account: Account, actor: Actor, role: str) -> None:
    actor_role = _actor_role(account, actor)
    if actor_role is None or not can_assign_role(actor_role=actor_role, role=role):
        raise ServiceError("Only an owner can add, change or remove owners.", field="role")


@transaction.atomic
def invite_member(*, account: Account, email: str, role: str, actor: Actor) -> Invitation:
    email = email.strip().lower()
    _check_can_assign(account=account, actor=actor, role=role)
    inviter = actor.user
    if inviter is None:  # the check above already refuses anyone who is not a member
        raise ServiceError("Only a member of the account can invite people.")
    if account.memberships.filter(user__email__iexact=email).exists():
        raise ServiceError("That person is already a member of this account.", field="email")
    if account.invitations.filter(email__iexact=email, status=Invitation.Status.PENDING).exists():
        raise ServiceError("An invitation to that address is already pending.", field="email")
    invitation = Invitation.objects.create(
        account=account,
        email=email,
        role=role,
        token=secrets.token_urlsafe(32),
        invited_by=inviter,
        expires_at=timezone.now() + timedelta(days=settings.INVITATION_MAX_AGE_DAYS),
    )
    audit.record(
        account=account,
        actor=actor,
        change_type=audit.ChangeType.INVITATION_CREATED,
        resource=invitation,
        changes=[{"field": "email", "from": None, "to": email}, {"field": "role", "from": None, "to": role}],
    )
    transaction.on_commit(lambda: _send_invitation(invitation.pk))
    return invitation


def _send_invitation(invitation_pk: int) -> None:
    send_invitation_email.delay(invitation_pk)


@transaction.atomic
def accept_invitation(*, invitation: Invitation, user: User) -> Membership:
    invitation = lock_row(Invitation.objects, pk=invitation.pk)
    if invitation.status != Invitation.Status.PENDING or invitation.expires_at <= timezone.now():
        raise ServiceError("This invitation is no longer valid. Ask for a new one.")
    if invitation.email.lower() != user.email.lower():
        raise ServiceError(f"This invitation was sent to {invitation.email}; sign in with that address to accept it.")
    if not invitation.account.is_usable:  # disabled, or under a disabled manager
        raise ServiceError("That account is disabled.")
    if invitation.account.memberships.filter(user=user).exists():
        raise ServiceError("You are already a member of this account.")
    invitation.status = Invitation.Status.ACCEPTED
    invitation.save(update_fields=["status"])
    membership = Membership.objects.create(user=user, account=invitation.account, role=invitation.role)
    audit.record(
        account=invitation.account,
        actor=Actor(user=user),
        change_type=audit.ChangeType.MEMBERSHIP_CREATED,
        resource=membership,
        changes=[
            {"field": "role", "from": None, "to": invitation.role},
            {"field": "user", "from": None, "to": user.email},
        ],
    )
    return membership


INVITEE_HAS_USER = "A user with this address exists already: sign in with it to accept the invitation."


@transaction.atomic
def join_by_invitation(*, invitation: Invitation, password: str) -> Membership:
    """An invitee with no user yet joins the inviting account: its user, with the invited address
    verified (the invitation's secret link reached that mailbox), and its membership. It creates no
    account of its own; refused as a whole, with nothing created, when the invitation is no longer
    valid or the password is too weak."""
    email = _checked_owner_address(email=invitation.email, password=password)
    user = _created_user(email=email, password=password)
    if user is None:
        raise EmailTaken(INVITEE_HAS_USER)
    EmailAddress.objects.filter(user=user, email=email).update(verified=True)
    return accept_invitation(invitation=invitation, user=user)


@transaction.atomic
def revoke_invitation(*, invitation: Invitation, actor: Actor) -> None:
    updated = Invitation.objects.filter(pk=invitation.pk, status=Invitation.Status.PENDING).update(
        status=Invitation.Status.REVOKED
    )
    if not updated:
        raise InvalidTransition("That invitation is no longer pending.")
    audit.record(
        account=invitation.account,
        actor=actor,
        change_type=audit.ChangeType.INVITATION_REVOKED,
        resource=invitation,
        changes=[{"field": "status", "from": "pending", "to": "revoked"}],
    )


def _other_owners_exist(membership: Membership) -> bool:
    return Membership.objects.filter(account=membership.account, role=Role.OWNER).exclude(pk=membership.pk).exists()


@transaction.atomic
def change_member_role(*, membership: Membership, role: str, actor: Actor) -> Membership:
    membership = lock_row(Membership.objects.select_related("account", "user"), pk=membership.pk)
    if membership.role == role:
        raise InvalidTransition(f"{membership.user.email} is already {membership.get_role_display().lower()}.")
    _check_can_assign(account=membership.account, actor=actor, role=membership.role)
    _check_can_assign(account=membership.account, actor=actor, role=role)
    if membership.role == Role.OWNER and not _other_owners_exist(membership):
        raise ServiceError("An account needs at least one owner; make someone else owner first.", field="role")
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit.record(
        account=membership.account,
        actor=actor,
        change_type=audit.ChangeType.MEMBERSHIP_ROLE_CHANGED,
        resource=membership,
        changes=[
            {"field": "role", "from": before, "to": role},
            {"field": "user", "from": membership.user.email, "to": membership.user.email},
        ],
    )
    return membership


@transaction.atomic
def remove_member(*, membership: Membership, actor: Actor) -> None:
    membership = lock_row(Membership.objects.select_related("account", "user"), pk=membership.pk)
    _check_can_assign(account=membership.account, actor=actor, role=membership.role)
    if membership.role == Role.OWNER and not _other_owners_exist(membership):
        raise ServiceError("The last owner cannot be removed.")
    audit.record(
        account=membership.account,
        actor=actor,
        change_type=audit.ChangeType.MEMBERSHIP_REMOVED,
        resource=membership,
        changes=[
            {"field": "user", "from": membership.user.email, "to": None},
            {"field": "role", "from": membership.role, "to": None},
        ],
    )
    membership.delete()


# --- API keys --------------------------------------------------------------------------------------------

API_KEY_PREFIX = "KEY"


def hash_api_key(raw: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def create_api_key(*, account: Account, name: str, actor: Actor) -> tuple[ApiKey, str]:
    """A new key for `account` and the key itself, which is never stored and never shown again."""
    blocked = account.blocked_reason
    if blocked is not None:
        raise ServiceError(f"{blocked}; it cannot have new API keys.")
    name = name.strip()
    if not name or len(name) > 100:
        raise ServiceError("Give the key a name of 1 to 100 characters.", field="name")
    prefix = secrets.token_hex(6)
    raw = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        account=account, name=name, prefix=prefix, key_hash=hash_api_key(raw), created_by=actor.user
    )
    audit.record(
        account=account,
        actor=actor,
        change_type=audit.ChangeType.API_KEY_CREATED,
        resource=key,
        changes=[{"field": "name", "from": None, "to": name}, {"field": "prefix", "from": None, "to": prefix}],
        related_account=account.manager if account.is_managed else None,
    )
    return key, raw


@transaction.atomic
def revoke_api_key(*, key: ApiKey, actor: Actor) -> ApiKey:
    revoked_at = timezone.now()
    updated = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=revoked_at)
    if not updated:
        raise InvalidTransition("That key is already revoked.")
    key.refresh_from_db()
    audit.record(
        account=key.account,
        actor=actor,
        change_type=audit.ChangeType.API_KEY_REVOKED,
        resource=key,
        related_account=key.account.manager if key.account.is_managed else None,
        changes=[{"field": "revoked_at", "from": None, "to": revoked_at.isoformat()}],
    )
    return key


def api_key_for(raw: str) -> ApiKey | None:
    """The active key of a usable account (`Account.blocked_reason`) that `raw` is, or None: a key of a
    disabled account, or of one under a disabled manager, is refused like a wrong key."""
    if not raw.startswith(API_KEY_PREFIX):
        return None
    key = ApiKey.objects.select_related("account", "account__manager").filter(key_hash=hash_api_key(raw)).first()
    if key is None or not key.is_active or not key.account.is_usable:
        return None
    return key


def record_sign_in(*, user: User, ip_address: str | None) -> None:
    """A real sign-in (not a log-in-as switch) is written to the log of each account of the user."""
    actor = Actor(user=user, ip_address=ip_address)
    for membership in user.memberships.select_related("account"):
        audit.record(
            account=membership.account, actor=actor, change_type=audit.ChangeType.USER_SIGNED_IN, resource=user
        )
