"""API keys in the portal: an account's own keys page, and a manager's keys for its managed accounts.

A key's secret is shown once, on the page answering the POST that created it; lists show its prefix.
"""

import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, ApiKey, AuditEvent
from tests.factories import account_with_owner

RAW_KEY = re.compile(r'id="new-api-key"[^>]*>(KEY[^<]+)<')


def db_state() -> dict:
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in (ApiKey, AuditEvent)}


def keys_url(account: Account) -> str:
    return reverse("api_keys", args=[account.public_id])


def create_url(account: Account) -> str:
    return reverse("api_key_create", args=[account.public_id])


def revoke_url(key: ApiKey) -> str:
    return reverse("api_key_revoke", args=[key.account.public_id, key.pk])


def managed_detail_url(world, managed: Account | None = None) -> str:
    """The managed account's API keys tab of its hub (where its keys are listed and created)."""
    return reverse("managed_api_keys", args=[world.manager.public_id, (managed or world.managed).public_id])


def managed_create_url(world, managed: Account | None = None) -> str:
    return reverse("managed_api_key_create", args=[world.manager.public_id, (managed or world.managed).public_id])


def managed_revoke_url(world, key: ApiKey, managed: Account | None = None) -> str:
    managed = managed or world.managed
    return reverse("managed_api_key_revoke", args=[world.manager.public_id, managed.public_id, key.pk])


def raw_key_in(response) -> str:
    match = RAW_KEY.search(response.content.decode())
    assert match, "the new key is not on the page"
    return match.group(1)


def make_key(account: Account, user, name: str = "Existing") -> tuple[ApiKey, str]:
    return services.create_api_key(account=account, name=name, actor=Actor(user=user))


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


# --- An account's own keys ------------------------------------------------------------------------------


def test_the_new_key_is_shown_once_and_works(world, persona):
    client = persona("owner")

    response = client.post(create_url(world.manager), {"name": "  Billing sync  "})

    assert response.status_code == 200
    raw = raw_key_in(response)
    key = ApiKey.objects.get()
    assert (key.account, key.name, key.created_by) == (world.manager, "Billing sync", world.users["owner"])
    assert raw.startswith(f"KEY{key.prefix}_")
    assert services.api_key_for(raw) == key
    page = response.content.decode()
    assert "Copy this key now" in page and "never be shown again" in page
    assert "no-store" in response["Cache-Control"]
    # Never kept where it could be read back or logged: no message, nothing in the session.
    assert not messages_of(response)
    assert raw not in str(dict(client.session.items()))
    assert raw not in str(response.cookies)
    assert key.key_hash != raw and raw not in key.key_hash

    listing = client.get(keys_url(world.manager))

    assert listing.status_code == 200
    listed = listing.content.decode()
    assert raw not in listed
    assert f"KEY{key.prefix}…" in listed
    assert "Billing sync" in listed and world.users["owner"].email in listed and "Active" in listed
    assert raw not in client.get(revoke_url(key)).content.decode()


def test_creating_a_key_is_audited_without_the_secret(world, persona):
    response = persona("owner").post(create_url(world.manager), {"name": "CI"})
    raw = raw_key_in(response)
    key = ApiKey.objects.get()

    event = AuditEvent.objects.get()
    assert event.change_type == "api_key.created"
    assert (event.account, event.related_account) == (world.manager, None)
    assert event.resource_id == str(key.pk)
    assert event.user == world.users["owner"] and event.acting_as is None
    assert event.change_made_by == AuditEvent.MadeBy.ACCOUNT_OWNER
    assert event.changes == [
        {"field": "name", "from": None, "to": "CI"},
        {"field": "prefix", "from": None, "to": key.prefix},
    ]
    assert raw not in str(event.changes)


def test_an_admin_creates_keys_as_an_organization_member(world, persona):
    response = persona("admin").post(create_url(world.manager), {"name": "Admin key"})

    assert response.status_code == 200
    event = AuditEvent.objects.get(change_type="api_key.created")
    assert event.user == world.users["admin"]
    assert event.change_made_by == AuditEvent.MadeBy.ORGANIZATION_MEMBER


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "This field is required."),
        ("    ", "This field is required."),
        ("x" * 101, "at most 100 characters"),
    ],
    ids=["empty", "blank", "too-long"],
)
def test_a_bad_name_is_a_form_error_and_creates_nothing(world, persona, name, message):
    client = persona("owner")
    before = db_state()

    response = client.post(create_url(world.manager), {"name": name})

    assert response.status_code == 422
    page = response.content.decode()
    assert message in page
    assert 'id="new-api-key"' not in page
    assert db_state() == before


def test_a_name_of_exactly_100_characters_is_accepted(world, persona):
    response = persona("owner").post(create_url(world.manager), {"name": "n" * 100})

    assert response.status_code == 200
    assert ApiKey.objects.get().name == "n" * 100


def test_revoking_asks_for_confirmation_first(world, persona):
    key, raw = make_key(world.manager, world.users["owner"])
    before = db_state()

    response = persona("admin").get(revoke_url(key))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Revoke the API key “Existing”?" in page
    assert f"KEY{key.prefix}…" in page
    assert "Revoke the key</button>" in page
    assert db_state() == before
    assert services.api_key_for(raw) == key


