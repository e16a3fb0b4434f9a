"""Regression tests of the security issue's holes 7, 9, 10 and 11 (issue 11), each named after its hole:
events about what an account may not see stay out of its log (7), account existence cannot be
probed through sign-up or managed-account creation (9), bad query strings and webhook payloads are
4xx, never 500 (10), and names refuse control, zero-width-only and bidi override characters (11)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, date, datetime

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts import audit
from accounts.actor import Actor
from accounts.models import Account, AuditEvent, Invitation, Membership, Role, User
from accounts.permissions import log_in_as_denial
from accounts.services import create_api_key
from accounts.validators import validate_name
from billing.invoices import services as invoice_services
from billing.invoices.builder import invoice_party
from billing.invoices.selectors import invoices_of, status_note_visible
from billing.models import Invoice, Payment
from billing.usage.services import ingest_usage
from tests.factories import PASSWORD

MARCH = date(2025, 3, 1)
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)
SECRET_NOTE = "Wire 4711, cost sheet says 0.0031"


def api(raw_key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}", raise_request_exception=False)


def key_of(account: Account) -> str:
    owner = Membership.objects.filter(account=account, role=Role.OWNER).first()
    _, raw = create_api_key(account=account, name="Test key", actor=Actor(user=owner.user))
    return raw


# --- Hole 7: a hidden reseller invoice's events ------------------------------------------------------------


def _march_invoices(world) -> tuple[Invoice, Invoice]:
    """world.managed and world.sibling (both roll-up) with March usage and the manager's reseller
    invoices to them, one marked paid and one voided, each with the manager's note."""
    Account.objects.update(created_at=LONG_AGO)
    rows = [
        {
            "account": str(account.public_id),
            "product": "sms.outbound",
            "quantity": "10",
            "started_at": "2025-03-03T10:00:00Z",
            "idempotency_key": f"hole-7-{account.pk}",
        }
        for account in (world.managed, world.sibling)
    ]
    ingest_usage(submitter=world.manager, rows=rows, source="api", actor=Actor(user=world.users["owner"]))
    invoice_party(account=world.manager, month=MARCH)
    actor = Actor(user=world.users["owner"])
    paid = Invoice.objects.get(issuer=world.manager, bill_to=world.managed)
    invoice_services.mark_invoice_paid(invoice=paid, note=SECRET_NOTE, actor=actor)
    void = Invoice.objects.get(issuer=world.manager, bill_to=world.sibling)
    invoice_services.void_invoice(invoice=void, reason=SECRET_NOTE, actor=actor)
    return paid, void


def _logged_types(client: Client, account: Account) -> tuple[list[str], str]:
    response = client.get(reverse("audit_log", args=[account.public_id]))
    assert response.status_code == 200
    return [row.record.change_type for row in response.context["table"].page.object_list], response.content.decode()


def test_hole_7_a_hidden_pricing_account_logs_its_reseller_invoice_events_without_the_managers_note(world, persona):
    """Issue 12, item 4: a hidden-pricing roll-up account now sees its reseller invoice, so the log
    shows that it was paid or voided; the manager's note on it stays the manager's."""
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)
    paid, void = _march_invoices(world)
    world.managed.refresh_from_db()

    types, page = _logged_types(persona("managed_owner"), world.managed)
    assert "invoice.marked_paid" in types and SECRET_NOTE not in page
    body = api(key_of(world.managed)).get("/v2/audit_events").json()
    # (invoice.finalized, the invoice's issue, is logged too: number, period, total, due date.)
    logged = [e for e in body["data"] if e["change_type"] in ("invoice.marked_paid", "invoice.voided")]
    assert [(e["resource_id"], e["changes"]) for e in logged] == [
        (str(paid.public_id), [{"field": "status", "from": "finalized", "to": "paid"}])
    ]
    assert SECRET_NOTE not in json.dumps(body)
    # A manager logged in as it sees its log as its owner does.
    types, page = _logged_types(persona("manager_acting"), world.managed)
    assert "invoice.marked_paid" in types and SECRET_NOTE not in page
    # The stored event keeps the note: it is the manager's record.
    stored = AuditEvent.objects.get(change_type="invoice.marked_paid")
    assert {"field": "status_note", "from": "", "to": SECRET_NOTE} in stored.changes

    # Where pricing is visible, the account sees its own invoice's events; the manager sees both.
    types, page = _logged_types(_client_of(world.users["sibling_owner"]), world.sibling)
    assert "invoice.voided" in types and SECRET_NOTE in page
    types, page = _logged_types(persona("owner"), world.manager)
    assert {"invoice.marked_paid", "invoice.voided"} <= set(types) and SECRET_NOTE in page


