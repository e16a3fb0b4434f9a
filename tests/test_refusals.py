"""One refusal family (accounts.errors.Refusal): every domain refusal derives from it, the API maps
it once (`portal.api.api_view`: the contract's error shape, with the pointer of the refusal's field)
and forms show it once (`accounts.forms.apply_refusal`: next to the field it concerns)."""

from __future__ import annotations

import inspect
import json
from decimal import Decimal

import pytest
from django import forms
from django.core.cache import cache
from django.http import JsonResponse
from django.test import RequestFactory
from django.urls import reverse

from accounts import services as account_services
from accounts.actor import Actor
from accounts.errors import Refusal
from accounts.forms import apply_refusal
from accounts.models import Account
from billing.invoices import services as invoice_services
from billing.invoices.builder import invoice_party
from billing.ledger import services as ledger
from billing.models import Invoice
from billing.payments import services as payments
from billing.usage import services as usage_services
from portal.api import actor, api_view, json_body
from tests.api.conftest import RawApi, assert_error, owner_of
from tests.test_reseller_invoices import LONG_AGO, MARCH, usage

SERVICE_MODULES = (account_services, ledger, payments, invoice_services, usage_services)
NAMED = (
    account_services.ServiceError,
    ledger.LedgerError,
    ledger.InsufficientCredit,
    payments.PaymentRefused,
    invoice_services.InvoiceStateError,
    usage_services.UsageRejected,
)


@pytest.fixture(autouse=True)
def _fresh_rate_limit():
    """The per-key rate limit lives in the cache; no test inherits another's counts."""
    cache.clear()
    yield
    cache.clear()


def key_for(account: Account) -> str:
    _, raw = account_services.create_api_key(account=account, name="Test key", actor=Actor(user=owner_of(account)))
    return raw


def make_separate(account: Account) -> Account:
    Account.objects.filter(pk=account.pk).update(billing_mode=Account.BillingMode.SEPARATE)
    account.refresh_from_db()
    return account


# --- The family -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("refusal", NAMED, ids=lambda cls: cls.__name__)
def test_every_named_domain_refusal_derives_from_the_base(refusal):
    assert issubclass(refusal, Refusal)


@pytest.mark.parametrize("module", SERVICE_MODULES, ids=lambda module: module.__name__)
def test_every_exception_a_service_module_defines_is_a_refusal(module):
    defined = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and issubclass(cls, Exception)
    ]

    assert defined
    assert [cls.__name__ for cls in defined if not issubclass(cls, Refusal)] == []


def test_a_refusal_carries_its_message_field_and_status():
    refused = ledger.LedgerError("Transfer a positive amount in cents.", field="amount")

    assert (refused.message, refused.field, refused.status, str(refused)) == (
        "Transfer a positive amount in cents.",
        "amount",
        422,
        "Transfer a positive amount in cents.",
    )
    assert invoice_services.InvoiceStateError("Invoice 1 is paid.").status == 409


# --- The API maps it once -----------------------------------------------------------------------------------


def test_a_usage_refusal_answers_one_error_per_bad_row_at_its_pointer(world):
    api = RawApi(key_for(world.manager))
    good = {"product": "sms.outbound", "quantity": "1", "started_at": "2025-03-10T10:00:00Z", "idempotency_key": "a"}
    bad_quantity = {**good, "quantity": "-1", "idempotency_key": "b"}
    bad_product = {**good, "product": "pigeon.outbound", "idempotency_key": "c"}

    response = api.post("usage_records", {"records": [good, bad_quantity, bad_product]})

    first = assert_error(response, 422, pointer="/records/1/quantity")
    assert first == {
        "code": "invalid_record",
        "title": "Invalid record",
        "detail": "Row 2, quantity: cannot be negative.",
        "source": {"pointer": "/records/1/quantity"},
    }
    assert [e["source"]["pointer"] for e in response.json()["errors"]] == ["/records/1/quantity", "/records/2/product"]


def test_a_batch_wide_usage_refusal_points_at_the_records(world):
    response = RawApi(key_for(world.manager)).post("usage_records", {"records": []})

    first = assert_error(response, 422, pointer="/records")
    assert (first["code"], first["detail"]) == ("invalid_batch", "records: The batch is empty.")


def test_an_account_refusal_points_at_its_field(world):
    """The status change's refusal names `status`: the decorator gives the pointer the view gave."""
    api = RawApi(key_for(world.manager))
    path = f"managed_accounts/{world.managed.public_id}/actions/disable"
    assert api.post(path).status_code == 200

    first = assert_error(api.post(path), 422, pointer="/status")

    assert first["code"] == "invalid_field"
    assert first["detail"] == "Alpine Voice is already disabled; nothing changed."


def test_a_refusal_without_a_field_points_at_the_data(world):
    api = RawApi(key_for(world.manager))
    account_services.change_managed_account_status(managed=world.managed, action="cancel", actor=Actor(user=None))

    first = assert_error(api.patch(f"managed_accounts/{world.managed.public_id}", {"pricing_hidden": True}), 422)

    assert first["source"] == {"pointer": "/data"}
    assert first["detail"] == "A cancelled account cannot be changed."


