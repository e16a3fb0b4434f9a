"""Attacks tried beyond the holes of the security issue, kept as guards: each held when tried.

A managed account's owner attacking its manager, a page of another tenant reached by URL, log-in-as
started without CSRF or by GET, and redirects to another site through `next`."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.actor import Actor
from accounts.services import create_api_key
from tests.conftest import log_in_as

pytestmark = pytest.mark.django_db

OFF_SITE = ["https://evil.example/", "//evil.example/", "/\\evil.example/", "javascript:alert(1)"]


@pytest.mark.parametrize("target", OFF_SITE)
def test_log_in_as_never_redirects_off_site(world, persona, target):
    client = persona("owner")
    url = reverse("managed_log_in_as", args=[world.manager.public_id, world.managed.public_id])
    response = client.post(url, {"next": target})
    assert response.status_code == 302
    assert response["Location"].startswith("/"), response["Location"]
    assert not response["Location"].startswith(("//", "/\\"))


@pytest.mark.parametrize("target", OFF_SITE)
def test_return_never_redirects_off_site(world, persona, target):
    client = persona("manager_acting")
    response = client.post(reverse("acting_return"), {"next": target})
    assert response.status_code == 302
    assert response["Location"].startswith("/") and not response["Location"].startswith(("//", "/\\"))


def test_log_in_as_refuses_a_get_and_a_post_without_csrf(world):
    url = reverse("managed_log_in_as", args=[world.manager.public_id, world.managed.public_id])
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["owner"])
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403
    assert "acting" not in client.session


def test_a_managed_owner_reaches_none_of_its_managers_pages(world, persona):
    client = persona("managed_owner")
    manager, sibling = world.manager.public_id, world.sibling.public_id
    for url in (
        reverse("dashboard", args=[manager]),
        reverse("managed_list", args=[manager]),
        reverse("managed_detail", args=[manager, sibling]),
        reverse("managed_settings", args=[manager, sibling]),
        reverse("audit_log", args=[manager]),
        reverse("api_keys", args=[manager]),
    ):
        assert client.get(url).status_code == 404, url
    response = client.post(reverse("managed_log_in_as", args=[manager, sibling]))
    assert response.status_code in (403, 404)
    assert "acting" not in client.session


def test_a_manager_acting_cannot_reach_its_own_pages_or_another_managed_account(world, persona):
    client = persona("manager_acting")
    assert client.get(reverse("managed_list", args=[world.manager.public_id])).status_code == 404
    assert client.get(reverse("dashboard", args=[world.sibling.public_id])).status_code == 404
    # and cannot chain into another managed account
    response = log_in_as(client, world.manager, world.sibling)
    assert response.status_code in (302, 403, 404)
    assert client.session["acting"]["managed_account_id"] == world.managed.pk


def test_a_managed_accounts_key_sees_nothing_of_its_manager(world):
    _, raw = create_api_key(account=world.managed, name="probe", actor=Actor(user=world.users["managed_owner"]))
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    listing = client.get("/v2/managed_accounts")
    assert listing.status_code in (403, 404)
    other = client.get(f"/v2/managed_accounts/{world.sibling.public_id}")
    assert other.status_code == 404
    assert str(world.sibling.public_id) not in other.content.decode()


def test_another_tenants_pages_are_404_not_403(world, persona):
    """A 403 would tell an outsider that the id exists."""
    client = persona("other_tenant")
    for url in (
        reverse("dashboard", args=[world.manager.public_id]),
        reverse("managed_detail", args=[world.manager.public_id, world.managed.public_id]),
    ):
        assert client.get(url).status_code == 404, url