def _client_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_hole_7_the_log_and_the_invoice_pages_agree_on_reseller_invoices_and_their_notes(world):
    """The audit log (accounts, which may not import billing) and the invoices (billing) decide the
    same things for every kind of account: a reseller invoice's events are in an account's log
    exactly when the invoice is among the invoices it sees (now always, for its bill-to), and the
    manager's note on it reaches the log exactly when the invoice page shows it (never with hidden
    pricing)."""
    paid, void = _march_invoices(world)
    accounts = [world.manager, world.managed, world.sibling, world.standard, world.other_managed]
    for hidden in (False, True):
        Account.objects.filter(pk__in=[world.managed.pk, world.sibling.pk]).update(pricing_hidden=hidden)
        for account in accounts:
            account.refresh_from_db()
            seen = {str(i.public_id) for i in invoices_of(account)}
            events = [
                e
                for e in audit.events_for_account(account)
                if e.resource_type == "invoice" and e.related_account_id == account.pk
            ]
            billed = {i for i in (paid, void) if i.bill_to_id == account.pk}
            assert {e.resource_id for e in events} == {str(i.public_id) for i in billed} & seen, (account, hidden)
            for invoice in billed:
                shown = status_note_visible(invoice, account)
                assert shown == audit.resale_invoice_notes_visible(account) == (not hidden), (account, hidden)
                notes = [c for e in events for c in e.changes if c["field"] == "status_note"]
                assert bool(notes) == shown, (account, hidden)
    assert Invoice._meta.model_name == audit.INVOICE_RESOURCE_TYPE  # what audit.record stores


# --- Hole 9: account existence cannot be probed ------------------------------------------------------------

NEW_PASSWORD = "a-Strong-passphrase-42"


def _sign_up(email: str):
    return Client().post(
        reverse("account_signup"),
        {"email": email, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "organization_name": "Probe Co"},
    )


def test_hole_9_sign_up_answers_a_registered_address_as_a_new_one(world):
    taken = world.users["standard_owner"]
    users, accounts = User.objects.count(), Account.objects.count()

    for_taken = _sign_up(taken.email.upper())
    assert (User.objects.count(), Account.objects.count()) == (users, accounts)
    for_new = _sign_up("someone-new@probe.example.com")

    assert for_taken.status_code == for_new.status_code == 302
    assert for_taken["Location"] == for_new["Location"] == reverse("account_email_verification_sent")
    assert "already" not in for_taken.content.decode().lower()
    # The taken address's owner hears of it by e-mail; the new one must verify before signing in.
    assert [m.to for m in mail.outbox] == [[taken.email], ["someone-new@probe.example.com"]]
    assert "already" in mail.outbox[0].body.lower()
    assert User.objects.get(email="someone-new@probe.example.com").emailaddress_set.get().verified is False
    signed_in = Client()
    login = signed_in.post(
        reverse("account_login"), {"login": "someone-new@probe.example.com", "password": NEW_PASSWORD}
    )
    assert login.status_code == 302 and "_auth_user_id" not in signed_in.session


def _create_page(client: Client, manager: Account, email: str, password: str = "") -> object:
    # Both probes use one name, which the page asks to confirm (accounts.views.managed_create).
    data = {
        "name": "Probe Co",
        "email": email,
        "billing_mode": "rollup",
        "password": password,
        "confirm_same_name": "on",
    }
    return client.post(reverse("managed_create", args=[manager.public_id]), data, follow=True)


