"""Members of an account: invitations, accepting them, roles and removal."""

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Invitation, Membership, Role, User
from tests.factories import MembershipFactory, UserFactory

INVITEE = "new.person@acme.example.com"


def db_state() -> dict:
    """Every row a member change could touch, to prove that nothing changed."""
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Account, User, Membership, Invitation, EmailAddress, AuditEvent)
    }


def invite_url(account: Account) -> str:
    return reverse("member_invite", args=[account.public_id])


def members_url(account: Account) -> str:
    return reverse("members", args=[account.public_id])


def membership_of(world, name: str) -> Membership:
    return Membership.objects.get(user=world.users[name], account=world.manager)


def invite(world, email: str = INVITEE, role: str = Role.BILLING) -> Invitation:
    return services.invite_member(account=world.manager, email=email, role=role, actor=Actor(user=world.users["owner"]))


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Inviting ----------------------------------------------------------------------------------------


def test_an_owner_invites_someone_by_email(world, persona, mailoutbox, django_capture_on_commit_callbacks):
    client = persona("owner")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(invite_url(world.manager), {"email": "New.Person@ACME.example.com", "role": "billing"})

    assert response.status_code == 302
    assert response["Location"] == members_url(world.manager)
    invitation = Invitation.objects.get()
    assert invitation.account == world.manager
    assert invitation.email == INVITEE
    assert invitation.role == Role.BILLING
    assert invitation.status == Invitation.Status.PENDING
    assert invitation.invited_by == world.users["owner"]
    assert invitation.expires_at > timezone.now() + timedelta(days=6)

    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == [INVITEE]
    assert "Acme Reseller" in message.subject
    assert reverse("accept_invitation", args=[invitation.token]) in message.body

    event = AuditEvent.objects.get()
    assert event.change_type == "invitation.created"
    assert event.account == world.manager
    assert event.user == world.users["owner"]
    assert event.change_made_by == AuditEvent.MadeBy.ACCOUNT_OWNER
    assert event.changes == [
        {"field": "email", "from": None, "to": INVITEE},
        {"field": "role", "from": None, "to": "billing"},
    ]


def test_the_members_page_lists_members_and_pending_invitations(world, persona):
    invite(world)

    response = persona("owner").get(members_url(world.manager))

    content = response.content.decode()
    assert response.status_code == 200
    assert "billing@acme.example.com" in content
    assert INVITEE in content
    assert [m.user for m in response.context["members"]] == [
        world.users[name] for name in ("owner", "admin", "billing", "reporting")
    ]


def test_an_admin_invites_a_non_owner_as_an_organization_member(world, persona):
    response = persona("admin").post(invite_url(world.manager), {"email": INVITEE, "role": "admin"})

    assert response.status_code == 302
    assert Invitation.objects.get().role == Role.ADMIN
    assert AuditEvent.objects.get().change_made_by == AuditEvent.MadeBy.ORGANIZATION_MEMBER


def test_a_duplicate_pending_invitation_is_refused(world, persona, mailoutbox, django_capture_on_commit_callbacks):
    invite(world)
    client = persona("owner")
    before = db_state()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(invite_url(world.manager), {"email": INVITEE.upper(), "role": "reporting"})

    assert response.status_code == 422
    assert response.context["invite_form"].errors["email"] == ["An invitation to that address is already pending."]
    assert "An invitation to that address is already pending." in response.content.decode()
    assert db_state() == before
    assert mailoutbox == []


def test_inviting_an_existing_member_is_refused(world, persona, mailoutbox, django_capture_on_commit_callbacks):
    client = persona("owner")
    before = db_state()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(invite_url(world.manager), {"email": "Billing@Acme.example.com", "role": "admin"})

    assert response.status_code == 422
    assert "That person is already a member of this account." in response.content.decode()
    assert db_state() == before
    assert mailoutbox == []


def test_an_address_can_be_invited_again_after_its_invitation_was_revoked(world, persona):
    services.revoke_invitation(invitation=invite(world), actor=Actor(user=world.users["owner"]))

    response = persona("owner").post(invite_url(world.manager), {"email": INVITEE, "role": "billing"})

    assert response.status_code == 302
    assert Invitation.objects.filter(email=INVITEE, status=Invitation.Status.PENDING).count() == 1


