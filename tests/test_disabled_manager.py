"""A disabled manager blocks all of its managed accounts (issue 11, "Also"): their owners cannot sign
in, their pages say why, their keys are refused like a disabled account's, their new usage is
refused; enabling the manager restores them, and their own statuses never change."""

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from accounts.services import create_api_key
from billing.usage.services import UsageRejected, ingest_usage
from tests.factories import PASSWORD, UserFactory
from tests.mfa_support import force_login_with_mfa

BLOCKED = "Alpine Voice is unavailable while its manager, Acme Reseller, is disabled"


def set_status(account: Account, status: str) -> None:
    Account.objects.filter(pk=account.pk).update(status=status)


def key_for(account: Account, owner) -> str:
    return create_api_key(account=account, name="Sync", actor=Actor(user=owner))[1]


def api_get(raw_key: str, path: str = "audit_events"):
    return Client().get(f"/v2/{path}", HTTP_AUTHORIZATION=f"Bearer {raw_key}")


def usage_row(n: int = 1) -> dict:
    return {
        "product": "sms.outbound",
        "quantity": "1",
        "started_at": datetime(2025, 6, 1, 10, 0, n, tzinfo=UTC).isoformat(),
        "idempotency_key": f"msg-{n}",
    }


@pytest.fixture
def managed_key(world) -> str:
    return key_for(world.managed, world.users["managed_owner"])


def test_disabled_manager_blocks_its_managed_owners_sign_in_and_says_why(world):
    set_status(world.manager, Account.Status.DISABLED)
    client = Client()

    response = client.post(
        reverse("account_login"), {"login": world.users["managed_owner"].email, "password": PASSWORD}
    )

    assert response.status_code == 403
    assert BLOCKED in response.content.decode()
    assert client.session.get("_auth_user_id") is None
    assert not AuditEvent.objects.filter(change_type="user.signed_in").exists()


def test_disabled_manager_closes_its_managed_accounts_pages_with_the_reason(world, persona):
    client = persona("managed_owner")  # signed in before the manager was disabled
    set_status(world.manager, Account.Status.DISABLED)

    response = client.get(reverse("dashboard", args=[world.managed.public_id]))

    assert response.status_code == 403
    assert BLOCKED in response.content.decode()


def test_disabled_manager_makes_its_managed_accounts_keys_answer_like_a_disabled_accounts(world, managed_key):
    standard_key = key_for(world.standard, world.users["standard_owner"])
    assert api_get(managed_key).status_code == 200
    set_status(world.standard, Account.Status.DISABLED)
    set_status(world.manager, Account.Status.DISABLED)

    refused, disabled = api_get(managed_key), api_get(standard_key)

    assert refused.status_code == disabled.status_code == 401
    assert refused.json() == disabled.json()


def test_disabled_manager_refuses_its_managed_accounts_usage(world, managed_key):
    set_status(world.manager, Account.Status.DISABLED)
    world.managed.refresh_from_db()

    response = Client().post(
        "/v2/usage_records",
        {"records": [usage_row()]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {managed_key}",
    )
    assert response.status_code == 401

    managed = Account.objects.select_related("manager").get(pk=world.managed.pk)
    with pytest.raises(UsageRejected) as rejected:
        ingest_usage(
            submitter=managed, rows=[usage_row()], source="api", actor=Actor(user=world.users["managed_owner"])
        )
    assert [(e.row, e.field, e.message) for e in rejected.value.errors] == [
        (0, "account", f"{BLOCKED}; its usage is refused.")
    ]


def test_enabling_the_manager_again_restores_its_managed_accounts(world, managed_key):
    set_status(world.manager, Account.Status.DISABLED)
    assert api_get(managed_key).status_code == 401
    set_status(world.manager, Account.Status.ENABLED)

    assert api_get(managed_key).status_code == 200
    client = Client()
    response = client.post(
        reverse("account_login"), {"login": world.users["managed_owner"].email, "password": PASSWORD}
    )
    assert response.status_code == 302
    assert client.get(reverse("dashboard", args=[world.managed.public_id])).status_code == 200


def test_disabling_the_manager_leaves_its_managed_accounts_own_statuses_alone(world):
    set_status(world.sibling, Account.Status.DISABLED)
    set_status(world.manager, Account.Status.DISABLED)
    set_status(world.manager, Account.Status.ENABLED)

    statuses = dict(Account.objects.filter(manager=world.manager).values_list("name", "status"))
    assert statuses == {"Alpine Voice": "enabled", "Blue Harbor": "disabled"}


def test_a_disabled_managed_account_under_an_enabled_manager_still_names_its_own_status(world, persona):
    client = persona("managed_owner")
    set_status(world.managed, Account.Status.DISABLED)

    response = client.get(reverse("dashboard", args=[world.managed.public_id]))

    assert response.status_code == 403
    assert "Alpine Voice is disabled." in response.content.decode()


# --- Staff disable and enable a manager in the admin ---------------------------------------------------


@pytest.fixture
def staff_client(db) -> Client:
    client = Client()
    force_login_with_mfa(client, UserFactory(email="staff@platform.example.com", is_staff=True, is_superuser=True))
    return client


def admin_action(client: Client, action: str, *accounts: Account):
    url = reverse("admin:accounts_account_changelist")
    return client.post(url, {"action": action, "_selected_action": [a.pk for a in accounts]}, follow=True)


def test_disabled_manager_staff_disable_and_enable_a_manager_in_the_admin(world, staff_client, managed_key):
    admin_action(staff_client, "disable_accounts", world.manager)

    world.manager.refresh_from_db()
    assert world.manager.status == Account.Status.DISABLED
    assert api_get(managed_key).status_code == 401
    assert set(Account.objects.filter(manager=world.manager).values_list("status", flat=True)) == {"enabled"}
    event = AuditEvent.objects.get(change_type="account.updated", account=world.manager)
    assert event.changes == [{"field": "status", "from": "enabled", "to": "disabled"}]
    assert event.change_made_by == AuditEvent.MadeBy.PLATFORM

    admin_action(staff_client, "enable_accounts", world.manager)

    world.manager.refresh_from_db()
    assert world.manager.status == Account.Status.ENABLED
    assert api_get(managed_key).status_code == 200


def test_disabled_manager_staff_leave_a_managed_accounts_status_to_its_manager(world, staff_client):
    response = admin_action(staff_client, "disable_accounts", world.managed)

    world.managed.refresh_from_db()
    assert world.managed.status == Account.Status.ENABLED
    assert "its manager disables or enables it" in response.content.decode()


def test_disabled_manager_its_managed_accounts_invitations_cannot_be_accepted(world):
    invitation = services.invite_member(
        account=world.managed,
        email="new@alpine.example.com",
        role="admin",
        actor=Actor(user=world.users["managed_owner"]),
    )
    set_status(world.manager, Account.Status.DISABLED)

    with pytest.raises(services.ServiceError, match="That account is disabled."):
        services.accept_invitation(invitation=invitation, user=UserFactory(email="new@alpine.example.com"))

    assert not world.managed.memberships.filter(user__email="new@alpine.example.com").exists()
