"""What the demo data is: its fixed names and e-mails, when each account was "created", and which
accounts are the demo's own (`demo_accounts`): the demo steps of `./dev run` (simulating usage,
closing months) touch those and nothing a person created by hand beside them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q

from accounts.models import Account, AccountQuerySet, User

DEMO_PASSWORD = "mission-control-demo"
STAFF_EMAIL = "staff@example.com"
MANAGER_EMAIL = "manager@example.com"
MANAGER_NAME = "Acme Reseller Networks"
STANDARD_EMAIL = "standard@example.com"
STANDARD_NAME = "Solo Standard Co"
MANAGED_NAMES = [
    "Alpine Voice", "Blue Harbor Telecom", "Cedar Call Centre", "Delta Dispatch", "Evergreen Clinics",
    "Fjord Freight", "Granite Legal", "Harbor Hotels", "Iris Insurance", "Juniper Schools",
    "Kestrel Logistics", "Lumen Realty", "Maple Dental", "Nimbus Cloud Desk", "Orchid Florists",
    "Pioneer Plumbing", "Quartz Accounting", "Redwood Retail", "Summit Fitness", "Tidewater Marine",
    "Umber Studios", "Vantage Security", "Willow Vets", "Xenon Labs", "Yarrow Farms",
]  # fmt: skip

# The manager signed up about five months before the demo was loaded; its customers joined over
# the months since, the last a few days ago; the standard account in between.
MANAGER_AGE = timedelta(days=150, hours=3)
FIRST_MANAGED_AGE = timedelta(days=146)
LAST_MANAGED_AGE = timedelta(days=4)
STANDARD_AGE = timedelta(days=97, hours=5)


def managed_owner_email(name: str) -> str:
    return f"owner@{name.lower().replace(' ', '-')}.example.com"


def managed_created_at(index: int, loaded_at: datetime) -> datetime:
    """When the demo's `index`th managed account joined: evenly over the months since the
    manager, at a working hour that varies from one account to the next."""
    span = FIRST_MANAGED_AGE - LAST_MANAGED_AGE
    age = FIRST_MANAGED_AGE - span * index / (len(MANAGED_NAMES) - 1)
    day = (loaded_at - age).replace(hour=0, minute=0, second=0, microsecond=0)
    return min(day + timedelta(hours=8 + index * 5 % 9, minutes=index * 17 % 60), loaded_at - LAST_MANAGED_AGE)


def loaded_at() -> datetime | None:
    """When the demo was loaded (its manager owner joined then; the accounts are dated before it)."""
    owner = User.objects.filter(email=MANAGER_EMAIL).first()
    return owner.date_joined if owner else None


def demo_accounts() -> AccountQuerySet:
    """The accounts the demo created: its manager, its managed accounts (each by its fixed name and
    owner e-mail) and its standard account, all dated before the demo was loaded. An account a person
    adds by hand (even one named like a demo account) is created after that, and is not one of them."""
    loaded = loaded_at()
    if loaded is None:
        return Account.objects.none()
    managed = Q()
    for name in MANAGED_NAMES:
        managed |= Q(name=name, email=managed_owner_email(name))
    manager = Q(kind=Account.Kind.MANAGER, name=MANAGER_NAME, email=MANAGER_EMAIL)
    standard = Q(kind=Account.Kind.STANDARD, name=STANDARD_NAME, email=STANDARD_EMAIL)
    managers = Account.objects.filter(manager, created_at__lt=loaded)
    customers = Q(kind=Account.Kind.MANAGED, manager__in=managers) & managed
    return Account.objects.filter(manager | standard | customers, created_at__lt=loaded)
