"""Money movement by API: `POST /v2/credit_transfers` between a manager and its separately billed
managed accounts, both ways, with an `Idempotency-Key`; `GET /v2/credit_transfers` and
`GET /v2/credit_transfers/{id}`, shaped like Vonage's credit-transfers.

The official telnyx SDK has no credit-transfer resource, so its generic calls (`client.post`,
`client.get`) drive the live server with our keys, as a Telnyx client would reach an endpoint it
has no method for; bad input goes through Django's test client (RawApi), which sends what the SDK
would not.

The data: world.manager (Acme Reseller) tops up 500.00; Canyon Lines is separately billed, Quiet
Bay separately billed with hidden pricing; world.managed (Alpine Voice) is roll-up;
world.other_managed belongs to another manager.
"""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest
import telnyx
from django.db import connection

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from billing.ledger.selectors import ledger_sum
from billing.ledger.services import balance_of, post_entry, transfer_credit
from billing.models import CreditTransfer, LedgerEntry
from tests.api.conftest import assert_error, owner_of

HEADER = "X-Managed-Account-Id"


def _separate(manager: Account, name: str, *, hidden: bool = False) -> Account:
    return services.create_managed_account(
        manager=manager, name=name, owner_email=f"{name.split()[0].lower()}@example.com", owner_password=None,
        billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False, pricing_hidden=hidden,
        actor=Actor(user=owner_of(manager)),
    )  # fmt: skip


@pytest.fixture
def money(world):
    canyon, quiet = _separate(world.manager, "Canyon Lines"), _separate(world.manager, "Quiet Bay", hidden=True)
    post_entry(account=world.manager, kind=LedgerEntry.Kind.TOP_UP, amount=Decimal("500.00"), key="top-up",
               description="Top-up")  # fmt: skip
    return SimpleNamespace(world=world, manager=world.manager, canyon=canyon, quiet=quiet)


@pytest.fixture
def client_of(live_server, make_key):
    """client_of(account, on_behalf=None) -> a telnyx.Telnyx client of the live server, with a new key."""
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


def _send(client: telnyx.Telnyx, sender: Account, receiver: Account, amount, *, key: str | None = None, **more):
    headers = {"Idempotency-Key": key} if key else {}
    body = {"from": str(sender.public_id), "to": str(receiver.public_id), "amount": amount, **more}
    return client.post("/credit_transfers", cast_to=httpx.Response, body=body, options={"headers": headers})


def _get(client: telnyx.Telnyx, path: str, **params) -> dict:
    return client.get(path, cast_to=object, options={"params": params})


def _amount(account: Account) -> Decimal:
    return balance_of(account).amount


# --- Both ways, through the page's service ---------------------------------------------------------------


def test_a_manager_key_moves_credit_to_a_managed_account_and_back(money, client_of):
    manager_key = client_of(money.manager)
    sent = _send(manager_key, money.manager, money.canyon, "120.00", reference="April float")
    assert sent.status_code == 201
    record = sent.json()["data"]
    assert record == {
        "record_type": "credit_transfer",
        "id": record["id"],
        "amount": "120.00",
        "currency": "USD",
        "from": str(money.manager.public_id),
        "to": str(money.canyon.public_id),
        "direction": "to_managed",
        "reference": "April float",
        "created_at": record["created_at"],
    }
    back = _send(manager_key, money.canyon, money.manager, 20.5).json()["data"]  # a JSON number is read exactly
    assert (back["amount"], back["direction"], back["from"]) == ("20.50", "to_manager", str(money.canyon.public_id))
    assert (_amount(money.manager), _amount(money.canyon)) == (Decimal("400.50"), Decimal("99.50"))
    assert ledger_sum(money.manager) == _amount(money.manager) and ledger_sum(money.canyon) == _amount(money.canyon)
    # The managed account's own key sees the money it holds.
    assert client_of(money.canyon).balance.retrieve().data.balance == "99.50"

    listed = _get(manager_key, "/credit_transfers")
    assert [t["id"] for t in listed["data"]] == [back["id"], record["id"]]  # newest first
    assert listed["meta"] == {"page_number": 1, "page_size": 20, "total_pages": 1, "total_results": 2}
    assert _get(manager_key, f"/credit_transfers/{record['id']}")["data"] == record

    # Audited as the page's transfer is, on the manager's log, naming the key's creator.
    events = AuditEvent.objects.filter(account=money.manager, change_type="balance.transferred").order_by("pk")
    assert [(e.related_account, e.user, e.resource_id) for e in events] == [
        (money.canyon, owner_of(money.manager), record["id"]),
        (money.canyon, owner_of(money.manager), back["id"]),
    ]
    assert {"field": "direction", "from": None, "to": "to_manager"} in events[1].changes


