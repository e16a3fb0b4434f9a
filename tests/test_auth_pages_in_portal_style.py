"""allauth's pages wear the portal's look: signing in, signing up, resetting a password, verifying an
e-mail address, the two-factor challenge and re-authentication are one card on the portal's page
(allauth/layouts/entrance.html); two-factor set-up and the other sign-in settings sit in the
portal's layout, marked in the sidebar's "Your sign-in" section (allauth/layouts/manage.html). Their forms and buttons
carry the portal's classes (templates/allauth/elements/)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD, UserFactory
from tests.mfa_support import add_totp

pytestmark = pytest.mark.django_db

STYLESHEET = "/static/css/portal.css"


def assert_entrance_card(response) -> str:
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    assert STYLESHEET in html
    assert html.count('<main id="main" class="auth-card">') == 1
    assert 'class="sidebar"' not in html
    return html


@pytest.mark.parametrize(
    "url_name",
    ["account_login", "account_signup", "account_reset_password", "account_reset_password_done"],
)
def test_signed_out_pages_are_a_card_in_the_portals_look(client, url_name):
    html = assert_entrance_card(client.get(reverse(url_name)))
    if url_name != "account_reset_password_done":
        assert re.search(r'<form class="form auth-form" method="post"', html)
        assert re.search(r'<button\s+class="button[^"]*"[^>]*type="submit"', html)


def test_the_e_mail_verification_pages_are_a_card_too(client):
    response = client.post(
        reverse("account_signup"),
        {
            "email": "new.person@example.com",
            "organization_name": "New Co",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
        follow=True,
    )
    html = assert_entrance_card(response)
    assert "Verify Your Email Address" in html
    assert_entrance_card(client.get(reverse("account_confirm_email", args=["not-a-real-key"])))


def test_the_two_factor_challenge_is_a_card(client):
    user = UserFactory()
    add_totp(user)
    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD}, follow=True)
    html = assert_entrance_card(response)
    assert response.redirect_chain[-1][0] == reverse("mfa_authenticate")
    assert 'name="code"' in html


def test_re_authentication_is_a_card(client):
    client.force_login(UserFactory())
    html = assert_entrance_card(client.get(reverse("account_reauthenticate")))
    assert 'type="password"' in html


@pytest.mark.parametrize(
    ("url_name", "current"),
    [
        ("mfa_index", "/auth/2fa/"),
        # Outside an account the person's sign-in pages are a section of their own ("Your sign-in"),
        # each page its own link (tests/test_sidebar_and_switcher.py).
        ("account_change_password", "/auth/password/change/"),
        ("mfa_activate_totp", "/auth/2fa/"),
    ],
)
def test_sign_in_settings_sit_in_the_portal_under_security(url_name, current):
    client = Client()
    user = UserFactory()
    client.force_login(user)
    # Activating an authenticator asks for the password again first: that page is a card.
    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    response = client.get(reverse(url_name))
    assert response.status_code == 200
    html = response.content.decode()
    assert STYLESHEET in html and 'class="sidebar"' in html
    assert re.search(rf'<a href="{current}"[^>]*aria-current="page"', html), f"{current} is not the current page"
    assert 'class="manage-card card"' in html
