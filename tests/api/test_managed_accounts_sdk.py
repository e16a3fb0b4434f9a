"""Managed accounts and audit events through the official telnyx SDK, as a manager's key.

Every call goes through `telnyx.Telnyx` against the live server with strict response validation,
so each response must parse into the SDK's own models; the tests then read the typed attributes.
"""

from __future__ import annotations

import math
import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest
import telnyx
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from telnyx.types import AuditEventListResponse, ManagedAccount, ManagedAccountListResponse

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, ApiKey, AuditEvent
from tests.conftest import make_managed_accounts
from tests.factories import PASSWORD, account_with_owner

EXTRA_ACCOUNTS = (
    # (business name, owner e-mail, final status)
    ("Zephyr Telecom", "zephyr.ops@fleet.example.com", Account.Status.ENABLED),
    ("Quartz Networks", "quartz@fleet.example.com", Account.Status.DISABLED),
    ("Cobalt Calls", "cobalt@fleet.example.com", Account.Status.CANCELLED),
)


@pytest.fixture
def fleet(world):
    """The world's manager with Alpine Voice and Blue Harbor (factories), plus three managed
    accounts made through the services: one enabled, one disabled and one cancelled."""
    actor = Actor(user=world.users["owner"])
    made = {}
    for name, email, status in EXTRA_ACCOUNTS:
        managed = services.create_managed_account(
            manager=world.manager, name=name, owner_email=email, owner_password=None,
            billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False, pricing_hidden=False, actor=actor,
        )  # fmt: skip
        if status == Account.Status.DISABLED:
            services.change_managed_account_status(managed=managed, action="disable", actor=actor)
        if status == Account.Status.CANCELLED:
            services.change_managed_account_status(managed=managed, action="cancel", actor=actor)
        made[name] = managed
    return made


@pytest.fixture
def manager_api(world, make_key, sdk) -> telnyx.Telnyx:
    return sdk(make_key(world.manager))


def _ids(accounts) -> list[str]:
    return [a.id for a in accounts]


def _public_ids(*accounts: Account) -> set[str]:
    return {str(a.public_id) for a in accounts}


def _parsed_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0), value
    return moment


def test_list_parses_into_sdk_models_with_the_contract_meta(world, fleet, manager_api):
    page = manager_api.managed_accounts.list(page_size=3)

    assert all(isinstance(item, ManagedAccountListResponse) for item in page.data)
    # four accounts that are not cancelled: Alpine Voice, Blue Harbor, Zephyr Telecom, Quartz Networks
    assert page.meta.page_number == 1
    assert page.meta.total_pages == 2
    assert page.meta.page_size == 3  # contract fields the SDK's meta model keeps as extras
    assert page.meta.total_results == 4
    assert len(page.data) == 3
    second = manager_api.managed_accounts.list(page_size=3, page_number=2)
    assert second.meta.page_number == 2 and len(second.data) == 1
    listed = page.data + second.data
    assert set(_ids(listed)) == _public_ids(world.managed, world.sibling, fleet["Zephyr Telecom"],
                                            fleet["Quartz Networks"])  # fmt: skip

    zephyr = next(a for a in listed if a.id == str(fleet["Zephyr Telecom"].public_id))
    assert zephyr.record_type == "managed_account"
    assert zephyr.email == "zephyr.ops@fleet.example.com"
    assert zephyr.organization_name == "Zephyr Telecom"
    assert zephyr.manager_account_id == str(world.manager.public_id)
    assert zephyr.api_user == world.manager.email
    assert zephyr.rollup_billing is False
    assert zephyr.managed_account_allow_custom_pricing is False
    assert _parsed_time(zephyr.created_at) <= _parsed_time(zephyr.updated_at)
    alpine = next(a for a in listed if a.id == str(world.managed.public_id))
    assert alpine.rollup_billing is True

    default = manager_api.managed_accounts.list()
    assert default.meta.page_size == 20 and default.meta.total_pages == 1 and len(default.data) == 4


