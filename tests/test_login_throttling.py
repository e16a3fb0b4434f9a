"""Every way in is throttled: the portal's sign-in (allauth), the admin's sign-in (now allauth's),
password reset requests, the MFA code step and API key authentication; hole 12's 429s say when
to retry. The suite runs with allauth's limits off (portal/settings.py); these tests turn them on."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts.actor import Actor
from accounts.services import create_api_key
from tests.factories import PASSWORD, UserFactory
from tests.mfa_support import add_totp, totp_code

THROTTLED = "Too many failed login attempts"


@pytest.fixture
def rate_limits(settings):
    """allauth's default limits, as production has them, on a clean cache."""
    settings.ACCOUNT_RATE_LIMITS = {}
    cache.clear()
    yield
    cache.clear()


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def is_throttled(response) -> bool:
    return response.status_code == 429 or THROTTLED in response.content.decode()


# --- Portal sign-in ------------------------------------------------------------------------------------


def test_the_portal_sign_in_is_throttled_after_repeated_wrong_passwords(world, rate_limits):
    owner = world.users["owner"]
    client = Client()

    answers = [
        client.post(reverse("account_login"), {"login": owner.email, "password": f"wrong-{i}"}) for i in range(30)
    ]
    right = client.post(reverse("account_login"), {"login": owner.email, "password": PASSWORD})

    assert not any(is_throttled(answer) for answer in answers[:5])
    assert all(is_throttled(answer) for answer in answers[5:])
    assert is_throttled(right)
    assert not signed_in(client)


def test_the_portal_sign_in_is_throttled_per_address_across_emails(world, rate_limits):
    client = Client()

    answers = [
        client.post(reverse("account_login"), {"login": f"nobody{i}@example.com", "password": "wrong"})
        for i in range(12)
    ]

    assert is_throttled(answers[-1])


# --- The admin's sign-in -------------------------------------------------------------------------------


def test_hole_2_admin_login_is_throttled(db, rate_limits):
    """30 wrong passwords in a row at /staff/login/ were all checked; the 31st, right, one opened the admin."""
    staff = UserFactory(email="ops@platform.example.com", is_staff=True, is_superuser=True)
    client = Client()

    for i in range(30):
        client.post(reverse("admin:login"), {"username": staff.email, "login": staff.email, "password": f"wrong-{i}"})
    client.post(reverse("admin:login"), {"username": staff.email, "login": staff.email, "password": PASSWORD})

    assert not signed_in(client)
    assert client.get("/staff/").status_code == 302
    # The admin's login now sends staff to allauth's, which counts the failures.
    target = client.get(reverse("admin:login"))["Location"]
    assert target.startswith(reverse("account_login"))
    answers = [client.post(target, {"login": staff.email, "password": f"wrong-{i}"}) for i in range(30)]
    assert all(is_throttled(answer) for answer in answers[5:])
    assert is_throttled(client.post(target, {"login": staff.email, "password": PASSWORD}))
    assert not signed_in(client)


# --- Password reset ------------------------------------------------------------------------------------


def test_password_reset_requests_are_throttled(world, rate_limits):
    client = Client()
    email = world.users["owner"].email

    answers = [client.post(reverse("account_reset_password"), {"email": email}) for _ in range(6)]

    assert [a.status_code for a in answers[:5]] == [302] * 5
    assert answers[5].status_code == 429


# --- The MFA code step ---------------------------------------------------------------------------------


def test_the_mfa_code_step_is_throttled(world, rate_limits):
    owner = world.users["owner"]
    _, secret = add_totp(owner)
    client = Client()
    password_step = client.post(reverse("account_login"), {"login": owner.email, "password": PASSWORD})
    assert password_step["Location"] == reverse("mfa_authenticate")
    right = totp_code(secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    answers = [client.post(reverse("mfa_authenticate"), {"code": wrong}) for _ in range(6)]
    last = client.post(reverse("mfa_authenticate"), {"code": right})

    assert not any(is_throttled(answer) for answer in answers[:5])
    assert is_throttled(answers[5])
    assert is_throttled(last)
    assert not signed_in(client)


# --- API key authentication (hole 12) ------------------------------------------------------------------


@pytest.fixture
def api_limits(settings):
    settings.API_AUTH_FAILURES_PER_MINUTE = 10
    settings.API_RATE_LIMIT_PER_MINUTE = 20
    cache.clear()
    yield
    cache.clear()


def api_get(client: Client, key: str, address: str = "198.51.100.7"):
    return client.get("/v2/balance", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=address)


def assert_retry_after(response) -> None:
    assert response.status_code == 429
    assert response.json()["errors"][0]["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_hole_12_bad_keys_are_rate_limited_with_retry_after(world, api_limits, django_assert_num_queries):
    _, good = create_api_key(account=world.standard, name="Good", actor=Actor(user=world.users["standard_owner"]))
    client = Client()

    failures = [api_get(client, f"KEY000000000000_not-a-key-{i}") for i in range(10)]
    assert [r.status_code for r in failures] == [401] * 10

    with django_assert_num_queries(0):  # a refused address costs no key lookup
        blocked = api_get(client, "KEY000000000000_not-a-key-11")
        blocked_good_key = api_get(client, good)
    assert_retry_after(blocked)
    assert_retry_after(blocked_good_key)
    assert api_get(client, good, address="198.51.100.8").status_code == 200  # another address is not blocked


def test_hole_12_an_ipv6_client_is_counted_by_its_64(db, api_limits):
    client = Client()

    for i in range(10):
        api_get(client, "KEY000000000000_not-a-key", address=f"2001:db8:7:7::{i + 1:x}")

    assert_retry_after(api_get(client, "KEY000000000000_not-a-key", address="2001:db8:7:7:ffff::1"))
    assert api_get(client, "KEY000000000000_not-a-key", address="2001:db8:7:8::1").status_code == 401


def test_hole_12_the_per_key_limit_answers_429_with_retry_after(world, api_limits):
    _, good = create_api_key(account=world.standard, name="Good", actor=Actor(user=world.users["standard_owner"]))
    client = Client()

    answers = [api_get(client, good) for _ in range(21)]

    assert [a.status_code for a in answers[:20]] == [200] * 20
    assert_retry_after(answers[20])
    assert int(answers[20]["Retry-After"]) == pytest.approx(60 - int(time.time()) % 60, abs=2)