def test_an_admin_cannot_invite_an_owner(world, persona):
    client = persona("admin")
    before = db_state()

    response = client.post(invite_url(world.manager), {"email": INVITEE, "role": "owner"})

    assert response.status_code == 422
    assert response.context["invite_form"].errors["role"] == ["Only an owner can add, change or remove owners."]
    assert "Only an owner can add, change or remove owners." in response.content.decode()
    assert db_state() == before


def test_an_invalid_invitation_email_is_refused(world, persona):
    client = persona("owner")
    before = db_state()

    response = client.post(invite_url(world.manager), {"email": "not-an-email", "role": "billing"})

    assert response.status_code == 422
    assert "Enter a valid email address." in response.content.decode()
    assert db_state() == before


@pytest.mark.parametrize("persona_name", ["billing", "reporting"])
def test_billing_and_reporting_members_cannot_invite(world, persona, persona_name):
    client = persona(persona_name)
    before = db_state()

    response = client.post(invite_url(world.manager), {"email": INVITEE, "role": "reporting"})

    assert response.status_code == 403
    assert db_state() == before


def test_inviting_is_post_only(world, persona):
    response = persona("owner").get(invite_url(world.manager), {"email": INVITEE, "role": "billing"})

    assert response.status_code == 405
    assert not Invitation.objects.exists()


# --- Accepting ---------------------------------------------------------------------------------------


def accept_url(invitation: Invitation) -> str:
    return reverse("accept_invitation", args=[invitation.token])


def test_an_anonymous_visitor_with_a_user_is_asked_to_sign_in(world):
    invitation = invite(world)
    UserFactory(email=INVITEE)
    path = accept_url(invitation)

    response = Client().get(path)

    content = response.content.decode()
    assert response.status_code == 200
    assert f'href="{reverse("account_login")}?next={path}"' in content
    assert f"{reverse('account_signup')}?next=" not in content  # an invitee never creates an account of its own
    assert INVITEE in content


def test_an_anonymous_post_without_a_password_accepts_nothing(world):
    invitation = invite(world)
    before = db_state()

    response = Client().post(accept_url(invitation))

    assert response.status_code == 422
    assert "This field is required." in response.content.decode()
    assert db_state() == before


def test_an_anonymous_post_for_an_address_with_a_user_accepts_nothing(world):
    invitation = invite(world)
    UserFactory(email=INVITEE)
    before = db_state()

    response = Client().post(
        accept_url(invitation), {"password1": "a long new secret 1", "password2": "a long new secret 1"}
    )

    assert response.status_code == 200
    assert "sign in with it to accept" in response.content.decode()
    assert db_state() == before


def test_the_invited_user_accepts_and_joins_with_the_role(world):
    invitation = invite(world, role=Role.REPORTING)
    invitee = UserFactory(email=INVITEE)
    client = client_for(invitee)

    page = client.get(accept_url(invitation))
    response = client.post(accept_url(invitation))

    assert page.status_code == 200
    assert "Accept and join" in page.content.decode()
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard", args=[world.manager.public_id])
    membership = Membership.objects.get(user=invitee, account=world.manager)
    assert membership.role == Role.REPORTING
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ACCEPTED
    event = AuditEvent.objects.get(change_type="membership.created")
    assert event.account == world.manager
    assert event.user == invitee
    assert event.changes == [
        {"field": "role", "from": None, "to": "reporting"},
        {"field": "user", "from": None, "to": INVITEE},
    ]
    assert client.get(reverse("dashboard", args=[world.manager.public_id])).status_code == 200


def test_an_accepted_invitation_cannot_be_used_twice(world):
    invitation = invite(world)
    client = client_for(UserFactory(email=INVITEE))
    client.post(accept_url(invitation))
    before = db_state()

    response = client.post(accept_url(invitation))

    assert response.status_code == 200
    assert db_state() == before


def test_a_user_with_another_email_cannot_accept(world):
    invitation = invite(world)
    client = client_for(UserFactory(email="someone.else@example.com"))
    before = db_state()

    response = client.post(accept_url(invitation))

    assert response.status_code == 200
    assert f"This invitation was sent to {INVITEE}" in response.content.decode()
    assert db_state() == before


def test_a_revoked_invitation_cannot_be_accepted(world):
    invitation = invite(world)
    services.revoke_invitation(invitation=invitation, actor=Actor(user=world.users["owner"]))
    client = client_for(UserFactory(email=INVITEE))
    before = db_state()

    response = client.post(accept_url(invitation))

    assert response.status_code == 200
    assert "This invitation is no longer valid." in response.content.decode()
    assert db_state() == before


