"""The bad-input corpus against the portal's own forms: the CSV usage upload page, the managed-account
create form and the credit transfer form. Truncated and oversized input, wrong encodings, NUL bytes,
huge and negative numbers, SQL and HTML in every text field, unknown ids and other tenants' ids:
each case gets a 4xx page with a clear message, HTML comes back escaped wherever the input is
echoed, and nothing is written. (The v2 API's corpus is tests/api/test_bad_input_corpus.py;
tests/test_usage_upload.py, test_managed_accounts.py and test_balance_pages.py already cover the
ordinary refusals, which this corpus does not repeat.)"""

from __future__ import annotations

import html
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import Account, AuditEvent, Membership, User
from billing.ledger import services as ledger
from billing.models import Balance, DailyUsage, LedgerEntry, MonthlyUsage, UsageBatch, UsageRecord

SQL = "x'); DROP TABLE billing_usagerecord; --"
HTML = "<script>alert('mc')</script>"
ESCAPED = "&lt;script&gt;alert("
RANDOM_ID = "6f1c7a52-2d4e-4c1f-9d7e-1e2a3b4c5d6e"
HEADER = "product,quantity,started_at,idempotency_key,account"
GOOD = "sms.outbound,1,2025-03-03T09:15:00Z,k-1,"


def state() -> tuple:
    """Every table a refused form could have written to, and the accounts' own fields."""
    counts = tuple(
        model.objects.count()
        for model in (
            Account,
            User,
            Membership,
            AuditEvent,
            UsageRecord,
            UsageBatch,
            DailyUsage,
            MonthlyUsage,
            LedgerEntry,
        )  # fmt: skip
    )
    return (
        counts,
        sorted(Balance.objects.values_list("account_id", "amount")),
        sorted(Account.objects.values_list("pk", "name", "status", "updated_at")),
    )


def assert_refused(response, status: int, message: str | None = None) -> str:
    assert response.status_code != 500
    assert response.status_code == status, (response.status_code, response.content[:300])
    page = response.content.decode()
    assert "<script>alert(" not in page, "input echoed unescaped"
    if message is not None:
        assert message in html.unescape(page), page[:3000]
    return page


# --- The CSV upload page ---------------------------------------------------------------------------------------