def test_hole_9_creating_a_managed_account_for_a_registered_address_reveals_nothing(
    world, persona, django_capture_on_commit_callbacks
):
    client = persona("owner")
    taken = world.users["other_tenant"]  # a user of another tenant: the manager must not learn it exists

    with django_capture_on_commit_callbacks(execute=True):
        for_new = _create_page(client, world.manager, "fresh-owner@probe.example.com")
        for_taken = _create_page(client, world.manager, taken.email.upper())

    assert for_new.status_code == for_taken.status_code == 200
    assert [str(m) for m in for_new.context["messages"]] == [str(m) for m in for_taken.context["messages"]]
    assert "already exists" not in for_taken.content.decode()
    managed = Account.objects.filter(manager=world.manager, email=taken.email).get()
    # The existing user is invited as owner (an e-mail they accept), never made owner unasked.
    assert not managed.memberships.exists()
    invitation = Invitation.objects.get(account=managed, email=taken.email, role=Role.OWNER)
    assert [m.to for m in mail.outbox] == [[taken.email]]
    assert "Probe Co" in mail.outbox[0].subject and invitation.token in mail.outbox[0].body
    assert not taken.check_password("something-else") and taken.check_password(PASSWORD)

    accepted = _client_of(taken).post(reverse("accept_invitation", args=[invitation.token]))
    assert accepted.status_code == 302
    assert managed.memberships.get().user == taken
    # DESIGN: an owner who belongs to other accounts cannot be logged in as.
    assert "belongs to other accounts" in log_in_as_denial(
        user=world.users["owner"], managed_account=managed, already_acting=False
    )


def test_hole_9_a_weak_password_is_refused_alike_whether_or_not_the_address_is_registered(world, persona):
    client = persona("owner")
    before = Account.objects.count()

    for_new = _create_page(client, world.manager, "fresh-owner@probe.example.com", password="short")
    for_taken = _create_page(client, world.manager, world.users["other_tenant"].email, password="short")

    assert for_new.status_code == for_taken.status_code == 422
    assert for_new.context["form"].errors == for_taken.context["form"].errors
    assert Account.objects.count() == before


def test_hole_9_the_api_answers_a_registered_address_as_a_new_one(world):
    client = api(key_of(world.manager))
    taken = world.users["standard_owner"]

    def create(email: str):
        return client.post(
            "/v2/managed_accounts", {"business_name": "Probe Co", "email": email}, content_type="application/json"
        )

    for_new, for_taken = create("api-new@probe.example.com"), create(taken.email)

    assert for_new.status_code == for_taken.status_code == 201, for_taken.content
    assert set(for_new.json()["data"]) == set(for_taken.json()["data"])
    assert for_taken.json()["data"]["email"] == taken.email
    managed = Account.objects.get(public_id=for_taken.json()["data"]["id"])
    assert Invitation.objects.filter(account=managed, email=taken.email, role=Role.OWNER).exists()


# --- Hole 10: bad query strings and webhook payloads -------------------------------------------------------

TABLE_PAGES = {
    "audit log": ("owner", "audit_log", "manager"),
    "managed accounts": ("owner", "managed_list", "manager"),
    "balance": ("owner", "balance", "manager"),
    "invoices": ("owner", "invoice_list", "manager"),
    "resale invoices": ("owner", "resale_invoices", "manager"),
    "usage report": ("owner", "usage_report", "manager"),
}


@pytest.mark.parametrize("per_page", ["-1", "0", "100000", "abc", "1e3"])
@pytest.mark.parametrize("page", list(TABLE_PAGES))
def test_hole_10_per_page_is_bounded_on_every_table_page(world, persona, page, per_page):
    persona_name, url_name, account = TABLE_PAGES[page]
    client = persona(persona_name)
    client.raise_request_exception = False

    response = client.get(reverse(url_name, args=[getattr(world, account).public_id]), {"per_page": per_page})

    assert response.status_code == 200, (page, per_page, response.status_code)
    size = response.context["table"].paginator.per_page
    assert 1 <= size <= 250


def test_hole_10_per_page_within_bounds_is_honoured(world, persona):
    from tests.conftest import make_managed_accounts

    make_managed_accounts(world.manager, 30)
    client = persona("owner")
    url = reverse("managed_list", args=[world.manager.public_id])

    assert len(client.get(url, {"per_page": "7"}).context["table"].page.object_list) == 7
    assert client.get(url, {"per_page": "100000"}).context["table"].paginator.per_page == 250


