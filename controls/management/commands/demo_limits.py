"""Demo spend and credit limits on the demo manager's accounts (called by accounts' demo_data).

Staff give the manager a credit line; the manager gives its separately billed accounts credit
limits out of it, and puts limits on a few accounts: one so low that the first usage blocks it,
others that the simulator's usage takes near or over (alert only). Their states follow from usage."""

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.actor import Actor
from accounts.management.commands.demo_data import MANAGER_EMAIL
from accounts.models import Account, Membership, Role, User
from billing.ledger import services as ledger
from controls import services
from controls.models import SpendLimit

MANAGER_CREDIT = Decimal("5000.00")
MANAGED_CREDIT = Decimal("150.00")
# (business name, monthly USD, daily USD or None, action)
LIMITS = (
    ("Cedar Call Centre", Decimal("1.00"), None, SpendLimit.Action.BLOCK),  # blocked by its first usage
    ("Alpine Voice", Decimal("30.00"), None, SpendLimit.Action.ALERT),
    ("Blue Harbor Telecom", Decimal("25.00"), Decimal("2.00"), SpendLimit.Action.ALERT),
    ("Evergreen Clinics", Decimal("40.00"), None, SpendLimit.Action.BLOCK),
    ("Fjord Freight", Decimal("500.00"), None, SpendLimit.Action.BLOCK),
)


class Command(BaseCommand):
    help = "Give the demo manager's accounts credit and spend limits (idempotent)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        membership = Membership.objects.select_related("account", "user").filter(
            user__email=MANAGER_EMAIL, role=Role.OWNER, account__kind=Account.Kind.MANAGER
        )
        first = membership.first()
        if first is None:
            raise CommandError("Load the demo data first (manage.py demo_data).")
        manager, owner = first.account, first.user
        staff = User.objects.filter(is_staff=True).order_by("pk").first()
        ledger.set_credit_limit(account=manager, limit=MANAGER_CREDIT, actor=Actor.platform_staff(staff))
        actor = Actor(user=owner)
        managed = Account.objects.filter(manager=manager, status=Account.Status.ENABLED)
        for account in managed.paying_own_usage().order_by("pk"):
            services.set_managed_credit_limit(manager=manager, managed=account, limit=MANAGED_CREDIT, actor=actor)
        by_name = {a.name: a for a in managed}
        for name, monthly, daily, action in LIMITS:
            if name in by_name:
                services.set_spend_limit(
                    account=by_name[name],
                    set_by=SpendLimit.SetBy.MANAGER,
                    product=None,
                    monthly_amount=monthly,
                    daily_amount=daily,
                    action=action,
                    actor=actor,
                )
        self.stdout.write(f"Demo limits set on {len(LIMITS)} accounts; credit limits on the separately billed ones.")
