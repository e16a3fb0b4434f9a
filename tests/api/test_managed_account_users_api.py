"""A managed account's users from the manager's key (Telnyx's /organizations/users):
`GET /v2/managed_accounts/{id}/users` (members, then pending invitations, with roles),
`POST` to invite by e-mail with a role, `DELETE .../users/{user_id}` to remove a member or revoke a
pending invitation by its id. Driven through the official telnyx SDK's generic calls against the
live server; the world: world.manager (Acme Reseller) manages world.managed (Alpine Voice) and
world.sibling; world.other_managed belongs to another manager."""

from __future__ import annotations

import httpx
import pytest
import telnyx

from accounts.models import AuditEvent, Invitation, Membership, Role
from tests.api.conftest import owner_of
from tests.factories import UserFactory

HEADER = "X-Managed-Account-Id"


@pytest.fixture
def client_of(live_server, make_key):
    """client_of(account, user=None, on_behalf=None) -> a telnyx.Telnyx client with a new key."""
    clients = []

    def make(account, *, user=None, on_behalf=None) -> telnyx.Telnyx:
        headers = {} if on_behalf is None else {HEADER: str(on_behalf.public_id)}
        client = telnyx.Telnyx(api_key=make_key(account, user), base_url=live_server.url + "/v2", max_retries=0,
                               default_headers=headers, _strict_response_validation=True)  # fmt: skip
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _users(managed) -> str:
    return f"/managed_accounts/{managed.public_id}/users"


def _invite(client: telnyx.Telnyx, managed, email: str, role: str = Role.BILLING) -> httpx.Response:
    return client.post(_users(managed), cast_to=httpx.Response, body={"email": email, "role": role})


def _delete(client: telnyx.Telnyx, managed, user_id: str) -> httpx.Response:
    return client.delete(f"{_users(managed)}/{user_id}", cast_to=httpx.Response)


def _status(call) -> int:
    try:
        return call().status_code
    except telnyx.APIStatusError as refused:
        return refused.status_code


def test_a_manager_key_lists_invites_and_removes_a_managed_accounts_users(world, client_of):
    manager = client_of(world.manager)
    owner = owner_of(world.managed)
    listed = manager.get(_users(world.managed), cast_to=object)
    assert listed["data"] == [{
        "record_type": "organization_sub_user", "id": str(owner.public_id), "email": owner.email, "role": "owner",
        "user_status": "enabled", "created_at": listed["data"][0]["created_at"], "last_sign_in_at": None,
        "invitation_expires_at": None,
    }]  # fmt: skip
    assert listed["meta"] == {"page_number": 1, "page_size": 20, "total_pages": 1, "total_results": 1}

    invited = _invite(manager, world.managed, "Ada@Example.com", Role.ADMIN)
    assert invited.status_code == 201
    record = invited.json()["data"]
    assert (record["email"], record["role"], record["user_status"]) == ("ada@example.com", "admin", "invited")
    invitation = Invitation.objects.get(account=world.managed, email="ada@example.com", status="pending")
    # Audited on the managed account as the manager: the key's creator acting as its owner.
    event = AuditEvent.objects.get(account=world.managed, change_type="invitation.created")
    assert (event.user, event.acting_as) == (owner_of(world.manager), owner)

    member = UserFactory(email="bea@example.com")
    Membership.objects.create(user=member, account=world.managed, role=Role.REPORTING)
    page_one = manager.get(_users(world.managed), cast_to=object, options={"params": {"page[size]": 2}})
    page_two = manager.get(_users(world.managed), cast_to=object,
                           options={"params": {"page[size]": 2, "page[number]": 2}})  # fmt: skip
    assert [u["email"] for u in page_one["data"] + page_two["data"]] == [owner.email, "bea@example.com",
                                                                         "ada@example.com"]  # fmt: skip
    assert page_two["meta"]["total_results"] == 3 and page_two["meta"]["total_pages"] == 2

    removed = _delete(manager, world.managed, str(member.public_id))
    assert removed.status_code == 200 and removed.json()["data"]["email"] == "bea@example.com"
    assert not Membership.objects.filter(user=member, account=world.managed).exists()
    revoked = _delete(manager, world.managed, record["id"])
    assert revoked.status_code == 200 and revoked.json()["data"]["user_status"] == "invited"
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    assert [u["email"] for u in manager.get(_users(world.managed), cast_to=object)["data"]] == [owner.email]