def test_an_expired_invitation_cannot_be_accepted(world):
    invitation = invite(world)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    client = client_for(UserFactory(email=INVITEE))
    before = db_state()

    response = client.post(accept_url(invitation))

    assert response.status_code == 200
    assert "This invitation is no longer valid." in response.content.decode()
    assert db_state() == before


def test_an_invitation_to_a_disabled_account_cannot_be_accepted(world):
    invitation = invite(world)
    Account.objects.filter(pk=world.manager.pk).update(status=Account.Status.DISABLED)
    client = client_for(UserFactory(email=INVITEE))
    before = db_state()

    response = client.post(accept_url(invitation))

    assert "That account is disabled." in response.content.decode()
    assert db_state() == before


def test_an_unknown_token_is_a_404(world):
    response = client_for(UserFactory(email=INVITEE)).post(reverse("accept_invitation", args=["no-such-token"]))

    assert response.status_code == 404


# --- Revoking ----------------------------------------------------------------------------------------


def revoke_url(world, invitation: Invitation) -> str:
    return reverse("invitation_revoke", args=[world.manager.public_id, invitation.pk])


def test_revoking_is_post_only(world, persona):
    invitation = invite(world)
    client = persona("owner")
    before = db_state()

    response = client.get(revoke_url(world, invitation))

    assert response.status_code == 405
    assert db_state() == before


def test_an_owner_revokes_a_pending_invitation(world, persona):
    invitation = invite(world)
    client = persona("owner")

    response = client.post(revoke_url(world, invitation), follow=True)

    assert response.status_code == 200
    assert f"Invitation to {INVITEE} revoked." in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    assert list(response.context["invitations"]) == []
    event = AuditEvent.objects.get(change_type="invitation.revoked")
    assert event.account == world.manager
    assert event.user == world.users["owner"]
    assert event.changes == [{"field": "status", "from": "pending", "to": "revoked"}]


def test_revoking_twice_changes_nothing(world, persona):
    invitation = invite(world)
    client = persona("owner")
    client.post(revoke_url(world, invitation))
    before = db_state()

    response = client.post(revoke_url(world, invitation), follow=True)

    assert "That invitation is no longer pending." in response.content.decode()
    assert db_state() == before


def test_another_accounts_invitation_cannot_be_revoked(world, persona):
    other = services.invite_member(
        account=world.other_manager, email=INVITEE, role=Role.BILLING, actor=Actor(user=world.users["other_tenant"])
    )
    client = persona("owner")
    before = db_state()

    response = client.post(reverse("invitation_revoke", args=[world.manager.public_id, other.pk]))

    assert response.status_code == 404
    assert db_state() == before


# --- Roles ---------------------------------------------------------------------------------------------


def role_url(world, membership: Membership) -> str:
    return reverse("member_role", args=[world.manager.public_id, membership.pk])


def test_an_owner_changes_a_members_role(world, persona):
    membership = membership_of(world, "admin")

    response = persona("owner").post(role_url(world, membership), {"role": "billing"})

    assert response.status_code == 302
    assert response["Location"] == members_url(world.manager)
    membership.refresh_from_db()
    assert membership.role == Role.BILLING
    event = AuditEvent.objects.get()
    assert event.change_type == "membership.role_changed"
    assert event.account == world.manager
    assert event.user == world.users["owner"]
    assert {"field": "role", "from": "admin", "to": "billing"} in event.changes


def test_an_owner_makes_another_member_owner(world, persona):
    membership = membership_of(world, "billing")

    response = persona("owner").post(role_url(world, membership), {"role": "owner"})

    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_the_role_page_shows_the_current_role(world, persona):
    response = persona("owner").get(role_url(world, membership_of(world, "reporting")))

    assert response.status_code == 200
    assert response.context["form"].initial == {"role": "reporting"}


def test_an_admin_cannot_change_an_owners_role(world, persona):
    client = persona("admin")
    before = db_state()

    response = client.post(role_url(world, membership_of(world, "owner")), {"role": "billing"})

    assert response.status_code == 422
    assert "Only an owner can add, change or remove owners." in response.content.decode()
    assert db_state() == before


