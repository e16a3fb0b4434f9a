"""Spend limits and credit limits through /v2: `GET/PUT/DELETE /v2/managed_accounts/{id}/spend_limit`
(a manager's limit on one of its managed accounts), `GET/PUT/DELETE /v2/spend_limit` (the key's
account's own, or with `X-Managed-Account-Id` a managed account's own), and
`GET/PUT /v2/managed_accounts/{id}/credit_limit`. The rules are controls' services'; these tests
hold the API to them as a client sees them.

The official telnyx SDK's `spend_limits` resource speaks Telnyx's per-product-and-period limits at
`/spend_limits`, another resource; so its generic calls (`client.get/put/delete`) drive these
endpoints on the live server, and Django's test client sends the bad input.

The data: world.manager (Acme Reseller), credit limit 100.00 from staff; Canyon Lines separately
billed with 12.00 of voice this month (1,200 minutes at the list price 0.01); Quiet Bay separately
billed with hidden pricing and the same usage; world.managed (Alpine Voice) roll-up.
"""

from __future__ import annotations

import importlib
from decimal import Decimal
from types import SimpleNamespace

import pytest
import telnyx
from django.apps import apps
from django.utils import timezone

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from billing.ledger.services import balance_of, post_entry, set_credit_limit
from billing.models import LedgerEntry
from billing.usage.services import ingest_usage
from controls.models import SpendLimit
from tests.api.conftest import assert_error, owner_of

HEADER = "X-Managed-Account-Id"


def _separate(manager: Account, name: str, *, hidden: bool = False) -> Account:
    return services.create_managed_account(
        manager=manager, name=name, owner_email=f"{name.split()[0].lower()}@example.com", owner_password=None,
        billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False, pricing_hidden=hidden,
        actor=Actor(user=owner_of(manager)),
    )  # fmt: skip


def _voice(submitter: Account, account: Account, minutes: str, key: str) -> None:
    started = timezone.now().replace(hour=0, minute=0, second=1, microsecond=0)
    row = {"account": str(account.public_id), "product": "voice.outbound", "quantity": minutes,
           "started_at": started.isoformat(), "idempotency_key": key}  # fmt: skip
    ingest_usage(submitter=submitter, rows=[row], source="api", actor=Actor(user=owner_of(submitter)))


@pytest.fixture
def fleet(world):
    importlib.import_module("billing.migrations.0002_catalogue").load(apps, None)  # a flushed test database
    manager = world.manager
    canyon, quiet = _separate(manager, "Canyon Lines"), _separate(manager, "Quiet Bay", hidden=True)
    set_credit_limit(account=manager, limit=Decimal("100.00"), actor=Actor.platform_staff())
    for account in (canyon, quiet):
        post_entry(account=account, kind=LedgerEntry.Kind.TOP_UP, amount=Decimal("80.00"), key="top-up",
                   description="Top-up")  # fmt: skip
        _voice(manager, account, "1200", f"voice-{account.pk}")
    return SimpleNamespace(world=world, manager=manager, canyon=canyon, quiet=quiet, rollup=world.managed)


@pytest.fixture
def client_of(live_server, make_key):
    clients = []

    def make(account: Account, *, on_behalf: Account | None = None) -> telnyx.Telnyx:
        headers = {} if on_behalf is None else {HEADER: str(on_behalf.public_id)}
        client = telnyx.Telnyx(api_key=make_key(account), base_url=live_server.url + "/v2", max_retries=0,
                               default_headers=headers, _strict_response_validation=True)  # fmt: skip
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _path(managed: Account, what: str = "spend_limit") -> str:
    return f"/managed_accounts/{managed.public_id}/{what}"


def _put(client: telnyx.Telnyx, path: str, **body) -> dict:
    return client.put(path, cast_to=object, body=body)["data"]


def _get(client: telnyx.Telnyx, path: str, **params) -> dict:
    return client.get(path, cast_to=object, options={"params": params})["data"]


# --- A manager's limit on a managed account ----------------------------------------------------------------


