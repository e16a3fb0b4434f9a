"""What platform staff do: the create_manager command, the admin site, the demo data."""

from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from accounts.management.commands.demo_data import DEMO_PASSWORD
from accounts.models import Account, AuditEvent, Invitation, Membership, Role, User
from tests.factories import UserFactory
from tests.mfa_support import force_login_with_mfa

STRONG_PASSWORD = "a-Strong-passphrase-42"


def db_state() -> dict:
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Account, User, Membership, Invitation, EmailAddress, AuditEvent)
    }


def create_manager(**options) -> str:
    out = StringIO()
    call_command("create_manager", stdout=out, **options)
    return out.getvalue()


# --- create_manager ------------------------------------------------------------------------------------


def test_the_command_creates_a_manager_with_its_owner_and_the_default_limit(db):
    output = create_manager(name="  Nova Reseller ", owner_email="Boss@Nova.example.com")

    account = Account.objects.get()
    assert account.name == "Nova Reseller"
    assert account.kind == Account.Kind.MANAGER
    assert account.manager is None
    assert account.managed_account_limit == 3000
    assert account.status == Account.Status.ENABLED
    owner = User.objects.get()
    assert owner.email == "boss@nova.example.com"
    assert not owner.has_usable_password()
    assert not owner.is_staff
    membership = Membership.objects.get()
    assert (membership.user, membership.account, membership.role) == (owner, account, Role.OWNER)
    event = AuditEvent.objects.get()
    assert event.change_type == "account.created"
    assert event.change_made_by == AuditEvent.MadeBy.PLATFORM
    assert f"Created manager account Nova Reseller ({account.public_id})." in output


def test_the_command_takes_a_limit_and_a_password(db):
    create_manager(name="Nova", owner_email="boss@nova.example.com", owner_password=STRONG_PASSWORD, limit=10)

    assert Account.objects.get().managed_account_limit == 10
    assert User.objects.get().check_password(STRONG_PASSWORD)


def test_the_command_reuses_the_owner_of_another_manager(world):
    owner = world.users["owner"]

    create_manager(name="Second Reseller", owner_email=owner.email.upper())

    second = Account.objects.get(name="Second Reseller")
    assert Membership.objects.get(account=second).user == owner


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "", "owner_email": "boss@nova.example.com"}, "--name must be 1 to 255 characters."),
        ({"name": "   ", "owner_email": "boss@nova.example.com"}, "--name must be 1 to 255 characters."),
        ({"name": "x" * 256, "owner_email": "boss@nova.example.com"}, "--name must be 1 to 255 characters."),
        ({"name": "Nova", "owner_email": "boss@nova.example.com", "limit": -1}, "--limit must be zero or more."),
    ],
    ids=["empty-name", "blank-name", "name-256-chars", "negative-limit"],
)
def test_the_command_refuses_bad_input_and_creates_nothing(world, options, message):
    before = db_state()

    with pytest.raises(CommandError, match=message):
        create_manager(**options)

    assert db_state() == before


@pytest.mark.parametrize("owner", ["standard_owner", "managed_owner"])
def test_the_command_refuses_an_owner_of_a_standard_or_managed_account(world, owner):
    email = world.users[owner].email
    before = db_state()

    with pytest.raises(CommandError, match="a manager needs its own owner"):
        create_manager(name="Nova", owner_email=email.upper())

    assert db_state() == before


def test_the_command_refuses_an_invalid_owner_email(db):
    with pytest.raises(CommandError):
        create_manager(name="Nova", owner_email="not-an-email")

    assert not User.objects.exists()
    assert not Account.objects.exists()


def test_the_command_refuses_a_weak_owner_password(db):
    with pytest.raises(CommandError):
        create_manager(name="Nova", owner_email="boss@nova.example.com", owner_password="123")

    assert not User.objects.exists()
    assert not Account.objects.exists()


# --- The admin site ----------------------------------------------------------------------------------


@pytest.fixture
def staff_client(db) -> tuple[Client, User]:
    superuser = UserFactory(email="staff@platform.example.com", is_staff=True, is_superuser=True)
    client = Client()
    force_login_with_mfa(client, superuser)  # the admin opens only to a session that passed MFA
    return client, superuser


