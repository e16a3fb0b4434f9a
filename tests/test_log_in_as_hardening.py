"""Log-in-as hardening (issue 11, holes 3 to 6): the acting session ends when the real person's
password changes or the log-in-as rule stops holding, only owners grant admins the right, and
acting never extends the session's original expiry."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Membership, Role
from tests.conftest import log_in_as
from tests.factories import MembershipFactory

NEW_PASSWORD = "an0ther-Strong-passphrase"


def signed_in_user_id(client: Client) -> int | None:
    value = client.session.get("_auth_user_id")
    return int(value) if value else None


def ended_event() -> AuditEvent:
    return AuditEvent.objects.get(change_type="log_in_as.ended")


def reason_of(event: AuditEvent) -> str:
    return next(change["to"] for change in event.changes if change["field"] == "reason")


def shown_messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def clock(monkeypatch):
    """Moves `timezone.now()` forward for the session machinery, the middleware and the views."""
    real_now = timezone.now
    offset = [timedelta(0)]
    monkeypatch.setattr(timezone, "now", lambda: real_now() + offset[0])

    class Clock:
        def advance(self, **delta) -> None:
            offset[0] += timedelta(**delta)

    return Clock()


def stored_expiry(client: Client):
    return Session.objects.get(session_key=client.cookies["sessionid"].value).expire_date


def admin_acting(world, persona) -> Client:
    Account.objects.filter(pk=world.manager.pk).update(admins_can_log_in_as=True)
    client = persona("admin")
    assert log_in_as(client, world.manager, world.managed).status_code == 302
    assert signed_in_user_id(client) == world.users["managed_owner"].pk
    return client


# --- Hole 3: the real person's password change ends the acting session ---------------------------------


def change_password(user) -> None:
    """What the real person's own other session (or a reset link) does."""
    user.set_password(NEW_PASSWORD)
    user.save()


def test_hole_3_return_after_the_real_persons_password_change_signs_out(world, persona):
    client = persona("manager_acting")
    change_password(world.users["owner"])

    response = client.post(reverse("acting_return"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert signed_in_user_id(client) is None
    assert "hijack_history" not in client.session and "acting" not in client.session
    event = ended_event()
    assert reason_of(event) == "password_changed"
    assert (event.user, event.acting_as) == (world.users["owner"], world.users["managed_owner"])
    assert client.get(reverse("dashboard", args=[world.manager.public_id])).status_code == 302  # to sign-in


def test_hole_3_any_acting_request_after_the_password_change_signs_out(world, persona):
    client = persona("manager_acting")
    change_password(world.users["owner"])

    response = client.get(reverse("dashboard", args=[world.managed.public_id]))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert signed_in_user_id(client) is None
    assert reason_of(ended_event()) == "password_changed"
    assert any("password" in m for m in shown_messages(response))


def test_hole_3_an_unchanged_password_keeps_the_session(world, persona):
    client = persona("manager_acting")
    world.users["owner"].save()  # a save that changes nothing else

    assert client.get(reverse("dashboard", args=[world.managed.public_id])).status_code == 200
    assert signed_in_user_id(client) == world.users["managed_owner"].pk
    assert not AuditEvent.objects.filter(change_type="log_in_as.ended").exists()


# --- Hole 4: the rule is checked on every acting request ------------------------------------------------


def assert_ended_back_home(world, client: Client, response, *, reason: str, says: str, real_user) -> None:
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert signed_in_user_id(client) == real_user.pk
    assert "acting" not in client.session and client.session["hijack_history"] == []
    event = ended_event()
    assert reason_of(event) == reason
    assert event.user == real_user and event.acting_as == world.users["managed_owner"]
    assert (event.account, event.related_account) == (world.manager, world.managed)
    assert any(says in m for m in shown_messages(response)), shown_messages(response)


def test_hole_4_withdrawing_the_admins_right_ends_an_admins_session(world, persona):
    client = admin_acting(world, persona)
    services.update_account_settings(
        account=world.manager,
        actor=Actor(user=world.users["owner"]),
        name=world.manager.name,
        admins_can_log_in_as=False,
    )

    response = client.get(reverse("dashboard", args=[world.managed.public_id]))

    assert_ended_back_home(
        world,
        client,
        response,
        reason="not_allowed",
        says="Only the manager account's owners",
        real_user=world.users["admin"],
    )


def test_hole_4_removing_the_admin_from_the_manager_ends_its_session(world, persona):
    client = admin_acting(world, persona)
    Membership.objects.filter(user=world.users["admin"], account=world.manager).delete()

    response = client.post(
        reverse("member_invite", args=[world.managed.public_id]), {"email": "x@example.com", "role": "admin"}
    )

    assert_ended_back_home(
        world, client, response, reason="not_a_member", says="not yours", real_user=world.users["admin"]
    )
    assert not AuditEvent.objects.filter(change_type="invitation.created").exists()


def test_hole_4_a_managed_owner_joining_another_account_ends_the_session(world, persona):
    client = persona("manager_acting")
    MembershipFactory(user=world.users["managed_owner"], account=world.standard, role=Role.ADMIN)

    response = client.get(reverse("dashboard", args=[world.standard.public_id]))

    assert_ended_back_home(
        world,
        client,
        response,
        reason="owner_elsewhere",
        says="also belongs to other accounts",
        real_user=world.users["owner"],
    )
    assert client.get(reverse("dashboard", args=[world.standard.public_id])).status_code == 404


def test_hole_4_disabling_the_managed_account_ends_the_session(world, persona):
    client = persona("manager_acting")
    Account.objects.filter(pk=world.managed.pk).update(status=Account.Status.DISABLED)

    response = client.get(reverse("dashboard", args=[world.managed.public_id]))

    assert_ended_back_home(
        world,
        client,
        response,
        reason="account_not_enabled",
        says="Alpine Voice is disabled",
        real_user=world.users["owner"],
    )


def test_hole_4_disabling_the_manager_ends_the_session(world, persona):
    client = persona("manager_acting")
    Account.objects.filter(pk=world.manager.pk).update(status=Account.Status.DISABLED)

    response = client.get(reverse("dashboard", args=[world.managed.public_id]))

    assert_ended_back_home(
        world, client, response, reason="manager_not_enabled", says="disabled", real_user=world.users["owner"]
    )


def test_hole_4_demoting_the_real_person_to_billing_ends_the_session(world, persona):
    client = persona("manager_acting")
    Membership.objects.filter(user=world.users["billing"], account=world.manager).update(role=Role.OWNER)
    Membership.objects.filter(user=world.users["owner"], account=world.manager).update(role=Role.BILLING)

    response = client.get(reverse("dashboard", args=[world.managed.public_id]))

    assert_ended_back_home(world, client, response, reason="not_allowed", says="Only", real_user=world.users["owner"])


def test_hole_4_the_check_costs_at_most_two_queries_an_acting_request(world, persona):
    url = reverse("dashboard", args=[world.managed.public_id])
    own, acting = persona("managed_owner"), persona("manager_acting")
    own.get(url), acting.get(url)  # warm up

    with CaptureQueriesContext(connection) as own_queries:
        assert own.get(url).status_code == 200
    with CaptureQueriesContext(connection) as acting_queries:
        assert acting.get(url).status_code == 200

    # The banner needs the real person and the managed account anyway; the rule rides on those.
    assert len(acting_queries) - len(own_queries) <= 2, [q["sql"] for q in acting_queries]


# --- Hole 5: only owners grant admins the right to log in as ----------------------------------------------


def settings_url(world) -> str:
    return reverse("account_settings", args=[world.manager.public_id])


def test_hole_5_an_admin_posting_the_grant_changes_nothing(world, persona):
    response = persona("admin").post(settings_url(world), {"name": world.manager.name, "admins_can_log_in_as": "on"})

    assert response.status_code in (302, 422)
    world.manager.refresh_from_db()
    assert world.manager.admins_can_log_in_as is False
    assert not AuditEvent.objects.filter(change_type="account.updated").exists()


def test_hole_5_the_form_offers_the_grant_to_owners_only(world, persona):
    assert 'name="admins_can_log_in_as"' not in persona("admin").get(settings_url(world)).content.decode()
    assert 'name="admins_can_log_in_as"' in persona("owner").get(settings_url(world)).content.decode()


def test_hole_5_an_admin_renaming_the_account_keeps_the_owners_grant(world, persona):
    Account.objects.filter(pk=world.manager.pk).update(admins_can_log_in_as=True)

    response = persona("admin").post(settings_url(world), {"name": "Acme Renamed"})

    assert response.status_code == 302
    world.manager.refresh_from_db()
    assert (world.manager.name, world.manager.admins_can_log_in_as) == ("Acme Renamed", True)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.BILLING])