def test_a_manager_sets_reads_and_removes_a_managed_accounts_limit(fleet, client_of):
    client = client_of(fleet.manager)
    assert _get(client, _path(fleet.canyon))["limit"] is None  # none set yet: the record, with its spend
    record = _put(client, _path(fleet.canyon), monthly_amount="100.00", daily_amount="20.00", action="alert")
    today = timezone.now().date()
    assert record == {
        "record_type": "spend_limit",
        "account_id": str(fleet.canyon.public_id),
        "set_by": "manager",
        "product": None,
        "product_name": "All products",
        "limit": {
            "id": record["limit"]["id"],
            "monthly_amount": "100.00",
            "daily_amount": "20.00",
            "action": "alert",
            "monthly_reached": False,
            "daily_reached": False,
            "created_at": record["limit"]["created_at"],
            "updated_at": record["limit"]["updated_at"],
        },
        "currency": "USD",
        "period_start": today.replace(day=1).isoformat(),
        "period_end": record["period_end"],
        "monthly_spend_usd": "12.00",
        "daily_spend_usd": "12.00",
        "service_status": "active",
        "service_blocked_reason": None,
    }
    assert _get(client, _path(fleet.canyon)) == record
    limit = SpendLimit.objects.get(account=fleet.canyon)
    assert (limit.set_by, limit.monthly_amount, limit.daily_amount) == ("manager", Decimal("100.00"), Decimal("20.00"))
    assert AuditEvent.objects.filter(account=fleet.canyon, change_type="spend_limit.set", user=owner_of(fleet.manager)
                                     ).exists()  # fmt: skip

    per_product = _put(client, _path(fleet.canyon), product="sms.outbound", monthly_amount=5)
    assert (per_product["product"], per_product["limit"]["action"]) == ("sms.outbound", "block")
    assert _get(client, _path(fleet.canyon), product="sms.outbound")["limit"]["monthly_amount"] == "5.00"

    removed = client.delete(_path(fleet.canyon), cast_to=object)["data"]
    assert removed["limit"] is None
    assert list(SpendLimit.objects.filter(account=fleet.canyon).values_list("product__sku", flat=True)) == [
        "sms.outbound"
    ]
    assert AuditEvent.objects.filter(account=fleet.canyon, change_type="spend_limit.removed").count() == 1
    with pytest.raises(telnyx.NotFoundError):
        client.delete(_path(fleet.canyon), cast_to=object)  # nothing left on every product


def test_a_limit_below_the_spend_blocks_new_service_and_raising_it_lifts_the_block(fleet, client_of):
    client = client_of(fleet.manager)
    blocked = _put(client, _path(fleet.canyon), monthly_amount="10.00", action="block")
    assert (blocked["service_status"], blocked["service_blocked_reason"]) == ("blocked", "spend_limit")
    assert blocked["limit"]["monthly_reached"] is True
    assert client.managed_accounts.retrieve(str(fleet.canyon.public_id)).data.to_dict()["service_status"] == "blocked"
    lifted = _put(client, _path(fleet.canyon), monthly_amount="50.00", action="block")
    assert (lifted["service_status"], lifted["limit"]["monthly_reached"]) == ("active", False)


def test_another_tenants_managed_account_is_not_found_and_a_managed_key_cannot_use_the_managers_routes(
    fleet, client_of
):
    client = client_of(fleet.manager)
    for call in (
        lambda: client.get(_path(fleet.world.other_managed), cast_to=object),
        lambda: client.put(_path(fleet.world.other_managed), cast_to=object, body={"monthly_amount": "5.00"}),
        lambda: client.put(
            _path(fleet.world.other_managed, "credit_limit"), cast_to=object, body={"credit_limit": "1.00"}
        ),  # fmt: skip
        lambda: client_of(fleet.canyon).get(_path(fleet.canyon), cast_to=object),
    ):
        with pytest.raises(telnyx.NotFoundError):
            call()
    assert not SpendLimit.objects.exists()


# --- An account's own limit --------------------------------------------------------------------------------


def test_a_separately_billed_accounts_own_key_sets_its_own_limit_never_above_its_managers(fleet, client_of):
    _put(client_of(fleet.manager), _path(fleet.canyon), monthly_amount="40.00")
    own = client_of(fleet.canyon)
    with pytest.raises(telnyx.UnprocessableEntityError) as refused:
        own.put("/spend_limit", cast_to=object, body={"monthly_amount": "40.01"})
    assert refused.value.body["errors"][0]["source"] == {"pointer": "/monthly_amount"}
    record = _put(own, "/spend_limit", monthly_amount="30.00", action="alert")
    assert (record["set_by"], record["limit"]["monthly_amount"], record["manager_limit"]["monthly_amount"]) == (
        "owner", "30.00", "40.00")  # fmt: skip
    assert record["monthly_spend_usd"] == "12.00"
    event = AuditEvent.objects.get(account=fleet.canyon, change_type="spend_limit.set", user=owner_of(fleet.canyon))
    assert event.change_made_by == "account_owner"


def test_the_on_behalf_header_reaches_a_managed_accounts_own_limit_as_the_manager(fleet, client_of):
    acting = client_of(fleet.manager, on_behalf=fleet.canyon)
    record = _put(acting, "/spend_limit", monthly_amount="25.00")
    assert (record["account_id"], record["set_by"]) == (str(fleet.canyon.public_id), "owner")
    event = AuditEvent.objects.get(account=fleet.canyon, change_type="spend_limit.set")
    assert (event.user, event.change_made_by) == (owner_of(fleet.manager), "account_manager")
    assert _get(client_of(fleet.canyon), "/spend_limit")["limit"]["monthly_amount"] == "25.00"