def test_an_admin_cannot_make_someone_owner(world, persona):
    client = persona("admin")
    before = db_state()

    response = client.post(role_url(world, membership_of(world, "billing")), {"role": "owner"})

    assert response.status_code == 422
    assert "Only an owner can add, change or remove owners." in response.content.decode()
    assert db_state() == before


def test_an_admin_changes_a_non_owners_role(world, persona):
    membership = membership_of(world, "reporting")

    response = persona("admin").post(role_url(world, membership), {"role": "billing"})

    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.BILLING
    assert AuditEvent.objects.get().change_made_by == AuditEvent.MadeBy.ORGANIZATION_MEMBER


def test_the_last_owner_cannot_be_demoted(world, persona):
    client = persona("owner")
    before = db_state()

    response = client.post(role_url(world, membership_of(world, "owner")), {"role": "admin"})

    assert response.status_code == 422
    assert "An account needs at least one owner" in response.content.decode()
    assert db_state() == before


def test_an_owner_can_step_down_when_another_owner_exists(world, persona):
    MembershipFactory(user=UserFactory(), account=world.manager, role=Role.OWNER)
    membership = membership_of(world, "owner")

    response = persona("owner").post(role_url(world, membership), {"role": "admin"})

    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN


def test_setting_the_same_role_changes_nothing(world, persona):
    client = persona("owner")
    before = db_state()

    response = client.post(role_url(world, membership_of(world, "billing")), {"role": "billing"})

    assert response.status_code == 422
    assert "is already billing" in response.content.decode()
    assert db_state() == before


def test_a_membership_of_another_account_is_a_404(world, persona):
    foreign = Membership.objects.get(account=world.other_manager)
    client = persona("owner")
    before = db_state()

    role = client.post(reverse("member_role", args=[world.manager.public_id, foreign.pk]), {"role": "billing"})
    remove = client.post(reverse("member_remove", args=[world.manager.public_id, foreign.pk]))

    assert role.status_code == 404
    assert remove.status_code == 404
    assert db_state() == before


# --- Removing ----------------------------------------------------------------------------------------


def remove_url(world, membership: Membership) -> str:
    return reverse("member_remove", args=[world.manager.public_id, membership.pk])


def test_removing_a_member_asks_for_confirmation_first(world, persona):
    client = persona("owner")
    before = db_state()

    response = client.get(remove_url(world, membership_of(world, "billing")))

    content = response.content.decode()
    assert response.status_code == 200
    assert "Remove billing@acme.example.com?" in content
    assert "They lose access to Acme Reseller at once." in content
    assert '<form method="post"' in content
    assert db_state() == before


def test_an_owner_removes_a_member(world, persona):
    membership = membership_of(world, "billing")
    client = persona("owner")

    response = client.post(remove_url(world, membership), follow=True)

    assert response.status_code == 200
    assert "billing@acme.example.com no longer has access to Acme Reseller." in response.content.decode()
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert User.objects.filter(email="billing@acme.example.com").exists()
    event = AuditEvent.objects.get()
    assert event.change_type == "membership.removed"
    assert event.account == world.manager
    assert event.user == world.users["owner"]
    assert event.changes == [
        {"field": "user", "from": "billing@acme.example.com", "to": None},
        {"field": "role", "from": "billing", "to": None},
    ]
    assert (
        client_for(world.users["billing"]).get(reverse("dashboard", args=[world.manager.public_id])).status_code == 404
    )


def test_the_last_owner_cannot_be_removed(world, persona):
    client = persona("owner")
    before = db_state()

    response = client.post(remove_url(world, membership_of(world, "owner")), follow=True)

    assert "The last owner cannot be removed." in response.content.decode()
    assert db_state() == before


def test_an_admin_cannot_remove_an_owner(world, persona):
    MembershipFactory(user=UserFactory(), account=world.manager, role=Role.OWNER)
    client = persona("admin")
    before = db_state()

    page = client.get(remove_url(world, membership_of(world, "owner")))
    response = client.post(remove_url(world, membership_of(world, "owner")), follow=True)

    assert "Only an owner can remove an owner." in page.content.decode()
    assert '<form method="post" class="form">' not in page.content.decode()
    assert "Only an owner can add, change or remove owners." in response.content.decode()
    assert db_state() == before


def test_removing_is_refused_to_billing_members(world, persona):
    client = persona("billing")
    before = db_state()

    response = client.post(remove_url(world, membership_of(world, "reporting")))

    assert response.status_code == 403
    assert db_state() == before
