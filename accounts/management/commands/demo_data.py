from datetime import datetime, timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Q

from accounts import services
from accounts.actor import Actor
from accounts.demo import (
    DEMO_PASSWORD,
    MANAGED_NAMES,
    MANAGER_AGE,
    MANAGER_EMAIL,
    MANAGER_NAME,
    STAFF_EMAIL,
    STANDARD_AGE,
    STANDARD_EMAIL,
    STANDARD_NAME,
    managed_created_at,
    managed_owner_email,
)
from accounts.models import Account, AuditEvent, Membership, Role, User

__all__ = ["DEMO_PASSWORD", "MANAGED_NAMES", "MANAGER_EMAIL", "Command"]  # demo_limits and tests import them


class Command(BaseCommand):
    help = (
        "Load demo data (idempotent) and print the demo logins: a manager that joined five months ago and "
        "its customers since. Then `simulate_usage --demo` and `demo_close` give them their history."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if User.objects.filter(email=MANAGER_EMAIL).exists():
            self.stdout.write("Demo data already loaded.")
        else:
            with transaction.atomic():
                self._load()
                call_command("demo_limits", stdout=self.stdout)  # controls' spend and credit limits
            self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        call_command("demo_webhooks", stdout=self.stdout)  # webhooks' endpoint, idempotent on every run
        self._print_logins()

    def _user(self, email: str, *, staff: bool = False) -> User:
        user = User.objects.create_user(email=email, password=DEMO_PASSWORD, is_staff=staff, is_superuser=staff)
        EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
        return user

    def _load(self) -> None:
        staff = self._user(STAFF_EMAIL, staff=True)
        platform = Actor.platform_staff(staff)
        owner = self._user(MANAGER_EMAIL)
        owner.first_name, owner.last_name = "Maya", "Manager"
        owner.save()
        loaded = owner.date_joined  # demo_accounts(): the demo's accounts are dated before this
        manager = services.create_manager_account(
            name=MANAGER_NAME, owner_email=owner.email, owner_password=None, actor=platform
        )
        self._date(manager, loaded - MANAGER_AGE)
        for days, role in ((9, Role.ADMIN), (16, Role.BILLING), (40, Role.REPORTING)):
            member = Membership.objects.create(user=self._user(f"{role}@example.com"), account=manager, role=role)
            Membership.objects.filter(pk=member.pk).update(created_at=manager.created_at + timedelta(days=days))
        actor = Actor(user=owner)
        for index, name in enumerate(MANAGED_NAMES):
            managed = services.create_managed_account(
                manager=manager,
                name=name,
                owner_email=managed_owner_email(name),
                owner_password=DEMO_PASSWORD if index == 0 else None,
                billing_mode=Account.BillingMode.ROLLUP if index % 2 == 0 else Account.BillingMode.SEPARATE,
                allow_custom_pricing=index % 3 == 0,
                pricing_hidden=index % 5 == 1,
                actor=actor,
            )
            self._date(managed, managed_created_at(index, loaded))
            # In trouble: three customers disabled by their manager (no usage since), one cancelled.
            if index % 7 == 6 or index == len(MANAGED_NAMES) - 1:
                action = "cancel" if index == len(MANAGED_NAMES) - 1 else "disable"
                services.change_managed_account_status(managed=managed, action=action, actor=actor)
        standard_owner = self._user(STANDARD_EMAIL)
        standard = services.create_standard_account(owner=standard_owner, name=STANDARD_NAME)
        self._date(standard, loaded - STANDARD_AGE)

    def _date(self, account: Account, created_at: datetime) -> None:
        """Dates a demo account, its owner's membership and the audit events of its creation back to
        when it joined."""
        Account.objects.filter(pk=account.pk).update(created_at=created_at)
        Membership.objects.filter(account=account, role=Role.OWNER).update(created_at=created_at)
        # Called as soon as it is created: every event about it so far is of its creation.
        AuditEvent.objects.filter(Q(account=account) | Q(related_account=account)).update(created_at=created_at)
        account.created_at = created_at

    def _print_logins(self) -> None:
        rows = [
            ("platform staff (admin site /staff/)", STAFF_EMAIL),
            ("manager owner", MANAGER_EMAIL),
            ("manager admin", "admin@example.com"),
            ("manager billing", "billing@example.com"),
            ("manager reporting", "reporting@example.com"),
            ("managed account owner", managed_owner_email(MANAGED_NAMES[0])),
            ("standard account owner", STANDARD_EMAIL),
        ]
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for label, email in rows:
            self.stdout.write(f"  {label:38} {email}")