def test_staff_create_a_manager_account_through_the_admin(staff_client):
    client, superuser = staff_client
    form = client.get(reverse("admin:accounts_account_add"))
    assert form.status_code == 200
    assert list(form.context["adminform"].form.fields) == [
        "name",
        "owner_email",
        "owner_password",
        "managed_account_limit",
    ]

    response = client.post(
        reverse("admin:accounts_account_add"),
        {
            "name": "Admin Made Reseller",
            "owner_email": "boss@admin-made.example.com",
            "owner_password": STRONG_PASSWORD,
            "managed_account_limit": "250",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    account = Account.objects.get(name="Admin Made Reseller")
    assert account.kind == Account.Kind.MANAGER
    assert account.managed_account_limit == 250
    owner = User.objects.get(email="boss@admin-made.example.com")
    assert owner.check_password(STRONG_PASSWORD)
    assert Membership.objects.get(account=account).user == owner
    event = AuditEvent.objects.get(account=account)
    assert event.change_type == "account.created"
    assert event.change_made_by == AuditEvent.MadeBy.PLATFORM
    assert event.user == superuser


def test_the_admin_refuses_an_owner_of_a_standard_account(world, staff_client):
    client, _ = staff_client
    client.raise_request_exception = False  # a crash should read as a 500, not abort the test
    before = db_state()

    response = client.post(
        reverse("admin:accounts_account_add"),
        {"name": "Nova", "owner_email": world.users["standard_owner"].email, "managed_account_limit": "3000"},
    )

    assert response.status_code == 200
    assert "a manager needs its own owner" in response.content.decode()
    assert db_state() == before


def test_the_admin_gives_a_new_manager_the_default_limit_when_left_empty(staff_client):
    client, _ = staff_client

    response = client.post(
        reverse("admin:accounts_account_add"),
        {"name": "Nova", "owner_email": "boss@nova.example.com", "managed_account_limit": ""},
    )

    assert response.status_code == 302
    assert Account.objects.get(name="Nova").managed_account_limit == 3000


def test_the_admin_refuses_a_weak_owner_password(staff_client):
    client, _ = staff_client

    response = client.post(
        reverse("admin:accounts_account_add"),
        {"name": "Nova", "owner_email": "boss@nova.example.com", "owner_password": "123", "managed_account_limit": "5"},
    )

    assert response.status_code == 200
    assert not Account.objects.exists()
    assert not User.objects.filter(email="boss@nova.example.com").exists()


def change_data(manager: Account, **overrides) -> dict:
    memberships = list(manager.memberships.order_by("pk"))
    data = {
        "name": manager.name,
        "managed_account_limit": str(manager.managed_account_limit),
        "memberships-TOTAL_FORMS": str(len(memberships)),
        "memberships-INITIAL_FORMS": str(len(memberships)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    if manager.admins_can_log_in_as:
        data["admins_can_log_in_as"] = "on"
    for i, membership in enumerate(memberships):
        data |= {
            f"memberships-{i}-id": str(membership.pk),
            f"memberships-{i}-account": str(manager.pk),
            f"memberships-{i}-user": str(membership.user_id),
            f"memberships-{i}-role": membership.role,
        }
    data.update(overrides)
    return data


def test_raising_the_limit_in_the_admin_is_audited_as_the_platform(world, staff_client):
    client, superuser = staff_client
    url = reverse("admin:accounts_account_change", args=[world.manager.pk])
    assert client.get(url).status_code == 200

    response = client.post(url, change_data(world.manager, managed_account_limit="5000"))

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    world.manager.refresh_from_db()
    assert world.manager.managed_account_limit == 5000
    event = AuditEvent.objects.get(change_type="account.limit_changed")
    assert event.account == world.manager
    assert event.change_made_by == AuditEvent.MadeBy.PLATFORM
    assert event.user == superuser
    assert event.changes == [{"field": "managed_account_limit", "from": 3000, "to": 5000}]
    assert AuditEvent.objects.count() == 1


def test_saving_the_admin_page_unchanged_writes_no_event(world, staff_client):
    client, _ = staff_client
    before = db_state()

    response = client.post(
        reverse("admin:accounts_account_change", args=[world.manager.pk]), change_data(world.manager)
    )

    assert response.status_code == 302
    assert AuditEvent.objects.count() == 0
    assert Account.objects.get(pk=world.manager.pk).managed_account_limit == 3000
    assert len(db_state()["Account"]) == len(before["Account"])


@pytest.mark.parametrize(("limit", "message"), [("", "This field is required."), ("-5", "greater than or equal to 0")])
def test_the_admin_refuses_a_missing_or_negative_limit(world, staff_client, limit, message):
    client, _ = staff_client
    client.raise_request_exception = False  # a crash should read as a 500, not abort the test
    before = db_state()

    response = client.post(
        reverse("admin:accounts_account_change", args=[world.manager.pk]),
        change_data(world.manager, managed_account_limit=limit),
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert db_state() == before


def test_the_admin_cannot_give_a_standard_account_a_limit(world, staff_client):
    client, _ = staff_client

    page = client.get(reverse("admin:accounts_account_change", args=[world.standard.pk]))

    assert page.status_code == 200
    assert "managed_account_limit" not in page.context["adminform"].form.fields
    assert "kind" not in page.context["adminform"].form.fields
    assert "manager" not in page.context["adminform"].form.fields


def test_the_admin_cannot_delete_accounts(world, staff_client):
    client, _ = staff_client

    response = client.post(reverse("admin:accounts_account_delete", args=[world.standard.pk]), {"post": "yes"})

    assert response.status_code == 403
    assert Account.objects.filter(pk=world.standard.pk).exists()


@pytest.mark.parametrize("persona_name", ["owner", "standard_owner", "anonymous"])
def test_customers_cannot_reach_the_admin(world, persona, persona_name):
    client = persona(persona_name)
    before = db_state()

    index = client.get(reverse("admin:index"))
    add = client.post(
        reverse("admin:accounts_account_add"),
        {"name": "Sneaky", "owner_email": "sneaky@example.com", "managed_account_limit": "9999"},
    )
    change = client.post(
        reverse("admin:accounts_account_change", args=[world.manager.pk]),
        change_data(world.manager, managed_account_limit="9999"),
    )

    for response in (index, add, change):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    assert db_state() == before


# --- Demo data -------------------------------------------------------------------------------------


def test_the_demo_data_loads_once_and_prints_the_logins(db):
    out = StringIO()
    call_command("demo_data", stdout=out)
    first = out.getvalue()
    loaded = db_state()

    again = StringIO()
    call_command("demo_data", stdout=again)

    assert "Demo data loaded." in first
    assert "Demo data already loaded." in again.getvalue()
    assert db_state() == loaded
    manager = Account.objects.get(kind=Account.Kind.MANAGER)
    assert manager.managed_accounts.count() == 25
    assert manager.managed_accounts.filter(status=Account.Status.CANCELLED).count() == 1
    assert Account.objects.filter(kind=Account.Kind.STANDARD).count() == 1
    for output in (first, again.getvalue()):
        assert f"password for all: {DEMO_PASSWORD}" in output
        for email in (
            "staff@example.com",
            "manager@example.com",
            "admin@example.com",
            "billing@example.com",
            "reporting@example.com",
            "owner@alpine-voice.example.com",
            "standard@example.com",
        ):
            assert email in output
            assert User.objects.filter(email=email).exists()


def test_the_printed_demo_logins_work(db):
    call_command("demo_data", stdout=StringIO())
    client = Client()

    response = client.post(reverse("account_login"), {"login": "manager@example.com", "password": DEMO_PASSWORD})

    assert response.status_code == 302
    assert client.session.get("_auth_user_id") == str(User.objects.get(email="manager@example.com").pk)


def test_staff_read_invoices_and_mark_a_platform_invoice_paid_or_void_once(world, staff_client):
    from datetime import date

    from billing.invoices.builder import invoice_party
    from billing.models import Invoice

    client, superuser = staff_client
    invoice = invoice_party(account=world.standard, month=date(2025, 3, 1))
    status_url = reverse("admin:billing_invoice_status", args=[invoice.pk])

    assert client.get(reverse("admin:billing_invoice_changelist")).status_code == 200
    page = client.get(reverse("admin:billing_invoice_change", args=[invoice.pk]))
    assert page.status_code == 200 and status_url in page.content.decode()
    refused = client.post(status_url, {"status": "void", "note": " "})
    assert refused.status_code == 422 and "Give the reason" in refused.content.decode()

    assert client.post(status_url, {"status": "paid", "note": "Wire 0042"}).status_code == 302

    invoice.refresh_from_db()
    assert (invoice.status, invoice.status_note) == (Invoice.Status.PAID, "Wire 0042")
    event = AuditEvent.objects.get(account=world.standard, change_type="invoice.marked_paid")
    assert (event.user, event.change_made_by) == (superuser, AuditEvent.MadeBy.PLATFORM)
    again = client.post(status_url, {"status": "void", "note": "Too late"})
    assert again.status_code == 422 and "is paid: it cannot be marked void" in again.content.decode()