def test_a_confirmed_revocation_stops_the_key_and_is_audited(world, persona):
    key, raw = make_key(world.manager, world.users["owner"])
    client = persona("admin")

    response = client.post(revoke_url(key))

    assert response.status_code == 302
    assert response["Location"] == keys_url(world.manager)
    assert messages_of(response)[0][0] == "success"
    key.refresh_from_db()
    assert key.revoked_at is not None and not key.is_active
    assert services.api_key_for(raw) is None
    event = AuditEvent.objects.get(change_type="api_key.revoked")
    assert (event.account, event.resource_id) == (world.manager, str(key.pk))
    assert event.user == world.users["admin"]
    assert event.change_made_by == AuditEvent.MadeBy.ORGANIZATION_MEMBER
    listed = client.get(keys_url(world.manager)).content.decode()
    assert "Revoked" in listed
    assert revoke_url(key) not in listed


def test_revoking_twice_changes_nothing_and_says_so(world, persona):
    key, _ = make_key(world.manager, world.users["owner"])
    services.revoke_api_key(key=key, actor=Actor(user=world.users["owner"]))
    client = persona("owner")
    before = db_state()

    confirm = client.get(revoke_url(key))
    response = client.post(revoke_url(key))

    assert confirm.status_code == 200
    assert "already revoked" in confirm.content.decode()
    assert '<form method="post" class="form">' not in confirm.content.decode()
    assert response.status_code == 302
    assert messages_of(response) == [("error", "That key is already revoked.")]
    assert db_state() == before


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_accounts_key_is_a_404(world, persona, method):
    foreign, _ = make_key(world.other_manager, world.users["other_tenant"])
    subordinate, _ = make_key(world.managed, world.users["managed_owner"])
    client = persona("owner")
    before = db_state()

    for key in (foreign, subordinate):
        url = reverse("api_key_revoke", args=[world.manager.public_id, key.pk])
        assert getattr(client, method)(url).status_code == 404
    assert db_state() == before


def test_the_list_is_scoped_to_the_account_and_paginated(world, persona):
    owner = world.users["owner"]
    ApiKey.objects.bulk_create(
        ApiKey(account=world.manager, name=f"Bulk {i:02d}", prefix=f"bulk{i:04d}", key_hash=f"h{i}", created_by=owner)
        for i in range(30)
    )
    managed_key, _ = make_key(world.managed, world.users["managed_owner"], name="Managed only")
    client = persona("owner")

    first = client.get(keys_url(world.manager)).content.decode()
    second = client.get(keys_url(world.manager) + "?page=2").content.decode()

    assert first.count("<code>KEY") == 25 and second.count("<code>KEY") == 5
    assert "Page 1 of 2 (30 keys)" in first and "?page=2" in first
    assert "Managed only" not in first + second and managed_key.prefix not in first + second
    assert "Managed only" in persona("managed_owner").get(keys_url(world.managed)).content.decode()


def test_the_nav_links_to_the_keys_for_owners_and_admins_only(world, persona):
    link = f'href="{keys_url(world.manager)}"'
    dashboard = reverse("dashboard", args=[world.manager.public_id])
    for name, shown in (("owner", True), ("admin", True), ("billing", False), ("reporting", False)):
        assert (link in persona(name).get(dashboard).content.decode()) is shown, name


def test_a_disabled_account_has_no_keys_page(world):
    account, owner = account_with_owner(name="Paused", disabled=True)
    client = Client()
    client.force_login(owner)

    assert client.get(keys_url(account)).status_code == 403
    assert client.post(create_url(account), {"name": "x"}).status_code == 403
    assert not ApiKey.objects.exists()


# --- A manager's keys for its managed accounts -----------------------------------------------------------


def test_a_manager_creates_a_key_for_its_managed_account(world, persona):
    client = persona("admin")

    response = client.post(managed_create_url(world), {"name": "Customer PBX"})

    assert response.status_code == 200
    raw = raw_key_in(response)
    key = ApiKey.objects.get()
    assert (key.account, key.name, key.created_by) == (world.managed, "Customer PBX", world.users["admin"])
    assert services.api_key_for(raw) == key
    assert "no-store" in response["Cache-Control"]
    assert managed_detail_url(world) in response.content.decode()
    event = AuditEvent.objects.get()
    assert event.change_type == "api_key.created"
    assert (event.account, event.related_account) == (world.managed, world.manager)
    assert event.user == world.users["admin"] and event.acting_as is None

    detail = client.get(managed_detail_url(world)).content.decode()
    assert raw not in detail
    assert f"KEY{key.prefix}…" in detail and "Customer PBX" in detail
    assert managed_revoke_url(world, key) in detail


