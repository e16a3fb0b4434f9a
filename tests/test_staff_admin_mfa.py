"""Hole 2 of the security issue: platform staff sign in through allauth, with MFA, before the admin
site opens; TOTP secrets are stored encrypted and the admin never shows them."""

from __future__ import annotations

import importlib
from urllib.parse import urlencode

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.apps import apps
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.factories import PASSWORD, UserFactory
from tests.mfa_support import add_totp, force_login_with_mfa, totp_code

ADMIN = "/staff/"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Used TOTP codes are remembered in the cache; no test inherits another's."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def staff(db) -> User:
    return UserFactory(email="ops@platform.example.com", is_staff=True, is_superuser=True)


def admin_opens(client: Client) -> bool:
    return client.get(ADMIN).status_code == 200


def allauth_login(next_url: str = ADMIN) -> str:
    return f"{reverse('account_login')}?{urlencode({'next': next_url})}"


# --- The admin's own login ------------------------------------------------------------------------------


def test_hole_2_the_admin_login_skips_neither_mfa_nor_allauth(staff):
    """POST /staff/login/ with the right password, for a staff member with TOTP on, used to open the admin."""
    add_totp(staff)
    client = Client()

    response = client.post(
        reverse("admin:login"), {"username": staff.email, "password": PASSWORD, "next": ADMIN}, follow=True
    )

    assert "_auth_user_id" not in client.session
    assert not admin_opens(client)
    assert response.redirect_chain[0] == (allauth_login(), 302)


def test_staff_sign_in_with_password_then_totp_before_the_admin_opens(staff):
    _, secret = add_totp(staff)
    client = Client()

    password_step = client.post(allauth_login(), {"login": staff.email, "password": PASSWORD})

    assert password_step.status_code == 302
    assert password_step["Location"] == reverse("mfa_authenticate")
    assert not admin_opens(client)

    totp_step = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})

    assert totp_step.status_code == 302
    assert totp_step["Location"] == ADMIN
    assert admin_opens(client)


@pytest.mark.parametrize(
    ("next_url", "kept"),
    [
        ("/staff/accounts/account/", "/staff/accounts/account/"),
        ("https://evil.example.com/staff/", ADMIN),
        ("//evil.example.com/staff/", ADMIN),
        ("/billing/somewhere/", ADMIN),
        ("", ADMIN),
    ],
    ids=["admin-page", "other-host", "scheme-relative", "outside-the-admin", "none"],
)
def test_hole_2_the_admin_login_redirects_to_allauth_with_a_validated_next(db, next_url, kept):
    response = Client().get(reverse("admin:login"), {"next": next_url} if next_url else {})

    assert response.status_code == 302
    assert response["Location"] == allauth_login(kept)


def test_hole_2_a_signed_in_customer_is_refused_at_the_admin_login(world):
    client = Client()
    client.force_login(world.users["owner"])

    assert client.get(reverse("admin:login"), {"next": ADMIN}).status_code == 403
    assert not admin_opens(client)


# --- Staff must have MFA ------------------------------------------------------------------------------


def test_hole_2_admin_login_requires_mfa(staff):
    """A staff member without an authenticator is sent to set one up; the admin stays closed."""
    client = Client()
    signed_in = client.post(allauth_login(), {"login": staff.email, "password": PASSWORD}, follow=True)

    # to TOTP set-up (which asks for the password again first: allauth's reauthentication)
    assert (reverse("mfa_activate_totp"), 302) in signed_in.redirect_chain
    assert client.session["_auth_user_id"] == str(staff.pk)
    assert not admin_opens(client)


def test_hole_2_a_staff_session_that_did_not_pass_mfa_is_refused_by_the_admin(staff):
    """A session signed in without the MFA step (a plain Django login, or signed in before the
    authenticator was added) does not open the admin; a TOTP reauthentication does."""
    _, secret = add_totp(staff)
    client = Client()
    client.force_login(staff)

    refused = client.get(ADMIN, follow=True)

    assert refused.status_code == 200
    assert refused.redirect_chain[-1] == (f"{reverse('mfa_reauthenticate')}?{urlencode({'next': ADMIN})}", 302)
    assert not admin_opens(client)

    reauthenticated = client.post(refused.redirect_chain[-1][0], {"code": totp_code(secret)})

    assert reauthenticated["Location"] == ADMIN
    assert admin_opens(client)


def test_hole_2_removing_the_authenticator_closes_the_admin(staff):
    client = Client()
    force_login_with_mfa(client, staff)
    assert admin_opens(client)

    Authenticator.objects.filter(user=staff).delete()

    assert not admin_opens(client)


# --- TOTP secrets at rest ------------------------------------------------------------------------------


def test_hole_2_totp_secrets_are_stored_encrypted(staff):
    authenticator, secret = add_totp(staff)
    recovery = RecoveryCodes.activate(staff).instance

    stored = Authenticator.objects.get(pk=authenticator.pk).data["secret"]
    assert secret not in stored
    assert stored.startswith("fernet:")
    assert Authenticator.objects.get(pk=recovery.pk).data["seed"].startswith("fernet:")
    assert TOTP(Authenticator.objects.get(pk=authenticator.pk)).validate_code(totp_code(secret))
    assert len(RecoveryCodes(recovery).get_unused_codes()) == 10


def test_hole_2_plaintext_secrets_written_before_encryption_are_encrypted_by_the_migration(staff):
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    legacy = Authenticator.objects.create(user=staff, type=Authenticator.Type.TOTP, data={"secret": secret})
    assert TOTP(legacy).validate_code(totp_code(secret))  # still works before the migration ran
    cache.clear()
    migration = importlib.import_module("portal.migrations.0001_encrypt_mfa_secrets")

    migration.encrypt_secrets(apps, None)
    migration.encrypt_secrets(apps, None)  # idempotent

    stored = Authenticator.objects.get(pk=legacy.pk).data["secret"]
    assert stored.startswith("fernet:") and secret not in stored
    assert TOTP(Authenticator.objects.get(pk=legacy.pk)).validate_code(totp_code(secret))


def test_hole_2_the_admin_never_shows_mfa_secrets(staff):
    client = Client()
    authenticator = force_login_with_mfa(client, staff)
    stored = authenticator.data["secret"]

    pages = [
        client.get(reverse("admin:mfa_authenticator_changelist")),
        client.get(reverse("admin:mfa_authenticator_change", args=[authenticator.pk])),
    ]

    for page in pages:
        assert page.status_code == 200
        assert stored not in page.content.decode()
        assert '"secret"' not in page.content.decode()
    assert client.get(reverse("admin:mfa_authenticator_add")).status_code == 403