def csv_file(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


PADDING = "sms.outbound,1,2025-03-03T09:15:00Z,pad-{n},\n"
UPLOADS = {
    "truncated inside a quoted field": (csv_file(GOOD, 'sms.outbound,"1'), "row"),
    "truncated mid-row": (csv_file(GOOD, "sms.outbound,1,2025-03"), "has 3 fields"),
    "UTF-16 with a BOM": (csv_file(GOOD).decode().encode("utf-16"), "it is UTF-16 text, not UTF-8"),
    "UTF-16 without a BOM": (csv_file(GOOD).decode().encode("utf-16-le"), "This is not a CSV file"),
    "a NUL byte in the first line": (b"prod\x00uct" + csv_file(GOOD)[7:], "This is not a CSV file"),
    "a NUL byte past the first 8 KB": (
        csv_file(*(PADDING.format(n=n).strip() for n in range(300)), "sms.outbound,1,2025-03-03T09:15:00Z,k\x00z,"),
        "This is not a CSV file",
    ),
    "a field over the CSV module's limit": (
        csv_file(f"sms.outbound,1,2025-03-03T09:15:00Z,{'k' * 200_000},"),
        "This is not a CSV file",
    ),  # fmt: skip
    "quantity 1e400": (csv_file("sms.outbound,1e400,2025-03-03T09:15:00Z,k-1,"), "is too large"),
    "quantity 10**30": (csv_file(f"sms.outbound,{10**30},2025-03-03T09:15:00Z,k-1,"), "is too large"),
    "quantity NaN": (csv_file("sms.outbound,NaN,2025-03-03T09:15:00Z,k-1,"), "'NaN' is not a number"),
    "quantity Infinity": (csv_file("sms.outbound,Infinity,2025-03-03T09:15:00Z,k-1,"), "'Infinity' is not a number"),
    "quantity -1e400": (csv_file("sms.outbound,-1e400,2025-03-03T09:15:00Z,k-1,"), "cannot be negative"),
    "started_at 1e400": (csv_file("sms.outbound,1,1e400,k-1,"), "'1e400' is not an ISO 8601 time"),
    "product HTML": (csv_file(f"{HTML},1,2025-03-03T09:15:00Z,k-1,"), f"'{HTML}' is not a known product"),
    "product SQL": (csv_file(f'"{SQL}",1,2025-03-03T09:15:00Z,k-1,'), "is not a known product"),
    "a column named in HTML": (
        csv_file("sms.outbound,1,2025-03-03T09:15:00Z,k-1,x", header=HEADER + f",{HTML}"),
        f"Unknown column '{HTML.lower()}'",
    ),  # fmt: skip
    "account SQL": (csv_file(f'sms.outbound,1,2025-03-03T09:15:00Z,k-1,"{SQL}"'), "is not this account"),
    "account HTML": (csv_file(f"sms.outbound,1,2025-03-03T09:15:00Z,k-1,{HTML}"), "is not this account"),
    "account unknown": (csv_file(f"sms.outbound,1,2025-03-03T09:15:00Z,k-1,{RANDOM_ID}"), "is not this account"),
    "idempotency key of 101 characters": (
        csv_file(f"sms.outbound,1,2025-03-03T09:15:00Z,{'k' * 101},"),
        "longer than 100 characters",
    ),  # fmt: skip
}


def upload_url(account: Account) -> str:
    return reverse("usage_upload", args=[account.public_id])


@pytest.mark.parametrize("case", list(UPLOADS))
def test_a_bad_upload_is_a_422_page_with_its_message_escaped_and_stores_nothing(world, persona, case):
    content, message = UPLOADS[case]
    client = persona("owner")
    before = state()

    response = client.post(upload_url(world.manager), {"file": SimpleUploadedFile("usage.csv", content, "text/csv")})

    assert_refused(response, 422, message)
    assert state() == before


def test_an_upload_that_is_not_a_multipart_form_is_asked_for_a_file(world, persona):
    before = state()
    for content_type, body in (("application/json", b'{"file": "usage.csv"}'), ("text/csv", csv_file(GOOD))):
        response = persona("owner").post(upload_url(world.manager), body, content_type=content_type)
        assert_refused(response, 422, "Choose a CSV file to upload.")
    assert state() == before


@pytest.mark.parametrize("account_id", [RANDOM_ID, "OTHER"])
def test_an_upload_to_an_unknown_or_another_tenants_account_is_a_404(world, persona, account_id):
    account_id = world.other_manager.public_id if account_id == "OTHER" else account_id
    before = state()
    response = persona("owner").post(
        reverse("usage_upload", args=[account_id]), {"file": SimpleUploadedFile("u.csv", csv_file(GOOD), "text/csv")}
    )
    assert_refused(response, 404)
    assert state() == before


# --- The managed-account create form ---------------------------------------------------------------------------

VALID = {"name": "Nova Dial", "email": "owner@nova.example.com", "billing_mode": "rollup", "password": ""}
CREATE_CASES = {
    "name with a NUL": ({"name": "Nova\x00Dial"}, "Null characters are not allowed."),
    "name of 256 characters": ({"name": "N" * 256}, "at most 255 characters"),
    "name sent as latin-1": ({"name": "Caf\ufffd Dial"}, "not sent as UTF-8"),
    "e-mail SQL": ({"email": f"a@b.example.com{SQL}"}, "Enter a valid email address."),
    "e-mail HTML": ({"email": f"{HTML}@example.com"}, "Enter a valid email address."),
    "e-mail with a NUL": ({"email": "owner\x00@nova.example.com"}, "Null characters are not allowed."),
    "e-mail 1e400": ({"email": "1e400"}, "Enter a valid email address."),
    "billing mode SQL": ({"billing_mode": SQL}, "Select a valid choice."),
    "billing mode HTML": ({"billing_mode": HTML}, "Select a valid choice."),
    "password with a NUL": ({"password": "correct-horse\x00battery"}, "Null characters are not allowed."),
}


def create_url(account_id) -> str:
    return reverse("managed_create", args=[account_id])


@pytest.mark.parametrize("case", list(CREATE_CASES))
def test_a_bad_managed_account_is_refused_with_its_input_escaped_and_nothing_created(world, persona, case):
    changes, message = CREATE_CASES[case]
    before = state()

    response = persona("owner").post(create_url(world.manager.public_id), {**VALID, **changes})

    assert_refused(response, 422, message)
    assert state() == before


def test_a_form_body_in_latin_1_is_refused_not_stored_with_replacement_characters(world, persona):
    """Django decodes a form body as UTF-8 and turns bytes that are not into U+FFFD: the name the
    person typed would be stored mangled. The form refuses it instead."""
    body = "name=Caf%E9+Dial&email=owner%40nova.example.com&billing_mode=rollup"
    before = state()
    response = persona("owner").post(
        create_url(world.manager.public_id), body, content_type="application/x-www-form-urlencoded"
    )
    assert_refused(response, 422, "not sent as UTF-8")
    assert state() == before


def test_an_oversized_or_overlong_form_is_a_400_and_creates_nothing(world, persona):
    before = state()
    client = persona("owner")
    huge = {**VALID, "name": "N" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    assert_refused(client.post(create_url(world.manager.public_id), huge), 400)
    many = "&".join(f"f{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client.post(create_url(world.manager.public_id), many, content_type="application/x-www-form-urlencoded")
    assert_refused(response, 400)
    assert state() == before


@pytest.mark.parametrize("account_id", [RANDOM_ID, "OTHER"])
def test_creating_under_an_unknown_or_another_tenants_manager_is_a_404(world, persona, account_id):
    account_id = world.other_manager.public_id if account_id == "OTHER" else account_id
    before = state()
    assert_refused(persona("owner").post(create_url(account_id), VALID), 404)
    assert state() == before


@pytest.mark.parametrize("name", [HTML, SQL])
def test_html_and_sql_in_a_name_are_kept_as_text_and_shown_escaped(world, persona, name):
    client = persona("owner")
    response = client.post(create_url(world.manager.public_id), {**VALID, "name": name})
    assert response.status_code == 302
    created = Account.objects.get(name=name)  # stored exactly as typed
    for page in (client.get(response["Location"]), client.get(reverse("managed_list", args=[world.manager.public_id]))):
        assert page.status_code == 200
        assert name not in page.content.decode() and html.escape(name) in page.content.decode()
    assert created.manager == world.manager


# --- The transfer form -----------------------------------------------------------------------------------------


@pytest.fixture
def separate(world):
    """world.sibling billed separately, USD 100.00 on its manager's balance."""
    Account.objects.filter(pk=world.sibling.pk).update(billing_mode=Account.BillingMode.SEPARATE)
    ledger.post_entry(account=world.manager, kind=LedgerEntry.Kind.TOP_UP, amount=Decimal("100.00"), key="fund",
                      description="Top-up")  # fmt: skip
    return world


def transfer_url(manager_id, managed_id) -> str:
    return reverse("managed_transfer", args=[manager_id, managed_id])


KEY = "0b5f9f26-0c1e-4a55-a1e3-8b3c1c2f6f11"
TRANSFER_CASES = {
    "amount 1e400": ({"amount": "1e400"}, "A transfer is at most"),
    "amount 10**30": ({"amount": str(10**30)}, "A transfer is at most"),
    "amount -1": ({"amount": "-1"}, "Transfer more than zero."),
    "amount -1e400": ({"amount": "-1e400"}, "Transfer more than zero."),
    "amount 1e-400": ({"amount": "1e-400"}, "Use at most 2 decimal places"),
    "amount NaN": ({"amount": "NaN"}, "Enter an amount such as 25.00."),
    "amount Infinity": ({"amount": "Infinity"}, "Enter an amount such as 25.00."),
    "amount SQL": ({"amount": SQL}, "Enter an amount such as 25.00."),
    "amount HTML": ({"amount": HTML}, "Enter an amount such as 25.00."),
    "amount with a NUL": ({"amount": "10\x00"}, None),
    "key SQL": ({"key": SQL}, "Enter a valid UUID."),
    "key HTML": ({"key": HTML}, "Enter a valid UUID."),
    "key missing": ({"key": ""}, None),
    "confirmed: amount 1e400": ({"amount": "1e400", "confirm": "1"}, "A transfer is at most"),
    "confirmed: amount NaN": ({"amount": "NaN", "confirm": "1"}, "Enter an amount such as 25.00."),
    "confirmed: key SQL": ({"amount": "10", "key": SQL, "confirm": "1"}, "Enter a valid UUID."),
}


@pytest.mark.parametrize("case", list(TRANSFER_CASES))
def test_a_bad_transfer_is_refused_with_its_input_escaped_and_moves_nothing(separate, persona, case):
    world = separate
    changes, message = TRANSFER_CASES[case]
    before = state()

    response = persona("owner").post(
        transfer_url(world.manager.public_id, world.sibling.public_id), {"amount": "10", "key": KEY, **changes}
    )

    assert_refused(response, 422, message)
    assert state() == before


@pytest.mark.parametrize(
    ("manager", "managed"),
    [("MANAGER", RANDOM_ID), (RANDOM_ID, "SIBLING"), ("OTHER", "SIBLING"), ("MANAGER", "OTHER_MANAGED")],
)
def test_a_transfer_naming_unknown_or_foreign_ids_is_a_404(separate, persona, manager, managed):
    world = separate
    ids = {"MANAGER": world.manager.public_id, "OTHER": world.other_manager.public_id,
           "SIBLING": world.sibling.public_id, "OTHER_MANAGED": world.other_managed.public_id}  # fmt: skip
    before = state()
    url = transfer_url(ids.get(manager, manager), ids.get(managed, managed))
    assert_refused(persona("owner").post(url, {"amount": "10", "key": KEY, "confirm": "1"}), 404)
    assert state() == before


def test_ids_that_are_not_uuids_never_reach_a_view(world, persona):
    client = persona("owner")
    for path in (f"/a/{quote(SQL)}/usage/upload/", f"/a/{world.manager.public_id}/managed/{quote(HTML)}/transfer/"):
        assert_refused(client.post(path, {"amount": "10"}), 404)


# --- The billing profile form (issue 12 item 7) --------------------------------------------------------------

PROFILE = {"legal_name": "Acme GmbH", "city": "Berlin", "country": "DE", "invoice_emails": "ap@acme.example.com"}
PROFILE_CASES = {
    "legal name with a NUL": ({"legal_name": "Acme\x00GmbH"}, "Null characters are not allowed."),
    "legal name with a line break": ({"legal_name": "Acme\nBcc: x@example.com"}, "line breaks"),
    "legal name of 256 characters": ({"legal_name": "A" * 256}, "at most 255 characters"),
    "legal name sent as latin-1": ({"legal_name": "Caf\ufffd GmbH"}, "not sent as UTF-8"),
    "country SQL": ({"country": SQL}, "two-letter code"),
    "country HTML": ({"country": "<b"}, "two-letter code"),
    "recipient SQL": ({"invoice_emails": f"a@b.example.com{SQL}"}, "is not an e-mail address"),
    "recipient HTML": ({"invoice_emails": f"{HTML}@example.com"}, "is not an e-mail address"),
    "six recipients": ({"invoice_emails": " ".join(f"r{n}@example.com" for n in range(6))}, "At most 5"),
    "payment terms 1e400": ({"payment_terms_days": "1e400"}, "Enter a whole number."),
    "payment terms negative": ({"payment_terms_days": "-3"}, "greater than or equal to 0"),
}


@pytest.mark.parametrize("case", list(PROFILE_CASES))
def test_a_bad_billing_profile_is_refused_with_its_input_escaped_and_nothing_stored(world, persona, case):
    changes, message = PROFILE_CASES[case]
    before = state()

    response = persona("owner").post(reverse("billing_profile", args=[world.manager.public_id]), {**PROFILE, **changes})

    assert_refused(response, 422, message)
    assert state() == before
    assert not world.manager.__class__.objects.filter(pk=world.manager.pk, billing_profile__isnull=False).exists()
