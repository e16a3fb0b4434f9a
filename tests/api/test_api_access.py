"""accounts.api_access: the account a key acts on, 404 for what it may not see, 403 for what it may
not do; and reporting.selectors.report_accounts, the report scope the page and the API share."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import RequestFactory

from accounts.api_access import key_account, key_permission, managed_account_of
from accounts.models import ApiKey
from accounts.permissions import MANAGE_MANAGED_ACCOUNTS, VIEW_REPORTS
from accounts.selectors import managed_accounts_for
from reporting.selectors import report_accounts
from tests.api.conftest import assert_error
from tests.conftest import World


@pytest.fixture
def key_request(make_key):
    """key_request(account) -> a request as portal.api.api_view hands it to a view."""

    def make(account):
        make_key(account)
        request = RequestFactory().get("/v2/anything")
        request.api_key = ApiKey.objects.filter(account=account).latest("created_at")
        return request

    return make


def test_it_gives_the_keys_own_account(world: World, key_request):
    assert key_account(key_request(world.managed)) == world.managed


def test_it_finds_the_managers_own_managed_account(world: World, key_request):
    assert managed_account_of(key_request(world.manager), public_id=str(world.sibling.public_id)) == world.sibling


@pytest.mark.parametrize("target", ["other_managed", "other_manager", "manager", "standard"])
def test_it_is_a_404_for_accounts_the_manager_does_not_manage(world: World, key_request, target):
    with pytest.raises(Http404):
        managed_account_of(key_request(world.manager), public_id=str(getattr(world, target).public_id))


@pytest.mark.parametrize("public_id", ["not-a-uuid", "", str(uuid.uuid4())])
def test_it_is_a_404_for_malformed_or_unknown_ids(world: World, key_request, public_id):
    with pytest.raises(Http404):
        managed_account_of(key_request(world.manager), public_id=public_id)


@pytest.mark.parametrize("holder", ["managed", "standard"])
def test_it_is_a_404_for_a_key_that_is_not_a_managers(world: World, key_request, holder):
    """Even the key's own account, or its manager's sibling, is not a managed account of it."""
    for target in (world.managed, world.sibling):
        with pytest.raises(Http404):
            managed_account_of(key_request(getattr(world, holder)), public_id=str(target.public_id))


def test_it_keeps_a_callers_queryset_inside_the_keys_managed_accounts(world: World, key_request):
    """A queryset that would reach another manager's accounts is narrowed to the key's own."""
    everything = managed_accounts_for(world.other_manager) | managed_accounts_for(world.manager)
    request = key_request(world.manager)
    with pytest.raises(Http404):
        managed_account_of(request, public_id=str(world.other_managed.public_id), accounts=everything)
    assert managed_account_of(request, public_id=str(world.managed.public_id), accounts=everything) == world.managed


def test_it_is_a_403_for_what_the_key_may_not_do(world: World, key_request):
    with pytest.raises(PermissionDenied, match="Only a manager account's key"):
        key_permission(key_request(world.standard), permission=MANAGE_MANAGED_ACCOUNTS)
    assert key_permission(key_request(world.manager), permission=MANAGE_MANAGED_ACCOUNTS) == world.manager
    assert key_permission(key_request(world.standard), permission=VIEW_REPORTS) == world.standard


# --- Through the API ------------------------------------------------------------------------------------


def test_the_api_answers_404_for_another_managers_account_and_403_for_a_non_manager_key(
    world: World, make_key, raw_api
):
    manager_api = raw_api(make_key(world.manager))
    assert_error(manager_api.get(f"managed_accounts/{world.other_managed.public_id}"), 404)
    assert manager_api.get(f"managed_accounts/{world.managed.public_id}").status_code == 200
    standard_api = raw_api(make_key(world.standard))
    assert_error(standard_api.get("managed_accounts"), 403)
    assert_error(standard_api.get(f"managed_accounts/{world.managed.public_id}"), 404)


def test_the_report_api_refuses_managed_accounts_to_a_non_manager_key(world: World, make_key, raw_api):
    params = {"product": "all", "dimensions": "date", "metrics": "count", "managed_accounts": "true"}
    assert_error(raw_api(make_key(world.standard)).get("usage_reports", params), 403)
    assert raw_api(make_key(world.manager)).get("usage_reports", params).status_code == 200


# --- The report scope --------------------------------------------------------------------------------------


def test_a_report_covers_the_account_itself_unless_managed_accounts_are_asked_for(world: World):
    assert report_accounts(account=world.manager, managed=False) == [world.manager.pk]
    assert report_accounts(account=world.standard, managed=False) == [world.standard.pk]


def test_a_managers_report_covers_all_its_managed_accounts_or_one(world: World):
    covered = report_accounts(account=world.manager, managed=True)
    assert sorted(row["pk"] for row in covered) == sorted([world.managed.pk, world.sibling.pk])
    assert report_accounts(account=world.manager, managed=True, only=world.sibling.pk) == [world.sibling.pk]


def test_only_a_manager_has_managed_accounts_to_report_on(world: World):
    for account in (world.standard, world.managed):
        with pytest.raises(PermissionDenied):
            report_accounts(account=account, managed=True)