def test_filters_by_email_organization_name_and_status(world, fleet, manager_api):
    def listed(**params) -> set[str]:
        return set(_ids(manager_api.managed_accounts.list(**params)))

    zephyr, quartz, cobalt = (fleet[n] for n in ("Zephyr Telecom", "Quartz Networks", "Cobalt Calls"))

    assert listed(filter={"email": {"contains": "FLEET.example"}}) == _public_ids(zephyr, quartz)
    assert listed(filter={"email": {"contains": "ops@"}}) == _public_ids(zephyr)
    assert listed(filter={"email": {"eq": "QUARTZ@fleet.example.com"}}) == _public_ids(quartz)
    assert listed(filter={"email": {"eq": "quartz@fleet"}}) == set()
    assert listed(filter={"organization_name": {"contains": "harb"}}) == _public_ids(world.sibling)
    assert listed(filter={"organization_name": {"contains": "TELECOM"}}) == _public_ids(zephyr)
    assert listed(filter={"organization_name": {"eq": "alpine voice"}}) == _public_ids(world.managed)
    assert listed(filter={"organization_name": {"eq": "Alpine"}}) == set()
    both = {"email": {"contains": "fleet"}, "organization_name": {"contains": "quartz"}}
    assert listed(filter=both) == _public_ids(quartz)

    assert listed(filter={"status": {"eq": "disabled"}}) == _public_ids(quartz)
    assert listed(filter={"status": {"eq": "cancelled"}}) == _public_ids(cobalt)
    assert listed(filter={"status": {"eq": "enabled"}}) == _public_ids(world.managed, world.sibling, zephyr)

    assert str(cobalt.public_id) not in listed()
    assert listed(include_cancelled_accounts=False) == _public_ids(world.managed, world.sibling, zephyr, quartz)
    assert listed(include_cancelled_accounts=True) == _public_ids(world.managed, world.sibling, zephyr, quartz,
                                                                  cobalt)  # fmt: skip
    assert listed(filter={"email": {"contains": "cobalt"}}) == set()
    assert listed(filter={"email": {"contains": "cobalt"}}, include_cancelled_accounts=True) == _public_ids(cobalt)


def test_sorts_by_created_at_and_email(world, fleet, manager_api):
    expected_by_creation = [
        str(pk)
        for pk in Account.objects.filter(manager=world.manager)
        .exclude(status=Account.Status.CANCELLED)
        .order_by("created_at", "id")
        .values_list("public_id", flat=True)
    ]

    def order(sort: str | None) -> list[ManagedAccountListResponse]:
        page = manager_api.managed_accounts.list(**({"sort": sort} if sort else {}))
        return page.data

    oldest_first = order("created_at")
    assert _ids(oldest_first) == expected_by_creation
    times = [_parsed_time(a.created_at) for a in oldest_first]
    assert times == sorted(times)
    assert _ids(order("-created_at")) == expected_by_creation[::-1]
    assert _ids(order(None)) == expected_by_creation[::-1]  # the default is newest first

    by_email = order("email")
    emails = [a.email for a in by_email]
    assert emails == sorted(emails) and len(emails) == 4
    assert [a.email for a in order("-email")] == sorted(emails, reverse=True)


def test_pages_through_every_account_once_with_sdk_auto_iteration(world, fleet, manager_api):
    extra = make_managed_accounts(world.manager, 3)  # 4 + 3 = 7 listed accounts, 4 pages of 2
    expected = _public_ids(world.managed, world.sibling, fleet["Zephyr Telecom"], fleet["Quartz Networks"], *extra)

    seen = _ids(manager_api.managed_accounts.list(page_size=2))

    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == expected
    pages = list(manager_api.managed_accounts.list(page_size=2).iter_pages())
    assert [p.meta.page_number for p in pages] == [1, 2, 3, 4]
    assert [len(p.data) for p in pages] == [2, 2, 2, 1]
    assert {p.meta.total_pages for p in pages} == {4} and {p.meta.total_results for p in pages} == {7}
    all_sorted = _ids(manager_api.managed_accounts.list(page_size=2, sort="email"))
    assert set(all_sorted) == expected and len(all_sorted) == 7


def test_create_returns_the_key_once_and_it_authenticates_as_the_managed_account(world, manager_api, sdk):
    created = manager_api.managed_accounts.create(
        business_name="  Nova Dial  ",
        email="Owner@Nova.example.com",
        password=PASSWORD,
        rollup_billing=True,
        managed_account_allow_custom_pricing=True,
    ).data

    assert isinstance(created, ManagedAccount)
    assert created.record_type == "managed_account"
    assert created.organization_name == "Nova Dial"
    assert created.email == "owner@nova.example.com"
    assert created.rollup_billing is True and created.managed_account_allow_custom_pricing is True
    assert created.manager_account_id == str(world.manager.public_id)
    assert created.api_user == world.manager.email
    raw = created.api_key
    assert raw.startswith(services.API_KEY_PREFIX) and not raw.endswith("…") and len(raw) > 40
    assert created.api_token == raw

    account = Account.objects.get(public_id=created.id)
    assert account.kind == Account.Kind.MANAGED and account.manager == world.manager
    assert account.billing_mode == Account.BillingMode.ROLLUP and account.allow_custom_pricing
    owner = account.memberships.get().user
    assert owner.email == "owner@nova.example.com" and owner.check_password(PASSWORD)
    key = ApiKey.objects.get(account=account)
    assert key.key_hash == services.hash_api_key(raw) and raw not in (key.key_hash, key.prefix)

    # The key in the response is the managed account's: it authenticates, and acts as that account.
    as_managed = sdk(raw)
    with pytest.raises(telnyx.PermissionDeniedError):  # authenticated (not 401), but not a manager
        as_managed.managed_accounts.list()
    own_events = list(as_managed.audit_events.list())
    assert {e.change_type for e in own_events} >= {"managed_account.created", "api_key.created"}
    assert {e.organization_id for e in own_events} <= {created.id, str(world.manager.public_id)}
    assert any(e.organization_id == created.id for e in own_events)

    # Later reads carry only the prefix.
    shown = manager_api.managed_accounts.retrieve(created.id).data
    assert shown.api_key == f"{services.API_KEY_PREFIX}{key.prefix}…" == shown.api_token
    assert raw.startswith(shown.api_key[:-1])
    listed = next(a for a in manager_api.managed_accounts.list() if a.id == created.id)
    assert listed.api_key == shown.api_key  # an extra the list model keeps
    assert raw not in manager_api.managed_accounts.with_raw_response.list().text()
    assert raw not in manager_api.managed_accounts.with_raw_response.retrieve(created.id).text()