def test_hole_5_the_service_refuses_the_grant_from_a_non_owner(world, role):
    with pytest.raises(services.ServiceError) as refused:
        services.update_account_settings(
            account=world.manager,
            actor=Actor(user=world.users[role]),
            name=world.manager.name,
            admins_can_log_in_as=True,
        )

    assert refused.value.field == "admins_can_log_in_as"
    world.manager.refresh_from_db()
    assert world.manager.admins_can_log_in_as is False


def test_hole_5_the_owner_still_grants_it(world, persona):
    response = persona("owner").post(settings_url(world), {"name": world.manager.name, "admins_can_log_in_as": "on"})

    assert response.status_code == 302
    world.manager.refresh_from_db()
    assert world.manager.admins_can_log_in_as is True


# --- Hole 6: acting never extends the session -----------------------------------------------------------


def test_hole_6_log_in_as_and_return_keep_the_sessions_original_expiry(world, owner_client, clock):
    original = stored_expiry(owner_client)
    for _ in range(3):
        clock.advance(hours=3)
        log_in_as(owner_client, world.manager, world.managed)
        assert signed_in_user_id(owner_client) == world.users["managed_owner"].pk
        assert stored_expiry(owner_client) <= original
        returned = owner_client.post(reverse("acting_return"))
        assert signed_in_user_id(owner_client) == world.users["owner"].pk
        assert stored_expiry(owner_client) <= original
        assert owner_client.session.get_expiry_date() <= original
        left = (original - timezone.now()).total_seconds()
        assert int(returned.cookies["sessionid"]["max-age"]) <= left + 1

    clock.advance(hours=3, minutes=1)  # 12 h 01 after signing in: the session's age is up

    response = owner_client.get(reverse("dashboard", args=[world.manager.public_id]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_hole_6_a_browser_close_session_also_ends_at_its_original_expiry(world, owner_client, clock):
    session = owner_client.session
    session.set_expiry(0)  # allauth's sign-in without "Remember me"
    session.save()
    original = stored_expiry(owner_client)
    for _ in range(3):
        clock.advance(hours=3)
        log_in_as(owner_client, world.manager, world.managed)
        owner_client.post(reverse("acting_return"))
        assert signed_in_user_id(owner_client) == world.users["owner"].pk
        assert owner_client.session.get_expire_at_browser_close()

    clock.advance(hours=3, minutes=1)
    assert timezone.now() > original

    response = owner_client.get(reverse("dashboard", args=[world.manager.public_id]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert signed_in_user_id(owner_client) is None