def test_the_list_filters_by_account_and_date_and_pages(money, client_of):
    actor = Actor(user=owner_of(money.manager))
    for n in range(3):
        transfer_credit(manager=money.manager, managed=money.canyon, amount=Decimal("5.00"), key=f"c{n}", actor=actor)
    transfer_credit(manager=money.manager, managed=money.quiet, amount=Decimal("7.00"), key="q", actor=actor)
    client = client_of(money.manager)
    quiet = _get(client, "/credit_transfers", **{"filter[account_id]": str(money.quiet.public_id)})
    assert [(t["to"], t["amount"]) for t in quiet["data"]] == [(str(money.quiet.public_id), "7.00")]
    paged = _get(client, "/credit_transfers", **{"page[size]": 2, "page[number]": 2})
    assert len(paged["data"]) == 2 and paged["meta"]["total_results"] == 4 and paged["meta"]["total_pages"] == 2
    assert _get(client, "/credit_transfers", **{"filter[created_before]": "2000-01-01T00:00:00Z"})["data"] == []
    assert len(_get(client, "/credit_transfers", **{"filter[created_after]": "2000-01-01T00:00:00Z"})["data"]) == 4


# --- Who may ---------------------------------------------------------------------------------------------


def test_a_managed_accounts_own_key_lists_its_transfers_but_cannot_move_money(money, client_of):
    actor = Actor(user=owner_of(money.manager))
    transfer_credit(manager=money.manager, managed=money.quiet, amount=Decimal("30.00"), key="q", actor=actor)
    transfer_credit(manager=money.manager, managed=money.canyon, amount=Decimal("9.00"), key="c", actor=actor)
    quiet_key = client_of(money.quiet)  # hidden pricing: still its own money
    assert [t["amount"] for t in _get(quiet_key, "/credit_transfers")["data"]] == ["30.00"]
    assert quiet_key.balance.retrieve().data.balance == "30.00"
    with pytest.raises(telnyx.PermissionDeniedError):
        _send(quiet_key, money.quiet, money.manager, "1.00")
    canyons = CreditTransfer.objects.get(managed=money.canyon)
    with pytest.raises(telnyx.NotFoundError):
        _get(quiet_key, f"/credit_transfers/{canyons.public_id}")  # a sibling's transfer
    assert _amount(money.quiet) == Decimal("30.00")


def test_a_manager_key_acting_on_a_managed_account_reads_its_transfers_but_moves_no_money(money, client_of):
    transfer_credit(manager=money.manager, managed=money.canyon, amount=Decimal("9.00"), key="c",
                    actor=Actor(user=owner_of(money.manager)))  # fmt: skip
    acting = client_of(money.manager, on_behalf=money.canyon)
    assert [t["amount"] for t in _get(acting, "/credit_transfers")["data"]] == ["9.00"]
    with pytest.raises(telnyx.PermissionDeniedError):
        _send(acting, money.manager, money.canyon, "1.00")
    assert _amount(money.canyon) == Decimal("9.00")


def test_another_tenants_accounts_and_transfers_are_not_found(money, client_of):
    other = money.world.other_manager
    post_entry(account=other, kind=LedgerEntry.Kind.TOP_UP, amount=Decimal("50.00"), key="t", description="Top-up")
    theirs = _separate(other, "Far Away")
    made = transfer_credit(manager=other, managed=theirs, amount=Decimal("5.00"), key="f",
                           actor=Actor(user=owner_of(other)))  # fmt: skip
    client = client_of(money.manager)
    with pytest.raises(telnyx.NotFoundError):
        _send(client, money.manager, theirs, "1.00")
    with pytest.raises(telnyx.NotFoundError):
        _send(client, theirs, money.manager, "1.00")
    with pytest.raises(telnyx.NotFoundError):
        _get(client, f"/credit_transfers/{made.entry.public_id}")
    assert _get(client, "/credit_transfers", **{"filter[account_id]": str(theirs.public_id)})["data"] == []
    assert _amount(money.manager) == Decimal("500.00")


def test_a_roll_up_account_has_no_transfers(money, client_of, raw_api, make_key):
    rollup = money.world.managed
    response = raw_api(make_key(money.manager)).post(
        "credit_transfers", {"from": str(money.manager.public_id), "to": str(rollup.public_id), "amount": "1.00"}
    )
    assert "roll-up" in assert_error(response, 422)["detail"]
    assert assert_error(raw_api(make_key(rollup)).get("credit_transfers"), 403)["code"] == "billed_to_manager"
    assert not CreditTransfer.objects.exists()


# --- Refusals ------------------------------------------------------------------------------------------


def test_a_transfer_beyond_the_available_credit_is_refused_and_moves_nothing(money, raw_api, make_key):
    api = raw_api(make_key(money.manager))
    manager, canyon = str(money.manager.public_id), str(money.canyon.public_id)
    error = assert_error(api.post("credit_transfers", {"from": manager, "to": canyon, "amount": "500.01"}), 422,
                         pointer="/amount")  # fmt: skip
    assert "500.00" in error["detail"]
    assert api.post("credit_transfers", {"from": manager, "to": canyon, "amount": "40.00"}).status_code == 201
    # Back from the managed account: at most what it holds, never into its credit line.
    assert_error(api.post("credit_transfers", {"from": canyon, "to": manager, "amount": "40.01"}), 422,
                 pointer="/amount")  # fmt: skip
    assert (_amount(money.manager), _amount(money.canyon)) == (Decimal("460.00"), Decimal("40.00"))
    assert CreditTransfer.objects.count() == 1