def test_a_hidden_pricing_account_sees_its_own_limit_and_balance_but_no_spend(fleet, client_of):
    _put(client_of(fleet.manager), _path(fleet.quiet), monthly_amount="40.00")
    own = client_of(fleet.quiet)
    record = _put(own, "/spend_limit", monthly_amount="30.00")
    assert (record["limit"]["monthly_amount"], record["manager_limit"]["monthly_amount"]) == ("30.00", "40.00")
    assert (record["monthly_spend_usd"], record["daily_spend_usd"]) == (None, None)
    assert own.balance.retrieve().data.balance == "68.00"  # its own money: 80.00 less its 12.00 of usage
    # Its manager still sees the spend of its own customer.
    assert _get(client_of(fleet.manager), _path(fleet.quiet))["monthly_spend_usd"] == "12.00"


def test_a_roll_up_accounts_limits_are_its_managers_to_set(fleet, client_of, raw_api, make_key):
    _put(client_of(fleet.manager), _path(fleet.rollup), monthly_amount="40.00")
    api = raw_api(make_key(fleet.rollup))
    assert "roll-up" in assert_error(api.send("PUT", "spend_limit", {"monthly_amount": "5.00"}), 422)["detail"]
    shown = api.get("spend_limit").json()["data"]
    assert (shown["limit"], shown["manager_limit"]["monthly_amount"]) == (None, "40.00")


BAD_LIMITS = {
    "negative": ({"monthly_amount": "-5.00"}, "/monthly_amount"),
    "zero": ({"monthly_amount": "0"}, "/monthly_amount"),
    "three decimals": ({"monthly_amount": "1.005"}, "/monthly_amount"),
    "not a number": ({"monthly_amount": "lots"}, "/monthly_amount"),
    "huge": ({"monthly_amount": "9" * 40}, "/monthly_amount"),
    "above the maximum": ({"monthly_amount": "10000000.01"}, "/monthly_amount"),
    "missing": ({"daily_amount": "1.00"}, "/monthly_amount"),
    "daily above monthly": ({"monthly_amount": "5.00", "daily_amount": "6.00"}, "/daily_amount"),
    "bad daily": ({"monthly_amount": "5.00", "daily_amount": "x"}, "/daily_amount"),
    "bad action": ({"monthly_amount": "5.00", "action": "explode"}, "/action"),
    "unknown product": ({"monthly_amount": "5.00", "product": "no.such.product"}, "/product"),
    "unknown field": ({"monthly_amount": "5.00", "currency": "EUR"}, "/currency"),
}


@pytest.mark.parametrize("case", list(BAD_LIMITS))
def test_a_bad_limit_is_a_422_at_its_field_and_sets_nothing(world, raw_api, make_key, case):
    managed = _separate(world.manager, "Canyon Lines")
    body, pointer = BAD_LIMITS[case]
    response = raw_api(make_key(world.manager)).send("PUT", f"managed_accounts/{managed.public_id}/spend_limit", body)
    assert_error(response, 422, pointer=pointer)
    assert not SpendLimit.objects.exists()


# --- Credit limits -----------------------------------------------------------------------------------------


def test_a_manager_sets_a_managed_accounts_credit_limit_up_to_what_it_guarantees(fleet, client_of):
    client = client_of(fleet.manager)
    record = _put(client, _path(fleet.canyon, "credit_limit"), credit_limit="60.00")
    assert record == {
        "record_type": "credit_limit",
        "account_id": str(fleet.canyon.public_id),
        "credit_limit": "60.00",
        "balance": "68.00",
        "available_credit": "128.00",
        "currency": "USD",
    }
    assert _get(client, _path(fleet.canyon, "credit_limit")) == record
    with pytest.raises(telnyx.UnprocessableEntityError) as refused:
        client.put(_path(fleet.quiet, "credit_limit"), cast_to=object, body={"credit_limit": "40.01"})
    assert "40.00" in refused.value.body["errors"][0]["detail"]  # 100.00 guaranteed, 60.00 given to Canyon
    assert balance_of(fleet.quiet).credit_limit == Decimal("0.00")
    assert client_of(fleet.canyon).balance.retrieve().data.credit_limit == "60.00"  # its own key sees it
    assert AuditEvent.objects.filter(account=fleet.canyon, change_type="balance.credit_limit_changed").count() == 1


@pytest.mark.parametrize("value", ["-1.00", "1.001", "abc", "9" * 40, None, True])
def test_a_bad_credit_limit_is_a_422_and_changes_nothing(world, raw_api, make_key, value):
    managed = _separate(world.manager, "Canyon Lines")
    body = {} if value is None else {"credit_limit": value}
    response = raw_api(make_key(world.manager)).send("PUT", f"managed_accounts/{managed.public_id}/credit_limit", body)
    assert_error(response, 422, pointer="/credit_limit")
    assert balance_of(managed).credit_limit == Decimal("0.00")


def test_a_roll_up_account_has_no_credit_limit_of_its_own(world, raw_api, make_key):
    api = raw_api(make_key(world.manager))
    response = api.send("PUT", f"managed_accounts/{world.managed.public_id}/credit_limit", {"credit_limit": "5.00"})
    assert "roll-up" in assert_error(response, 422)["detail"]
    assert_error(api.get(f"managed_accounts/{world.managed.public_id}/credit_limit"), 404)