@pytest.mark.parametrize(
    "query",
    [
        {"end": "9999-12-31"},
        {"start": "9999-12-31"},
        {"start": "0001-01-01", "end": "9999-12-31"},
        {"end": "10000-01-01"},
    ],
)
def test_hole_10_audit_log_dates_out_of_range_are_a_form_error(world, persona, query):
    client = persona("owner")
    client.raise_request_exception = False

    response = client.get(reverse("audit_log", args=[world.manager.public_id]), query)

    assert response.status_code == 422, response.status_code
    errors = " ".join(e for field in response.context["form"].errors.values() for e in field)
    assert "Choose a day from 2000-01-01 to 2999-12-31." in errors or "Enter a valid date." in errors
    assert response.context["table"] is not None and 'name="end"' in response.content.decode()  # still the page


def _signed(event: object) -> tuple[str, str]:
    body = json.dumps(event)
    timestamp = int(time.time())
    signature = hmac.new(
        settings.STRIPE_WEBHOOK_SECRET.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256
    ).hexdigest()
    return body, f"t={timestamp},v1={signature}"


def _webhook(event) -> object:
    body, signature = _signed(event)
    client = Client(raise_request_exception=False)
    return client.post(
        reverse("stripe_webhook"), body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )


INTENT = {"id": "pi_hole10", "object": "payment_intent", "status": "succeeded", "amount": 2500, "currency": "usd"}
SUCCEEDED, FAILED = "payment_intent.succeeded", "payment_intent.payment_failed"
MALFORMED = {
    "data is empty": {"id": "evt_1", "type": SUCCEEDED, "data": {}},
    "no data": {"id": "evt_1", "type": SUCCEEDED},
    "object is a string": {"id": "evt_1", "type": SUCCEEDED, "data": {"object": "pi_1"}},
    "object has no id": {"id": "evt_1", "type": SUCCEEDED, "data": {"object": {"status": "x"}}},
    "amount is text": {"id": "evt_1", "type": SUCCEEDED, "data": {"object": {**INTENT, "amount": "x"}}},
    "amount is a float": {"id": "evt_1", "type": SUCCEEDED, "data": {"object": {**INTENT, "amount": 1.5}}},
    "amount is negative": {"id": "evt_1", "type": SUCCEEDED, "data": {"object": {**INTENT, "amount": -5}}},
    "currency missing": {"id": "evt_1", "type": FAILED,
                         "data": {"object": {k: v for k, v in INTENT.items() if k != "currency"}}},
    "error is a string": {"id": "evt_1", "type": FAILED,
                          "data": {"object": {**INTENT, "last_payment_error": "declined"}}},
    "error message is a number": {"id": "evt_1", "type": FAILED,
                                  "data": {"object": {**INTENT, "last_payment_error": {"message": 3}}}},
    "data is a list": {"id": "evt_1", "type": "payment_intent.canceled", "data": [INTENT]},
    "no type": {"id": "evt_1", "data": {"object": INTENT}},
    "a JSON array": [INTENT],
    "a JSON string": "payment_intent.succeeded",
    "a JSON null": None,
    "type is a number": {"id": "evt_1", "type": 7, "data": {"object": INTENT}},
}  # fmt: skip