def test_a_manager_revokes_a_managed_accounts_key_after_confirming(world, persona):
    key, raw = make_key(world.managed, world.users["managed_owner"])
    client = persona("owner")

    confirm = client.get(managed_revoke_url(world, key))
    assert confirm.status_code == 200
    assert services.api_key_for(raw) == key
    response = client.post(managed_revoke_url(world, key))

    assert response.status_code == 302
    assert response["Location"] == managed_detail_url(world)
    assert services.api_key_for(raw) is None
    event = AuditEvent.objects.get(change_type="api_key.revoked")
    assert event.account == world.managed
    assert event.user == world.users["owner"] and event.acting_as is None


def test_bad_input_on_the_managed_page_creates_nothing(world, persona):
    client = persona("owner")
    before = db_state()

    response = client.post(managed_create_url(world), {"name": "y" * 101})

    assert response.status_code == 422
    assert "at most 100 characters" in response.content.decode()
    assert world.managed.name in response.content.decode()
    assert db_state() == before


def test_a_disabled_managed_account_gets_no_new_key(world, persona):
    Account.objects.filter(pk=world.managed.pk).update(status=Account.Status.DISABLED)
    client = persona("owner")
    before = db_state()

    detail = client.get(managed_detail_url(world)).content.decode()
    response = client.post(managed_create_url(world), {"name": "Too late"})

    assert "no new key can be created" in detail
    assert response.status_code == 422
    assert "cannot have new API keys" in response.content.decode()
    assert db_state() == before


def test_another_managers_accounts_and_keys_are_404(world, persona):
    other_key, _ = make_key(world.other_managed, world.users["other_managed_owner"])
    sibling_key, _ = make_key(world.sibling, world.users["sibling_owner"])
    own_key, _ = make_key(world.manager, world.users["owner"])
    before = db_state()
    owner = persona("owner")
    stranger = persona("other_tenant")

    assert owner.post(managed_create_url(world, world.other_managed), {"name": "x"}).status_code == 404
    for method in ("get", "post"):
        assert getattr(owner, method)(managed_revoke_url(world, other_key, world.other_managed)).status_code == 404
        # A key of a sibling, or of the manager itself, through world.managed's URL.
        assert getattr(owner, method)(managed_revoke_url(world, sibling_key)).status_code == 404
        assert getattr(owner, method)(managed_revoke_url(world, own_key)).status_code == 404
    # The other manager, through its own account id or world.manager's.
    for manager in (world.other_manager, world.manager):
        url = reverse("managed_api_key_create", args=[manager.public_id, world.managed.public_id])
        assert stranger.post(url, {"name": "x"}).status_code == 404
    assert db_state() == before


def test_billing_and_reporting_members_of_the_manager_cannot_manage_keys(world, persona):
    key, _ = make_key(world.managed, world.users["managed_owner"])
    before = db_state()
    for name in ("billing", "reporting"):
        client = persona(name)
        assert client.post(managed_create_url(world), {"name": "x"}).status_code == 403
        assert client.post(managed_revoke_url(world, key)).status_code == 403
        assert client.post(create_url(world.manager), {"name": "x"}).status_code == 403
    assert db_state() == before


# --- A manager logged in as a managed account -------------------------------------------------------------


def test_a_manager_acting_manages_the_accounts_keys_like_its_owner(world, persona):
    existing, _ = make_key(world.managed, world.users["managed_owner"], name="Owner key")
    make_key(world.manager, world.users["owner"], name="Manager own key")
    client = persona("manager_acting")

    listing = client.get(keys_url(world.managed))
    assert listing.status_code == 200
    assert "Owner key" in listing.content.decode()
    assert "Manager own key" not in listing.content.decode()
    assert client.get(keys_url(world.manager)).status_code == 404

    response = client.post(create_url(world.managed), {"name": "Set up by the reseller"})

    assert response.status_code == 200
    raw = raw_key_in(response)
    key = ApiKey.objects.get(name="Set up by the reseller")
    assert key.account == world.managed
    assert services.api_key_for(raw) == key
    created = AuditEvent.objects.filter(change_type="api_key.created", resource_id=str(key.pk)).get()
    assert created.change_made_by == AuditEvent.MadeBy.ACCOUNT_MANAGER
    assert created.user == world.users["owner"]
    assert created.acting_as == world.users["managed_owner"]

    revoke = client.post(revoke_url(existing))

    assert revoke.status_code == 302
    existing.refresh_from_db()
    assert existing.revoked_at is not None and existing.revoked_at <= timezone.now()
    revoked = AuditEvent.objects.get(change_type="api_key.revoked")
    assert revoked.change_made_by == AuditEvent.MadeBy.ACCOUNT_MANAGER
    assert (revoked.user, revoked.acting_as) == (world.users["owner"], world.users["managed_owner"])


def test_a_managers_key_changes_on_a_managed_account_are_made_by_the_account_manager(world):
    from accounts.actor import Actor
    from accounts.models import AuditEvent
    from accounts.services import create_api_key, revoke_api_key

    key, _ = create_api_key(account=world.managed, name="From the manager", actor=Actor(user=world.users["owner"]))
    revoke_api_key(key=key, actor=Actor(user=world.users["owner"]))

    for change_type in ("api_key.created", "api_key.revoked"):
        event = AuditEvent.objects.get(change_type=change_type)
        assert event.change_made_by == "account_manager"
        assert (event.account, event.related_account) == (world.managed, world.manager)