def test_retrieve_and_update(world, manager_api):
    shown = manager_api.managed_accounts.retrieve(str(world.managed.public_id)).data

    assert isinstance(shown, ManagedAccount)
    assert shown.id == str(world.managed.public_id)
    assert shown.organization_name == "Alpine Voice"
    assert shown.email == world.managed.email
    assert shown.manager_account_id == str(world.manager.public_id)
    assert shown.managed_account_allow_custom_pricing is False
    assert shown.api_key == ""  # the account has no key yet
    _parsed_time(shown.created_at)

    updated = manager_api.managed_accounts.update(
        str(world.managed.public_id), managed_account_allow_custom_pricing=True
    ).data

    assert isinstance(updated, ManagedAccount)
    assert updated.managed_account_allow_custom_pricing is True
    assert _parsed_time(updated.updated_at) >= _parsed_time(shown.updated_at)
    world.managed.refresh_from_db()
    assert world.managed.allow_custom_pricing is True
    event = AuditEvent.objects.get(change_type="managed_account.updated", related_account=world.managed)
    assert event.changes == [{"field": "allow_custom_pricing", "from": False, "to": True}]
    assert event.user == world.users["owner"] and event.change_made_by == AuditEvent.MadeBy.ACCOUNT_OWNER
    again = manager_api.managed_accounts.retrieve(str(world.managed.public_id)).data
    assert again.managed_account_allow_custom_pricing is True


def test_disable_then_enable_changes_status_and_audits_the_keys_creator(world, make_key, sdk):
    admin = world.users["admin"]
    manager_api = sdk(make_key(world.manager, user=admin, name="Admin's key"))
    managed_id = str(world.managed.public_id)

    disabled = manager_api.managed_accounts.actions.disable(managed_id).data

    assert isinstance(disabled, ManagedAccount) and disabled.id == managed_id
    assert disabled.status == "disabled"  # type: ignore[attr-defined]  # our extra field
    world.managed.refresh_from_db()
    assert world.managed.status == Account.Status.DISABLED

    enabled = manager_api.managed_accounts.actions.enable(managed_id, reenable_all_connections=True).data

    assert isinstance(enabled, ManagedAccount) and enabled.status == "enabled"  # type: ignore[attr-defined]
    world.managed.refresh_from_db()
    assert world.managed.status == Account.Status.ENABLED

    events = AuditEvent.objects.filter(related_account=world.managed, change_type__startswith="managed_account.")
    by_type = {e.change_type: e for e in events}
    assert set(by_type) == {"managed_account.disabled", "managed_account.enabled"}
    for change_type, (before, after) in {
        "managed_account.disabled": ("enabled", "disabled"),
        "managed_account.enabled": ("disabled", "enabled"),
    }.items():
        event = by_type[change_type]
        assert event.account == world.manager
        assert event.user == admin and event.user_email == admin.email
        assert event.change_made_by == AuditEvent.MadeBy.ORGANIZATION_MEMBER
        assert event.changes == [{"field": "status", "from": before, "to": after}]

    listed = [e for e in manager_api.audit_events.list() if e.change_type in by_type]
    assert [e.change_type for e in listed] == ["managed_account.enabled", "managed_account.disabled"]
    for event in listed:
        assert isinstance(event, AuditEventListResponse)
        assert event.user_id == str(admin.public_id)  # the person's UUID, as Telnyx gives it
        assert event.change_made_by == "organization_member"
        assert event.resource_id == managed_id
        assert event.alternate_resource_id is None  # an account has no alternate id (names repeat)
        assert event.organization_id == str(world.manager.public_id)
        assert event.changes is not None and event.changes[0].field == "status"
    assert listed[0].changes[0].from_ == "disabled" and listed[0].changes[0].to == "enabled"


