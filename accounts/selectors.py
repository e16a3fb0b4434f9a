"""Read-side queries shared by pages, the API and tasks."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from accounts.models import Account, Invitation, Membership, User


def accounts_for_user(user: User) -> QuerySet[Membership]:
    """The user's memberships with their accounts, for the account switcher (one query, lazily)."""
    return Membership.objects.filter(user=user).select_related("account").order_by("account__name")


def managed_accounts_for(manager: Account) -> QuerySet[Account]:
    return Account.objects.filter(manager=manager).order_by("-created_at", "-id")


def members_of(account: Account) -> QuerySet[Membership]:
    return account.memberships.select_related("user").order_by("created_at", "id")


def pending_invitations(account: Account) -> QuerySet[Invitation]:
    return account.invitations.filter(status=Invitation.Status.PENDING).select_related("invited_by")


def managed_account_counts(manager: Account) -> dict[str, int]:
    counts = dict.fromkeys(Account.Status.values, 0)
    for row in manager.managed_accounts.values("status").order_by().annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts
