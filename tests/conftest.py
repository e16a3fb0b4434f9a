"""Persona fixtures shared by the whole suite.

The world: a manager account M (owner, admin, billing and reporting members) with two managed
accounts A and B; another manager O with its own managed account; a standard account S.
Each persona is a signed-in Django test client.
"""

import importlib
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse

from accounts.models import Account, Membership, Role, User
from tests.factories import AccountFactory, MembershipFactory, UserFactory, account_with_owner

PERSONAS = (
    "anonymous",
    "owner",
    "admin",
    "billing",
    "reporting",
    "managed_owner",
    "standard_owner",
    "other_tenant",
    "manager_acting",
)


@dataclass
class World:
    manager: Account
    managed: Account
    sibling: Account
    other_manager: Account
    other_managed: Account
    standard: Account
    users: dict[str, User]


@pytest.fixture
def catalogue(transactional_db) -> None:
    """The products and list prices. A data migration loads them, but each transactional test flushes
    every table when it ends, so a transactional test that needs them asks for this."""
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)


@pytest.fixture
def world(db) -> World:
    manager, owner = account_with_owner(name="Acme Reseller", manager_kind=True)
    users = {"owner": owner}
    for role in (Role.ADMIN, Role.BILLING, Role.REPORTING):
        users[role] = UserFactory(email=f"{role}@acme.example.com")
        MembershipFactory(user=users[role], account=manager, role=role)
    managed, users["managed_owner"] = account_with_owner(name="Alpine Voice", managed_kind=True, manager=manager)
    sibling, users["sibling_owner"] = account_with_owner(name="Blue Harbor", managed_kind=True, manager=manager)
    other_manager, users["other_tenant"] = account_with_owner(name="Other Reseller", manager_kind=True)
    other_managed, users["other_managed_owner"] = account_with_owner(
        name="Other Managed", managed_kind=True, manager=other_manager
    )
    standard, users["standard_owner"] = account_with_owner(name="Solo Standard")
    return World(manager, managed, sibling, other_manager, other_managed, standard, users)


def log_in_as(client: Client, manager: Account, managed: Account):
    """Start a log-in-as session the way the browser does: a POST to the managed account's URL."""
    url = reverse("managed_log_in_as", args=[manager.public_id, managed.public_id])
    return client.post(url)


@pytest.fixture
def persona(world):
    """persona("owner") -> a Client signed in as that persona (anonymous: not signed in)."""

    def make(name: str) -> Client:
        assert name in PERSONAS, name
        client = Client()
        if name == "anonymous":
            return client
        if name == "manager_acting":
            client.force_login(world.users["owner"])
            response = log_in_as(client, world.manager, world.managed)
            assert response.status_code == 302, response
            return client
        client.force_login(world.users[name])
        return client

    return make


@pytest.fixture
def owner_client(persona) -> Client:
    return persona("owner")


@pytest.fixture
def real_worker():
    """A real Celery worker (in a thread) on the configured broker: the file-system one on the
    embedded defaults, Redis in .ci/run's second pass. Tasks stop running eagerly meanwhile."""
    from celery.contrib.testing.worker import start_worker
    from django.conf import settings

    from portal.celery import app

    app.conf.task_always_eager = False
    app.control.purge()
    try:
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=10):
            yield
    finally:
        app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER


@pytest.fixture(scope="session")
def localstripe():
    """One localstripe (a fake Stripe API) per test session, on a free loopback port, stopped at the
    end; the portal's Stripe settings point at it meanwhile. Payment tests request it."""
    from django.conf import settings

    from tests import localstripe_server

    server = localstripe_server.start()
    saved = settings.STRIPE_API_BASE, settings.STRIPE_JS_URL
    settings.STRIPE_API_BASE, settings.STRIPE_JS_URL = server.url, f"{server.url}/js.stripe.com/v3/"
    try:
        yield server
    finally:
        settings.STRIPE_API_BASE, settings.STRIPE_JS_URL = saved
        server.stop()


def make_managed_accounts(manager: Account, count: int) -> list[Account]:
    """Many managed accounts at once (bulk), each with an owner, as the list pages see them."""
    start = Account.objects.count()
    accounts = Account.objects.bulk_create(
        Account(
            name=f"Bulk Customer {start + i:05d}",
            email=f"bulk{start + i}@customers.example.com",
            kind=Account.Kind.MANAGED,
            manager=manager,
            billing_mode=Account.BillingMode.ROLLUP if i % 2 else Account.BillingMode.SEPARATE,
            pricing_hidden=i % 10 == 0,
            status=Account.Status.DISABLED if i % 13 == 0 else Account.Status.ENABLED,
        )
        for i in range(count)
    )
    users = User.objects.bulk_create(User(email=a.email, password="!") for a in accounts)
    Membership.objects.bulk_create(
        Membership(user=u, account=a, role=Role.OWNER) for u, a in zip(users, accounts, strict=True)
    )
    return accounts


__all__ = ["AccountFactory", "log_in_as", "make_managed_accounts"]
