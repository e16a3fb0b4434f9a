from typing import Any

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, Membership, Role, User

DEMO_PASSWORD = "mission-control-demo"
MANAGER_EMAIL = "manager@example.com"
MANAGED_NAMES = [
    "Alpine Voice", "Blue Harbor Telecom", "Cedar Call Centre", "Delta Dispatch", "Evergreen Clinics",
    "Fjord Freight", "Granite Legal", "Harbor Hotels", "Iris Insurance", "Juniper Schools",
    "Kestrel Logistics", "Lumen Realty", "Maple Dental", "Nimbus Cloud Desk", "Orchid Florists",
    "Pioneer Plumbing", "Quartz Accounting", "Redwood Retail", "Summit Fitness", "Tidewater Marine",
    "Umber Studios", "Vantage Security", "Willow Vets", "Xenon Labs", "Yarrow Farms",
]  # fmt: skip


class Command(BaseCommand):
    help = "Load demo data (idempotent) and print the demo logins."

    def handle(self, *args: Any, **options: Any) -> None:
        if User.objects.filter(email=MANAGER_EMAIL).exists():
            self.stdout.write("Demo data already loaded.")
        else:
            with transaction.atomic():
                self._load()
            self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        self._print_logins()

    def _user(self, email: str, *, staff: bool = False) -> User:
        user = User.objects.create_user(email=email, password=DEMO_PASSWORD, is_staff=staff, is_superuser=staff)
        EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
        return user

    def _load(self) -> None:
        staff = self._user("staff@example.com", staff=True)
        platform = Actor.platform_staff(staff)
        owner = self._user(MANAGER_EMAIL)
        owner.first_name, owner.last_name = "Maya", "Manager"
        owner.save()
        manager = services.create_manager_account(
            name="Acme Reseller Networks", owner_email=owner.email, owner_password=None, actor=platform
        )
        for role in (Role.ADMIN, Role.BILLING, Role.REPORTING):
            Membership.objects.create(user=self._user(f"{role}@example.com"), account=manager, role=role)
        actor = Actor(user=owner)
        for index, name in enumerate(MANAGED_NAMES):
            slug = name.lower().replace(" ", "-")
            managed = services.create_managed_account(
                manager=manager,
                name=name,
                owner_email=f"owner@{slug}.example.com",
                owner_password=DEMO_PASSWORD if index == 0 else None,
                billing_mode=Account.BillingMode.ROLLUP if index % 2 == 0 else Account.BillingMode.SEPARATE,
                allow_custom_pricing=index % 3 == 0,
                pricing_hidden=index % 5 == 1,
                actor=actor,
            )
            if index % 7 == 6:
                services.change_managed_account_status(managed=managed, action="disable", actor=actor)
            if index == len(MANAGED_NAMES) - 1:
                services.change_managed_account_status(managed=managed, action="cancel", actor=actor)
        standard_owner = self._user("standard@example.com")
        services.create_standard_account(owner=standard_owner, name="Solo Standard Co")

    def _print_logins(self) -> None:
        first_managed = MANAGED_NAMES[0].lower().replace(" ", "-")
        rows = [
            ("platform staff (admin site /staff/)", "staff@example.com"),
            ("manager owner", MANAGER_EMAIL),
            ("manager admin", "admin@example.com"),
            ("manager billing", "billing@example.com"),
            ("manager reporting", "reporting@example.com"),
            ("managed account owner", f"owner@{first_managed}.example.com"),
            ("standard account owner", "standard@example.com"),
        ]
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for label, email in rows:
            self.stdout.write(f"  {label:38} {email}")