@pytest.mark.parametrize("case", list(MALFORMED))
def test_hole_10_a_signed_but_malformed_webhook_is_a_400_and_writes_nothing(world, case):
    before = (Payment.objects.count(), AuditEvent.objects.count())

    response = _webhook(MALFORMED[case])

    assert response.status_code == 400, (case, response.status_code)
    assert (Payment.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize(
    "event",
    [
        {"id": "evt_2", "type": "customer.created", "data": {}},
        {"id": "evt_3", "type": "charge.refunded", "data": {"object": {"id": "ch_1"}}},
        {"id": "evt_4", "type": "payment_intent.succeeded", "data": {"object": INTENT}},  # none of ours
    ],
)
def test_hole_10_a_well_formed_event_we_ignore_is_a_200(world, event):
    assert _webhook(event).status_code == 200


# --- Hole 11: names ----------------------------------------------------------------------------------------

BAD_NAMES = {
    "CR/LF": "Alpine\r\nBcc: victim@example.com",
    "a newline": "Alpine\nVoice",
    "a tab": "Alpine\tVoice",
    "DEL": "Alpine\x7fVoice",
    "a C1 control": "Alpine\x85Voice",
    "zero-width only": "\u200b\u200c\u200d",
    "zero-width and spaces": "\u200b \u2060 \ufeff",
    "Hangul filler only": "\u3164",
    "right-to-left override": "Invoice\u202efdp.exe",
    "left-to-right embedding": "A\u202aB",
    "pop directional formatting": "A\u202cB",
    "first strong isolate": "A\u2068B\u2069",
    "left-to-right isolate": "\u2066Alpine",
    "a line separator": "Alpine\u2028Voice",
}
GOOD_NAMES = ["Café Zoë & Co.", "شركة الاتصالات", "株式会社テレコム", "👩\u200d💻 Studio", "O'Brien-Smith (UK) Ltd"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_hole_11_ordinary_names_pass_the_validator(name):
    validate_name(name)


def _name_forms(world) -> dict[str, tuple[str, str, dict, str]]:
    """Every portal form with a name field: (persona, url, the other fields, the name field)."""
    m, a = world.manager.public_id, world.managed.public_id
    return {
        "managed create": ("owner", reverse("managed_create", args=[m]),
                           {"email": "n@probe.example.com", "billing_mode": "rollup"}, "name"),
        "managed settings": ("owner", reverse("managed_settings", args=[m, a]), {}, "name"),
        "account settings": ("owner", reverse("account_settings", args=[m]), {}, "name"),
        "api key": ("owner", reverse("api_key_create", args=[m]), {}, "name"),
        "managed api key": ("owner", reverse("managed_api_key_create", args=[m, a]), {}, "name"),
    }  # fmt: skip


def _names_state() -> tuple:
    return (
        sorted(Account.objects.values_list("pk", "name")),
        AuditEvent.objects.count(),
        User.objects.count(),
        len(mail.outbox),
    )


@pytest.mark.parametrize("bad", list(BAD_NAMES))
@pytest.mark.parametrize("form", ["managed create", "managed settings", "account settings", "api key",
                                  "managed api key"])  # fmt: skip
def test_hole_11_every_portal_name_field_refuses_control_zero_width_and_bidi_characters(world, persona, form, bad):
    persona_name, url, fields, field = _name_forms(world)[form]
    before = _names_state()

    response = persona(persona_name).post(url, {**fields, field: BAD_NAMES[bad]})

    assert response.status_code == 422, (form, bad, response.status_code)
    page = response.content.decode()
    assert "Names cannot contain" in page or "at least one visible character" in page, page[:2000]
    assert _names_state() == before


@pytest.mark.parametrize("bad", list(BAD_NAMES))
def test_hole_11_sign_up_refuses_a_bad_business_name(db, bad):
    response = Client().post(
        reverse("account_signup"),
        {"email": "n@probe.example.com", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD,
         "organization_name": BAD_NAMES[bad]},
    )  # fmt: skip

    assert response.status_code == 200  # allauth shows the form again
    assert response.context["form"].errors["organization_name"]
    assert not User.objects.exists() and not Account.objects.exists()


@pytest.mark.parametrize("bad", list(BAD_NAMES))
def test_hole_11_the_api_refuses_the_same_names(world, bad):
    client = api(key_of(world.manager))
    before = _names_state()

    created = client.post("/v2/managed_accounts", {"business_name": BAD_NAMES[bad], "email": "n@probe.example.com"},
                          content_type="application/json")  # fmt: skip
    patched = client.patch(f"/v2/managed_accounts/{world.managed.public_id}", {"organization_name": BAD_NAMES[bad]},
                           content_type="application/json")  # fmt: skip

    assert created.status_code == patched.status_code == 422
    assert created.json()["errors"][0]["source"] == {"pointer": "/business_name"}
    assert patched.json()["errors"][0]["source"] == {"pointer": "/organization_name"}
    detail = created.json()["errors"][0]["detail"]
    assert "Names cannot contain" in detail or "at least one visible character" in detail
    assert _names_state()[:3] == before[:3]
