"""Read-side queries shared by pages, the API and tasks."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict

from django.db.models import Case, Count, DecimalField, F, QuerySet, Value, When
from django.db.models.functions import Coalesce, Lower
from django.urls import reverse

from accounts.models import Account, Invitation, Membership, User
from portal.site import absolute_url

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


def accounts_for_user(user: User) -> QuerySet[Membership]:
    """The user's memberships with their accounts, for the account switcher (one query, lazily)."""
    return Membership.objects.filter(user=user).select_related("account", "account__manager").order_by("account__name")


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


# Billing owns balances (billing.models.Balance); accounts never imports billing, so they are read
# through the ORM's reverse one-to-one relation `balance`. A separately billed account without a
# balance row yet holds zero; a roll-up account holds none (its usage is billed to the manager).
_BALANCE_AMOUNT = DecimalField(max_digits=20, decimal_places=2)


class BalanceAnnotations(TypedDict):
    """What `with_balances` adds to each account."""

    balance_amount: Decimal | None
    balance_currency: str


def with_balances(accounts: QuerySet[Account]) -> QuerySet[WithAnnotations[Account, BalanceAnnotations]]:
    """Each account's balance in the same query, as `balance_amount` (None for roll-up) and
    `balance_currency`: the list stays one query however many accounts it pages through."""
    # The SQL form of Account.has_own_balance (every managed account here: separate or roll-up).
    return accounts.annotate(
        balance_amount=Case(
            When(
                Account.pays_own_usage(),
                then=Coalesce(F("balance__amount"), Value(Decimal(0)), output_field=_BALANCE_AMOUNT),
            ),
            default=None,
            output_field=_BALANCE_AMOUNT,
        ),
        balance_currency=Coalesce(F("balance__currency"), Value("USD")),
    )


def _name_holders(manager: Account) -> QuerySet[Account]:
    """The managed accounts whose names a new one of `manager` must not repeat unasked: all but the
    cancelled ones, compared in any case."""
    return manager.managed_accounts.exclude(status=Account.Status.CANCELLED)


def same_named_managed_accounts(manager: Account, name: str) -> list[Account]:
    """The manager's managed accounts already named `name` (`_name_holders`), at most five."""
    return list(_name_holders(manager).filter(name__iexact=name.strip()).order_by("pk")[:5])


def managed_names_in_use(manager: Account, names: list[str]) -> set[str]:
    """Of `names` (lower case), those one of the manager's accounts has (`_name_holders`), in one query."""
    holders = _name_holders(manager).annotate(lower_name=Lower("name"))
    return set(holders.filter(lower_name__in=names).values_list("lower_name", flat=True))


def invitation_url(invitation: Invitation) -> str:
    """The invitation's link as the e-mail carries it: absolute, on SITE_URL."""
    return absolute_url(reverse("accept_invitation", kwargs={"token": invitation.token}))
