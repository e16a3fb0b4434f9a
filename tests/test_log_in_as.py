from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Membership, Role
from accounts.permissions import log_in_as_denial
from tests.conftest import log_in_as
from tests.factories import MembershipFactory, account_with_owner


def _acting_user_id(client: Client) -> int:
    return int(client.session["_auth_user_id"])


def test_it_switches_to_the_managed_owner_and_audits_the_start(world, owner_client):
    response = log_in_as(owner_client, world.manager, world.managed)

    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard", args=[world.managed.public_id])
    assert _acting_user_id(owner_client) == world.users["managed_owner"].pk
    event = AuditEvent.objects.get(change_type="log_in_as.started")
    assert event.user == world.users["owner"]
    assert event.acting_as == world.users["managed_owner"]
    assert (event.account, event.related_account) == (world.manager, world.managed)
    assert event.change_made_by == "account_manager"


def test_the_banner_names_the_real_person_and_the_way_back(world, persona):
    client = persona("manager_acting")
    owner = world.users["owner"]

    page = client.get(reverse("dashboard", args=[world.managed.public_id])).content.decode()

    assert "acting-banner" in page
    assert owner.get_full_name() in page and owner.email in page
    assert world.managed.name in page
    assert f"Return to {world.manager.name}" in page
    assert reverse("acting_return") in page
    assert "Time left" in page


def test_it_rejects_get(world, owner_client, persona):
    url = reverse("managed_log_in_as", args=[world.manager.public_id, world.managed.public_id])
    assert owner_client.get(url).status_code == 405
    assert persona("manager_acting").get(reverse("acting_return")).status_code == 405
    assert "hijack_history" not in owner_client.session


def test_return_switches_back_and_audits_the_end(world, persona):
    client = persona("manager_acting")

    response = client.post(reverse("acting_return"))

    assert response["Location"] == reverse("managed_detail", args=[world.manager.public_id, world.managed.public_id])
    assert _acting_user_id(client) == world.users["owner"].pk
    assert client.session["hijack_history"] == []
    ended = AuditEvent.objects.get(change_type="log_in_as.ended")
    assert ended.user == world.users["owner"]
    assert ended.changes == [{"field": "reason", "from": None, "to": "returned"}]
    page = client.get(response["Location"]).content.decode()
    assert "acting-banner" not in page


def test_return_refuses_an_offsite_next(world, persona):
    client = persona("manager_acting")
    response = client.post(reverse("acting_return"), {"next": "https://evil.example.com/"})
    assert response["Location"].startswith("/a/")


def test_changes_made_while_acting_name_the_real_person(world, persona):
    client = persona("manager_acting")

    response = client.post(
        reverse("member_invite", args=[world.managed.public_id]), {"email": "new@alpine.example.com", "role": "admin"}
    )

    assert response.status_code == 302
    event = AuditEvent.objects.get(change_type="invitation.created")
    assert event.account == world.managed
    assert event.user == world.users["owner"]
    assert event.acting_as == world.users["managed_owner"]
    assert event.change_made_by == "account_manager"


def test_it_cannot_be_chained(world, persona):
    client = persona("manager_acting")
    sibling_url = reverse("managed_log_in_as", args=[world.manager.public_id, world.sibling.public_id])

    assert client.post(sibling_url).status_code == 404
    assert _acting_user_id(client) == world.users["managed_owner"].pk
    reason = log_in_as_denial(user=world.users["owner"], managed_account=world.sibling, already_acting=True)
    assert "already logged in as" in reason


def test_it_refuses_a_managed_owner_who_belongs_elsewhere(world, owner_client):
    # Otherwise the manager would see the other account too, as that person.
    MembershipFactory(user=world.users["managed_owner"], account=world.standard, role=Role.REPORTING)

    response = log_in_as(owner_client, world.manager, world.managed)

    assert response.status_code == 302
    assert "hijack_history" not in owner_client.session
    assert not AuditEvent.objects.filter(change_type="log_in_as.started").exists()


def test_it_refuses_a_disabled_managed_account(world, owner_client):
    world.managed.status = "disabled"
    world.managed.save()

    response = log_in_as(owner_client, world.manager, world.managed)

    assert response.status_code == 302
    assert _acting_user_id(owner_client) == world.users["owner"].pk
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("enable it first" in m for m in messages)


def test_admins_need_the_owners_grant(world, persona):
    admin = persona("admin")
    log_in_as(admin, world.manager, world.managed)
    assert _acting_user_id(admin) == world.users["admin"].pk

    world.manager.admins_can_log_in_as = True
    world.manager.save()
    log_in_as(admin, world.manager, world.managed)
    assert _acting_user_id(admin) == world.users["managed_owner"].pk
    assert AuditEvent.objects.get(change_type="log_in_as.started").user == world.users["admin"]


