"""Telnyx's own values on the managed-accounts endpoints (issue 15, item 2): the status filter's
`active`, `blocked` and `all` beside ours, and `reenable_all_connections`, accepted and documented
as having nothing to re-enable here. Through the official SDK, and raw for what it cannot send."""

from __future__ import annotations

import pytest
import telnyx

from accounts import services
from accounts.actor import Actor
from accounts.models import Account
from tests.api.conftest import assert_error


@pytest.fixture
def fleet(world) -> dict[str, Account]:
    """Beside the world's two enabled managed accounts (Alpine Voice, Blue Harbor): one disabled
    and one cancelled."""
    actor = Actor(user=world.users["owner"])
    made = {}
    for name, action in (("Quartz Networks", "disable"), ("Cobalt Calls", "cancel")):
        made[action] = services.create_managed_account(
            manager=world.manager, name=name, owner_email=f"{action}@fleet.example.com", owner_password=None,
            billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False, pricing_hidden=False, actor=actor,
        )  # fmt: skip
        services.change_managed_account_status(managed=made[action], action=action, actor=actor)
    return made


@pytest.fixture
def manager_api(world, make_key, sdk) -> telnyx.Telnyx:
    return sdk(make_key(world.manager))


def _ids(*accounts: Account) -> set[str]:
    return {str(a.public_id) for a in accounts}


def test_telnyxs_status_values_filter_as_telnyx_means_them(world, fleet, manager_api):
    """BUG (issue 15, item 2): `active`, `blocked` and `all` were 422s."""

    def listed(status: str, **params) -> set[str]:
        return {a.id for a in manager_api.managed_accounts.list(filter={"status": {"eq": status}}, **params)}

    enabled, disabled, cancelled = _ids(world.managed, world.sibling), _ids(fleet["disable"]), _ids(fleet["cancel"])
    assert listed("active") == enabled == listed("enabled")
    assert listed("blocked") == disabled == listed("disabled")
    assert listed("cancelled") == cancelled
    assert listed("all") == enabled | disabled | cancelled
    # A status filter names the statuses it wants, cancelled ones included, whatever the flag says.
    assert listed("all", include_cancelled_accounts=False) == enabled | disabled | cancelled


def test_an_unknown_status_is_a_422_that_lists_every_accepted_value(world, fleet, make_key, raw_api):
    response = raw_api(make_key(world.manager)).get("managed_accounts", {"filter[status][eq]": "frozen"})

    error = assert_error(response, 422, parameter="filter[status][eq]")
    for value in ("all", "active", "enabled", "blocked", "disabled", "cancelled"):
        assert value in error["detail"], error


@pytest.mark.parametrize("flag", [True, False])
def test_reenable_all_connections_is_accepted_and_the_answer_says_it_changes_nothing(world, manager_api, flag):
    managed_id = str(world.managed.public_id)
    manager_api.managed_accounts.actions.disable(managed_id)

    answer = manager_api.managed_accounts.actions.with_raw_response.enable(managed_id, reenable_all_connections=flag)

    assert answer.parse().data.status == "enabled"  # type: ignore[union-attr]  # our extra field
    notes = answer.json()["meta"]["notes"]  # type: ignore[index]
    assert [n["source"] for n in notes] == [{"pointer": "/reenable_all_connections"}]
    assert notes[0]["code"] == "ignored_field" and "connection" in notes[0]["detail"]


def test_an_enable_without_the_flag_has_no_note(world, manager_api):
    managed_id = str(world.managed.public_id)
    manager_api.managed_accounts.actions.disable(managed_id)

    answer = manager_api.managed_accounts.actions.with_raw_response.enable(managed_id)

    assert "meta" not in answer.json()  # type: ignore[operator]


def test_a_non_boolean_reenable_all_connections_is_a_422(world, make_key, raw_api):
    api = raw_api(make_key(world.manager))
    response = api.post(f"managed_accounts/{world.managed.public_id}/actions/enable", {"reenable_all_connections": 1})
    assert_error(response, 422, pointer="/reenable_all_connections")