BAD_AMOUNTS = {
    "negative": "-5.00",
    "zero": "0.00",
    "zero number": 0,
    "three decimals": "1.005",
    "not a number": "ten",
    "exponent": "1e3",
    "infinity": "Infinity",
    "JSON infinity": float("inf"),
    "huge": "9" * 40,
    "huge number": 10**30,
    "above the maximum": "100000.01",
    "boolean": True,
    "list": ["1.00"],
    "missing": None,
}


@pytest.mark.parametrize("case", list(BAD_AMOUNTS))
def test_a_bad_amount_is_a_422_at_amount_and_moves_nothing(money, raw_api, make_key, case):
    body = {"from": str(money.manager.public_id), "to": str(money.canyon.public_id)}
    if BAD_AMOUNTS[case] is not None:
        body["amount"] = BAD_AMOUNTS[case]
    assert_error(raw_api(make_key(money.manager)).post("credit_transfers", body), 422, pointer="/amount")
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.TRANSFER_OUT).exists()


def test_parties_and_headers_are_checked(money, raw_api, make_key):
    api = raw_api(make_key(money.manager))
    manager, canyon, quiet = (str(a.public_id) for a in (money.manager, money.canyon, money.quiet))
    for sender, receiver in ((manager, manager), (canyon, quiet)):
        assert_error(api.post("credit_transfers", {"from": sender, "to": receiver, "amount": "1.00"}), 422,
                     pointer="/from")  # fmt: skip
    assert_error(api.post("credit_transfers", {"to": canyon, "amount": "1.00"}), 422, pointer="/from")
    assert_error(api.post("credit_transfers", {"from": manager, "to": canyon, "amount": "1", "memo": "x"}), 422,
                 pointer="/memo")  # fmt: skip
    too_long = api.post("credit_transfers", {"from": manager, "to": canyon, "amount": "1.00"},
                        HTTP_IDEMPOTENCY_KEY="k" * 192)  # fmt: skip
    assert assert_error(too_long, 422)["code"] == "invalid_header"
    assert_error(api.get("credit_transfers", {"filter[account_id]": "nope"}), 422, parameter="filter[account_id]")
    assert not CreditTransfer.objects.exists()


# --- Idempotency -------------------------------------------------------------------------------------------


def test_the_same_key_and_body_returns_the_same_transfer_without_moving_money_twice(money, client_of):
    client = client_of(money.manager)
    first = _send(client, money.manager, money.canyon, "25.00", key="april-1")
    again = _send(client, money.manager, money.canyon, "25.00", key="april-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert (_amount(money.manager), _amount(money.canyon)) == (Decimal("475.00"), Decimal("25.00"))
    assert AuditEvent.objects.filter(change_type="balance.transferred").count() == 1
    # Another key is another transfer.
    assert _send(client, money.manager, money.canyon, "25.00", key="april-2").status_code == 201
    assert _amount(money.canyon) == Decimal("50.00")


def test_the_same_key_with_another_body_is_a_409_and_moves_nothing(money, client_of):
    client = client_of(money.manager)
    _send(client, money.manager, money.canyon, "25.00", key="april-1")
    for other in (
        {"amount": "26.00"},
        {"amount": "25.00", "reference": "changed"},
        {"receiver": money.quiet},
        {"sender": money.canyon, "receiver": money.manager},
    ):
        sender, receiver = other.get("sender", money.manager), other.get("receiver", money.canyon)
        more = {k: v for k, v in other.items() if k == "reference"}
        with pytest.raises(telnyx.ConflictError) as refused:
            _send(client, sender, receiver, other.get("amount", "25.00"), key="april-1", **more)
        assert refused.value.body["errors"][0]["code"] == "idempotency_key_reused"
    assert (_amount(money.manager), _amount(money.canyon), _amount(money.quiet)) == (
        Decimal("475.00"), Decimal("25.00"), Decimal("0.00"))  # fmt: skip
    assert CreditTransfer.objects.count() == 1


@pytest.mark.postgres
def test_racing_requests_with_one_key_move_money_once(money, live_server, make_key):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency need PostgreSQL (SQLite serialises writers)")
    raw = make_key(money.manager)
    body = {"from": str(money.manager.public_id), "to": str(money.canyon.public_id), "amount": "10.00"}
    key = str(uuid.uuid4())
    statuses: list[int] = []
    start = threading.Barrier(8)

    def send():
        with httpx.Client(base_url=live_server.url + "/v2", timeout=30) as http:
            start.wait()
            response = http.post("/credit_transfers", json=body,
                                 headers={"Authorization": f"Bearer {raw}", "Idempotency-Key": key})  # fmt: skip
            statuses.append(response.status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 7 + [201]
    assert (_amount(money.manager), _amount(money.canyon)) == (Decimal("490.00"), Decimal("10.00"))
    assert CreditTransfer.objects.count() == 1