# No v2 endpoint moves credit, takes payments or changes an invoice's state yet (the contract lists
# them as later work). These stand-ins call the real services the way such an endpoint would, so the
# real decorator maps what the ledger, payments and invoices refuse.


@api_view("POST")
def transfer_endpoint(request):
    body = json_body(request, allowed=("managed", "amount"))
    managed = Account.objects.get(public_id=body["managed"])
    amount = Decimal(body["amount"])
    ledger.transfer_credit(
        manager=request.api_key.account, managed=managed, amount=amount, key="k", actor=actor(request)
    )
    return JsonResponse({"data": {}})


@api_view("POST")
def auto_recharge_endpoint(request):
    body = json_body(request, allowed=("enabled", "threshold", "amount"))
    payments.update_auto_recharge(
        account=request.api_key.account,
        enabled=body["enabled"],
        threshold=Decimal(body["threshold"]),
        amount=Decimal(body["amount"]),
        actor=actor(request),
    )
    return JsonResponse({"data": {}})


@api_view("POST")
def invoice_paid_endpoint(request, invoice_id):
    invoice = Invoice.objects.get(issuer=request.api_key.account, public_id=invoice_id)
    invoice_services.mark_invoice_paid(invoice=invoice, note="", actor=actor(request))
    return JsonResponse({"data": {}})


def call(view, raw_key: str, body: dict, **kwargs):
    """The view's answer to a JSON POST with the key, and its parsed body."""
    request = RequestFactory().post(
        "/v2/stand-in", data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw_key}"
    )
    response = view(request, **kwargs)
    return response, json.loads(response.content)


def test_a_ledger_refusal_is_the_contracts_422_at_its_field(world):
    sibling = make_separate(world.sibling)

    response, body = call(transfer_endpoint, key_for(world.manager), {"managed": str(sibling.public_id), "amount": "5"})

    assert response.status_code == 422
    assert body == {
        "errors": [
            {
                "code": "invalid_field",
                "title": "Invalid field",
                "detail": "Not enough credit: USD 5.00 is more than the available USD 0.00.",
                "source": {"pointer": "/amount"},
            }
        ]
    }


def test_a_payment_refusal_is_the_contracts_422_at_its_field(world):
    response, body = call(
        auto_recharge_endpoint, key_for(world.manager), {"enabled": True, "threshold": "10", "amount": "50"}
    )

    assert response.status_code == 422
    assert body["errors"] == [
        {
            "code": "invalid_field",
            "title": "Invalid field",
            "detail": "Add a card first: auto-recharge charges your default card.",
            "source": {"pointer": "/enabled"},
        }
    ]


def test_an_invoice_state_refusal_is_a_409(world):
    Account.objects.update(created_at=LONG_AGO)
    usage(world.manager, (world.managed, "sms.outbound", "3"))
    invoice_party(account=world.manager, month=MARCH)
    invoice = Invoice.objects.get(issuer=world.manager, bill_to=world.managed)
    raw = key_for(world.manager)
    assert call(invoice_paid_endpoint, raw, {}, invoice_id=invoice.public_id)[0].status_code == 200

    response, body = call(invoice_paid_endpoint, raw, {}, invoice_id=invoice.public_id)

    assert response.status_code == 409
    assert [(e["code"], e["source"]) for e in body["errors"]] == [("invalid_state", {"pointer": "/data"})]
    assert "is paid: it cannot be marked paid" in body["errors"][0]["detail"]


# --- Forms show it once -------------------------------------------------------------------------------------


def test_a_payment_refusal_is_shown_next_to_its_field(world, persona):
    url = reverse("auto_recharge", args=[world.manager.public_id])

    response = persona("billing").post(url, {"enabled": "on", "threshold": "10.00", "amount": "50.00"})

    assert response.status_code == 422
    form = response.context["form"]
    assert form.errors == {"enabled": ["Add a card first: auto-recharge charges your default card."]}


def test_a_ledger_refusal_is_shown_next_to_its_field(world, persona):
    """The confirming step leaves the credit check to the ledger, whose refusal lands on `amount`."""
    sibling = make_separate(world.sibling)
    client = persona("owner")
    url = reverse("managed_transfer", args=[world.manager.public_id, sibling.public_id])
    key = str(client.get(url).context["form"].initial["key"])

    response = client.post(url, {"amount": "5.00", "key": key, "confirm": "1"})

    assert response.status_code == 422
    assert response.context["form"].errors == {
        "amount": ["Not enough credit: USD 5.00 is more than the available USD 0.00."]
    }


class _NoteForm(forms.Form):
    note = forms.CharField(required=False)


@pytest.mark.parametrize(
    ("field", "errors"),
    [("note", {"note": ["Refused."]}), ("amount", {"__all__": ["Refused."]}), (None, {"__all__": ["Refused."]})],
)
def test_a_refusal_for_a_field_the_form_lacks_is_shown_above_the_form(field, errors):
    form = _NoteForm({"note": "x"})
    assert form.is_valid()

    apply_refusal(form=form, refusal=Refusal("Refused.", field=field))

    assert form.errors == errors