def test_inviting_an_address_that_has_a_user_answers_as_for_a_new_one(world, client_of):
    manager = client_of(world.manager)
    taken = _invite(manager, world.managed, owner_of(world.other_managed).email)
    new = _invite(manager, world.sibling, "nobody-yet@example.com")
    assert taken.status_code == new.status_code == 201
    strip = {"id", "email", "created_at", "invitation_expires_at"}
    assert {k: v for k, v in taken.json()["data"].items() if k not in strip} == {
        k: v for k, v in new.json()["data"].items() if k not in strip
    }
    assert set(taken.json()) == set(new.json()) == {"data"}


def test_the_last_owner_cannot_be_removed(world, client_of):
    manager = client_of(world.manager)
    with pytest.raises(telnyx.UnprocessableEntityError) as refused:
        _delete(manager, world.managed, str(owner_of(world.managed).public_id))
    assert "last owner" in refused.value.body["errors"][0]["detail"]
    assert Membership.objects.filter(account=world.managed, role=Role.OWNER).count() == 1


def test_only_a_managers_key_reaches_a_managed_accounts_users(world, client_of):
    managed_own = client_of(world.managed)
    on_behalf = client_of(world.manager, on_behalf=world.managed)
    assert _status(lambda: managed_own.get(_users(world.managed), cast_to=httpx.Response)) == 403
    assert _status(lambda: _invite(managed_own, world.managed, "x@example.com")) == 403
    assert _status(lambda: on_behalf.get(_users(world.managed), cast_to=httpx.Response)) == 403
    assert _status(lambda: _delete(on_behalf, world.managed, str(owner_of(world.managed).public_id))) == 403
    other = client_of(world.other_manager)
    assert _status(lambda: other.get(_users(world.managed), cast_to=httpx.Response)) == 404
    assert _status(lambda: _invite(other, world.managed, "x@example.com")) == 404
    manager = client_of(world.manager)
    assert _status(lambda: manager.get(_users(world.other_managed), cast_to=httpx.Response)) == 404
    assert _status(lambda: _delete(manager, world.managed, str(owner_of(world.other_managed).public_id))) == 404
    assert not Invitation.objects.exists()


def test_an_admins_key_changes_users_only_when_the_owner_allows_admins_to_log_in_as(world, client_of):
    admin = client_of(world.manager, user=world.users[Role.ADMIN])
    assert admin.get(_users(world.managed), cast_to=object)["meta"]["total_results"] == 1  # reading is allowed
    with pytest.raises(telnyx.PermissionDeniedError) as refused:
        _invite(admin, world.managed, "cy@example.com")
    assert refused.value.body["errors"][0]["code"] == "not_allowed"
    world.manager.admins_can_log_in_as = True
    world.manager.save(update_fields=["admins_can_log_in_as"])
    assert _invite(admin, world.managed, "cy@example.com").status_code == 201


def test_bad_input_is_a_422_at_its_field(world, client_of):
    manager = client_of(world.manager)
    for body, pointer in (({"email": "not an address", "role": "admin"}, "/email"),
                          ({"email": "dee@example.com", "role": "superuser"}, "/role"),
                          ({"email": "dee@example.com"}, "/role")):  # fmt: skip
        with pytest.raises(telnyx.UnprocessableEntityError) as refused:
            manager.post(_users(world.managed), cast_to=httpx.Response, body=body)
        assert refused.value.body["errors"][0]["source"] == {"pointer": pointer}
    with pytest.raises(telnyx.NotFoundError):
        _delete(manager, world.managed, "not-a-uuid")
    assert not Invitation.objects.exists()