def test_audit_events_list_filters_by_time_and_sorts(world, fleet, manager_api):
    events = list(AuditEvent.objects.filter(account=world.manager).order_by("id"))
    assert len(events) >= 6  # 3 creations, 2 status changes, the key's creation
    base = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    for n, event in enumerate(events):  # one event an hour, in creation order
        AuditEvent.objects.filter(pk=event.pk).update(created_at=base + timedelta(hours=n))

    everything = list(manager_api.audit_events.list())
    assert all(isinstance(e, AuditEventListResponse) for e in everything)
    assert [e.id for e in everything] == [str(e.public_id) for e in reversed(events)]  # newest first by default
    first = everything[-1]
    assert first.record_type == "audit_event" and first.created_at == base
    assert first.change_type == events[0].change_type

    ascending = list(manager_api.audit_events.list(sort="asc"))
    assert [e.id for e in ascending] == [str(e.public_id) for e in events]
    descending = list(manager_api.audit_events.list(sort="desc"))
    assert [e.id for e in descending] == [e.id for e in everything]

    window = manager_api.audit_events.list(
        filter={"created_after": base + timedelta(hours=1), "created_before": base + timedelta(hours=3)}, sort="asc"
    )
    assert [e.id for e in window] == [str(e.public_id) for e in events[1:4]]
    assert all(base + timedelta(hours=1) <= e.created_at <= base + timedelta(hours=3) for e in window.data)
    after_only = manager_api.audit_events.list(filter={"created_after": "2025-03-01T14:30:00Z"})
    assert {e.id for e in after_only} == {str(e.public_id) for e in events[3:]}
    before_only = manager_api.audit_events.list(filter={"created_before": base})
    assert [e.id for e in before_only] == [str(events[0].public_id)]

    paged = manager_api.audit_events.list(page_size=2, sort="asc")
    assert paged.meta.page_number == 1 and paged.meta.total_pages == math.ceil(len(events) / 2)
    assert [e.id for e in paged] == [str(e.public_id) for e in events]  # auto-iteration over every page


def test_audit_events_of_platform_changes_parse_into_the_sdk_model(world, make_key, sdk):
    """BUG: a change made by platform staff is served as change_made_by "platform", which is not
    one of the SDK's values ("telnyx", "account_manager", "account_owner", "organization_member"),
    so the SDK cannot parse the manager's audit log (accounts/api.py, audit_event_json)."""
    services.set_managed_account_limit(manager=world.manager, limit=10, actor=Actor.platform_staff())
    manager_api = sdk(make_key(world.manager))

    try:
        events = list(manager_api.audit_events.list())
    except telnyx.APIResponseValidationError as refused:
        pytest.fail(f"the SDK cannot parse the audit events: {refused.__cause__}")

    limit = next(e for e in events if e.change_type == "account.limit_changed")
    assert limit.change_made_by == "telnyx"


def test_listing_3000_managed_accounts_runs_constant_queries_per_page(db, make_key):
    """3,000 managed accounts at page[size]=250: pages 1 and 12 run as many queries as a manager
    with 5 managed accounts. Raw HTTP through Django's test client, in-process."""
    manager, _ = account_with_owner(manager_kind=True)
    small, _ = account_with_owner(manager_kind=True)
    make_managed_accounts(manager, 3000)
    make_managed_accounts(small, 5)
    big_headers = {"HTTP_AUTHORIZATION": f"Bearer {make_key(manager)}"}
    small_headers = {"HTTP_AUTHORIZATION": f"Bearer {make_key(small)}"}
    client = Client()

    def get(headers, number):
        response = client.get("/v2/managed_accounts", {"page[size]": 250, "page[number]": number}, **headers)
        assert response.status_code == 200, response.content[:300]
        return response.json()

    def queries(headers, number) -> int:
        with CaptureQueriesContext(connection) as captured:
            get(headers, number)
        return len(captured)

    get(big_headers, 1), get(small_headers, 1)  # the first use of a key also stamps last_used_at
    small_count = queries(small_headers, 1)
    first_count, last_count = queries(big_headers, 1), queries(big_headers, 12)

    assert first_count == last_count == small_count, (first_count, last_count, small_count)

    timings, seen = [], set()
    for number in range(1, 13):
        start = time.perf_counter()
        body = get(big_headers, number)
        timings.append((time.perf_counter() - start) * 1000)
        assert body["meta"] == {"page_number": number, "page_size": 250, "total_pages": 12, "total_results": 3000}
        seen.update(item["id"] for item in body["data"])
    assert len(seen) == 3000
    print(
        f"\n/v2/managed_accounts, 3,000 managed accounts, page[size]=250, {connection.vendor}: "
        f"{first_count} queries per page (5 accounts: {small_count}); "
        f"median {statistics.median(timings):.1f} ms, max {max(timings):.1f} ms per page over 12 pages"
    )
