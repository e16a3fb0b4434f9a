"""An invitee with no user joins the inviting account from the e-mailed link: it chooses a password
and is a member at once, with no account of its own (issue 14, item 6)."""

import re

from allauth.account.models import EmailAddress
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Invitation, Membership, Role, User

INVITEE = "new.person@acme.example.com"
PASSWORD = "Blue harbour lanterns 42"


def invited(world, role: str = Role.BILLING) -> Invitation:
    return services.invite_member(
        account=world.manager, email=INVITEE, role=role, actor=Actor(user=world.users["owner"])
    )


def link_in_the_email(mailoutbox) -> str:
    (message,) = mailoutbox
    (url,) = re.findall(r"https?://\S+", message.body)
    return url


def test_the_invitation_email_carries_an_absolute_link_on_site_url(
    world, mailoutbox, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://portal.example.com"
    with django_capture_on_commit_callbacks(execute=True):
        invitation = invited(world)

    url = link_in_the_email(mailoutbox)

    assert url == f"https://portal.example.com{reverse('accept_invitation', args=[invitation.token])}"


def test_an_invitee_without_a_user_chooses_a_password_and_joins_without_an_account_of_its_own(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invitation = invited(world, role=Role.REPORTING)
    path = link_in_the_email(mailoutbox).removeprefix("http://127.0.0.1:8000")
    accounts_before = Account.objects.count()
    browser = Client()

    page = browser.get(path)
    joined = browser.post(path, {"password1": PASSWORD, "password2": PASSWORD})

    assert page.status_code == 200
    assert "Choose a password" in page.content.decode()
    assert "Business name" not in page.content.decode()
    assert joined.status_code == 302
    assert joined["Location"] == reverse("dashboard", args=[world.manager.public_id])
    user = User.objects.get(email=INVITEE)
    assert list(Membership.objects.filter(user=user).values_list("account", "role")) == [
        (world.manager.pk, Role.REPORTING)
    ]
    assert Account.objects.count() == accounts_before
    assert EmailAddress.objects.get(user=user).verified  # the link reached that mailbox
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ACCEPTED
    assert AuditEvent.objects.filter(change_type="membership.created", user=user, account=world.manager).count() == 1
    # Signed in, and able to sign in again later with the chosen password.
    assert browser.get(reverse("dashboard", args=[world.manager.public_id])).status_code == 200
    again = Client()
    signed_in = again.post(reverse("account_login"), {"login": INVITEE, "password": PASSWORD})
    assert signed_in.status_code == 302


def test_a_weak_or_mismatched_password_is_refused_with_nothing_created(world):
    invitation = invited(world)
    path = reverse("accept_invitation", args=[invitation.token])
    users_before = User.objects.count()

    weak = Client().post(path, {"password1": "12345", "password2": "12345"})
    mismatched = Client().post(path, {"password1": PASSWORD, "password2": PASSWORD + "x"})

    assert weak.status_code == 422
    assert "too short" in weak.content.decode()
    assert mismatched.status_code == 422
    assert "The two passwords differ." in mismatched.content.decode()
    assert User.objects.count() == users_before
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.PENDING


def test_a_revoked_invitation_creates_no_user(world):
    invitation = invited(world)
    services.revoke_invitation(invitation=invitation, actor=Actor(user=world.users["owner"]))
    path = reverse("accept_invitation", args=[invitation.token])

    response = Client().post(path, {"password1": PASSWORD, "password2": PASSWORD})

    assert response.status_code == 200
    assert "revoked" in response.content.decode()
    assert not User.objects.filter(email=INVITEE).exists()


def test_allauth_emails_name_the_product_and_link_to_site_url(db, mailoutbox, settings):
    settings.SITE_URL = "https://portal.example.com"
    User.objects.create_user(email="someone@example.com", password=PASSWORD)
    EmailAddress.objects.create(email="someone@example.com", user=User.objects.get(), verified=True, primary=True)

    Client().post(reverse("account_reset_password"), {"email": "someone@example.com"})

    (message,) = mailoutbox
    assert message.subject.startswith("[Mission Control] ")
    assert "Hello from Mission Control!" in message.body
    assert "127.0.0.1" not in message.body and "testserver" not in message.body
    (url,) = [u for u in re.findall(r"https?://\S+", message.body) if "/password/reset/" in u]
    assert url.startswith("https://portal.example.com/")
