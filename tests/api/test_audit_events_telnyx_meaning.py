"""GET /v2/audit_events means what Telnyx's does (issue 15 item 4), through the official SDK:
`change_made_by` is `account_manager` on the managed account's side when its manager changed it
(from the manager's pages, its key, or logged in as it), `account_owner` / `organization_member`
when the account's own people did, `telnyx` for the platform; `user_id` the person's UUID; `changes`
by the API's field names, never the internal ones; `alternate_resource_id` the resource's human
identifier (an e-mail, a key's name) or null, never a copy of `resource_id`."""

from __future__ import annotations

import uuid

from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, Invitation
from tests.conftest import log_in_as

INTERNAL_NAMES = {"name", "billing_mode", "allow_custom_pricing", "prefix", "user", "records", "card"}


def _events(api, change_type: str) -> list:
    return [e for e in api.audit_events.list(page_size=250) if e.change_type == change_type]


def test_the_managers_key_changing_a_managed_account_reads_as_account_manager_there(world, make_key, sdk):
    manager_api, managed_api = sdk(make_key(world.manager)), sdk(make_key(world.managed))

    manager_api.managed_accounts.update(str(world.managed.public_id), managed_account_allow_custom_pricing=True)

    (on_managed,) = _events(managed_api, "managed_account.updated")
    assert on_managed.change_made_by == "account_manager"
    (on_manager,) = _events(manager_api, "managed_account.updated")
    assert on_manager.change_made_by == "account_owner"  # the manager's own owner, in its own log
    for event in (on_managed, on_manager):
        assert [(c.field, c.from_, c.to) for c in event.changes] == [
            ("managed_account_allow_custom_pricing", False, True)
        ]
        assert event.user_id == str(world.users["owner"].public_id)
        uuid.UUID(event.user_id)
        assert event.resource_id == str(world.managed.public_id)
        assert event.alternate_resource_id is None  # an account's name is not unique


def test_a_change_made_while_logged_in_as_the_account_reads_as_account_manager_in_both_logs(world, make_key, sdk):
    browser = Client()
    browser.force_login(world.users["owner"])
    assert log_in_as(browser, world.manager, world.managed).status_code == 302
    invite = reverse("member_invite", args=[world.managed.public_id])
    assert browser.post(invite, {"email": "new@alpine.example.com", "role": "billing"}).status_code == 302

    for api in (sdk(make_key(world.managed)), sdk(make_key(world.manager))):
        (event,) = _events(api, "invitation.created")
        assert event.change_made_by == "account_manager"
        assert event.user_id == str(world.users["owner"].public_id)  # the real person, not the owner acted as
        assert event.organization_id == str(world.managed.public_id)
        assert event.alternate_resource_id == "new@alpine.example.com"
        assert event.resource_id != event.alternate_resource_id
        assert [(c.field, c.to) for c in event.changes] == [("email", "new@alpine.example.com"), ("role", "billing")]


def test_the_accounts_own_people_read_as_owner_and_member(world, make_key, sdk):
    admin = world.users["admin"]
    services.update_account_settings(account=world.managed, actor=Actor(user=world.users["managed_owner"]), name="A2")
    services.create_api_key(account=world.manager, name="Admin's sync", actor=Actor(user=admin))

    (renamed,) = _events(sdk(make_key(world.managed)), "account.updated")
    assert renamed.change_made_by == "account_owner"
    assert [(c.field, c.from_, c.to) for c in renamed.changes] == [("organization_name", "Alpine Voice", "A2")]
    keys = [e for e in _events(sdk(make_key(world.manager)), "api_key.created") if e.user_id == str(admin.public_id)]
    assert [(e.change_made_by, e.alternate_resource_id) for e in keys] == [("organization_member", "Admin's sync")]
    assert {c.field for c in keys[0].changes} == {"name", "key_prefix"}


def test_no_internal_field_name_reaches_the_api(world, make_key, sdk):
    services.create_managed_account(
        manager=world.manager, name="Nova Dial", owner_email="owner@nova.example.com", owner_password=None,
        billing_mode=Account.BillingMode.ROLLUP, allow_custom_pricing=False, pricing_hidden=True,
        actor=Actor(user=world.users["owner"]),
    )  # fmt: skip

    (created,) = _events(sdk(make_key(world.manager)), "managed_account.created")

    fields = {c.field: c.to for c in created.changes}
    assert fields == {
        "organization_name": "Nova Dial",
        "email": "owner@nova.example.com",
        "rollup_billing": True,
        "managed_account_allow_custom_pricing": False,
        "pricing_hidden": True,
    }
    assert not INTERNAL_NAMES & set(fields)


def test_a_managed_account_is_created_without_an_owner_when_email_is_left_out(world, make_key, sdk):
    """Telnyx makes `email` optional. Here the account is created with no owner and no invitation:
    its `email` is "", the key in the answer works, nobody signs in to it, it cannot be logged in as."""
    created = sdk(make_key(world.manager)).managed_accounts.create(business_name="Ownerless Dial").data

    assert created.organization_name == "Ownerless Dial" and created.email == ""
    account = Account.objects.get(public_id=created.id)
    assert not account.memberships.exists() and not Invitation.objects.filter(account=account).exists()
    own = sdk(created.api_key)
    assert {e.change_type for e in own.audit_events.list()} == {"managed_account.created", "api_key.created"}
    browser = Client()
    browser.force_login(world.users["owner"])
    detail = browser.get(reverse("managed_detail", args=[world.manager.public_id, account.public_id]))
    assert "has no active owner to log in as" in detail.content.decode()