def test_other_managers_get_404(world, persona):
    client = persona("other_tenant")
    assert log_in_as(client, world.manager, world.managed).status_code == 404
    assert log_in_as(client, world.other_manager, world.managed).status_code == 404


def test_it_ends_by_itself_after_the_time_limit(world, persona, settings):
    client = persona("manager_acting")
    session = client.session
    session["acting"]["expires_at"] = (timezone.now() - timedelta(seconds=1)).isoformat()
    session.save()

    response = client.get(reverse("dashboard", args=[world.managed.public_id]))

    assert response.status_code == 302
    assert response["Location"] == reverse("managed_detail", args=[world.manager.public_id, world.managed.public_id])
    assert _acting_user_id(client) == world.users["owner"].pk
    ended = AuditEvent.objects.get(change_type="log_in_as.ended")
    assert ended.changes[0]["to"] == "expired"


def test_the_limit_is_thirty_minutes_and_shown(world, persona):
    client = persona("manager_acting")
    expires_at = client.session["acting"]["expires_at"]
    left = (timezone.datetime.fromisoformat(expires_at) - timezone.now()).total_seconds()
    assert 29 * 60 < left <= 30 * 60
    page = client.get(reverse("dashboard", args=[world.managed.public_id])).content.decode()
    assert 'data-seconds-left="17' in page or 'data-seconds-left="18' in page  # ~1,800 s


def test_it_leaves_the_managed_owners_own_sessions_and_last_login_alone(world, persona):
    managed_owner = world.users["managed_owner"]
    own_client = Client()
    own_client.force_login(managed_owner)
    managed_owner.refresh_from_db()
    last_login = managed_owner.last_login
    sessions_before = Session.objects.count()

    client = persona("manager_acting")
    client.get(reverse("dashboard", args=[world.managed.public_id]))
    client.post(reverse("acting_return"))

    managed_owner.refresh_from_db()
    assert managed_owner.last_login == last_login
    assert own_client.get(reverse("dashboard", args=[world.managed.public_id])).status_code == 200
    # The manager's own session was rotated, not added to: one for the owner, one for the manager.
    assert Session.objects.count() == sessions_before + 1


def test_the_session_does_not_outlive_its_age(world, owner_client):
    session = owner_client.session
    session.set_expiry(600)
    session.save()

    log_in_as(owner_client, world.manager, world.managed)

    assert owner_client.session.get_expiry_age() <= 600


@pytest.mark.parametrize("role", [Role.BILLING, Role.REPORTING])
def test_billing_and_reporting_members_cannot(world, persona, role):
    client = persona(role)
    assert log_in_as(client, world.manager, world.managed).status_code == 403
    assert _acting_user_id(client) == world.users[role].pk


def test_a_standard_account_cannot_be_logged_in_as(world):
    standard, _ = account_with_owner()
    reason = log_in_as_denial(user=world.users["owner"], managed_account=standard, already_acting=False)
    assert reason == "Only managed accounts can be logged in as."
    assert Membership.objects.filter(account=standard).count() == 1


@pytest.mark.parametrize(
    "url_name", ["account_change_password", "account_email", "mfa_index", "mfa_activate_totp", "account_logout"]
)
def test_the_owners_sign_in_and_security_settings_are_closed_while_acting(world, persona, url_name):
    client = persona("manager_acting")
    managed_owner = world.users["managed_owner"]
    password_before = managed_owner.password

    assert client.get(reverse(url_name)).status_code == 403
    assert (
        client.post(
            reverse(url_name), {"oldpassword": "x", "password1": "n3w-Pa55word!", "password2": "n3w-Pa55word!"}
        ).status_code
        == 403
    )

    managed_owner.refresh_from_db()
    assert managed_owner.password == password_before
    assert _acting_user_id(client) == managed_owner.pk


def test_the_manager_reaches_its_own_security_settings(world, owner_client):
    assert owner_client.get(reverse("mfa_index")).status_code == 200


def test_a_cancelled_managed_account_is_not_told_to_be_enabled_since_it_never_can_be(world, owner_client):
    world.managed.status = "cancelled"
    world.managed.save()

    response = log_in_as(owner_client, world.manager, world.managed)

    assert _acting_user_id(owner_client) == world.users["owner"].pk
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("is cancelled: it can no longer be logged in as" in m for m in messages)
    assert not any("enable it first" in m for m in messages)
