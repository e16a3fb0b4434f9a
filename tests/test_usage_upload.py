"""The CSV usage upload page, and the rate card page, as the personas meet them."""

import html
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import Account, AuditEvent
from billing.models import DailyUsage, Product, Rate, UsageBatch, UsageRecord
from billing.usage import csv_upload

HEADER = "product,quantity,started_at,idempotency_key,direction,country,destination"
GOOD_ROWS = [
    "voice.outbound,2.5,2025-03-03T09:15:00Z,call-1,outbound,US,+14155550123",
    "voice.outbound,1.2,2025-03-03T17:40:10Z,call-2,outbound,US,+14155550124",
    "sms.outbound,3,2025-03-04T08:00:00+01:00,msg-1,outbound,GB,+447700900123",
]


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def upload_url(account: Account) -> str:
    return reverse("usage_upload", args=[account.public_id])


def upload(client, account: Account, content: str | bytes, name: str = "usage.csv"):
    data = content.encode() if isinstance(content, str) else content
    return client.post(upload_url(account), {"file": SimpleUploadedFile(name, data, content_type="text/csv")})


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def stored() -> tuple[int, int, int]:
    return UsageRecord.objects.count(), DailyUsage.objects.count(), UsageBatch.objects.count()


def success_messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "success"]


# --- The page ------------------------------------------------------------------------------------------


def test_it_documents_the_columns_an_example_and_the_limits(world, persona):
    response = persona("owner").get(upload_url(world.manager))

    text = page_text(response)
    assert response.status_code == 200
    for column in ("product", "quantity", "started_at", "idempotency_key", "account", "destination"):
        assert f"<code>{column}</code>" in text
    assert "voice.outbound,2.5,2026-11-02T09:15:00Z" in text  # the example
    assert "20 MB" in text and "10,000 records" in text
    assert 'enctype="multipart/form-data"' in text and "js/upload.js" in text and "<progress" in text


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("owner", 200),
        ("admin", 200),
        ("billing", 403),
        ("reporting", 403),
        ("other_tenant", 404),
        ("managed_owner", 404),
    ],
)
def test_only_owners_and_admins_may_upload(world, persona, name, status):
    client = persona(name)
    assert client.get(upload_url(world.manager)).status_code == status
    response = upload(client, world.manager, csv_text(*GOOD_ROWS))
    assert response.status_code == (302 if status == 200 else status)
    assert UsageRecord.objects.count() == (3 if status == 200 else 0)


def test_anonymous_is_sent_to_sign_in(world, persona):
    response = persona("anonymous").get(upload_url(world.manager))
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


def test_it_refuses_a_disabled_managed_accounts_own_upload_page(world, persona):
    client = persona("managed_owner")
    Account.objects.filter(pk=world.managed.pk).update(status=Account.Status.DISABLED)
    assert upload(client, world.managed, csv_text(*GOOD_ROWS)).status_code == 403
    assert UsageRecord.objects.count() == 0


# --- A good file -------------------------------------------------------------------------------------------


def test_it_stores_a_good_file_rated_with_daily_totals(world, persona):
    client = persona("owner")
    response = upload(client, world.manager, csv_text(*GOOD_ROWS), name="march.csv")

    assert response.status_code == 302
    assert response["Location"] == upload_url(world.manager)
    assert success_messages(response) == ["3 records accepted, 0 duplicates skipped (march.csv)."]
    call = UsageRecord.objects.get(idempotency_key="call-1")
    assert call.account == world.manager
    assert (call.quantity, call.rate, call.cost) == (Decimal("2.5"), Decimal("0.01"), Decimal("0.025"))
    assert (call.direction, call.country, call.destination) == ("outbound", "US", "+14155550123")
    message = UsageRecord.objects.get(idempotency_key="msg-1")
    assert message.started_at == datetime(2025, 3, 4, 7, 0, tzinfo=UTC)  # offsets become UTC
    assert message.cost == Decimal("0.012")
    voice_day = DailyUsage.objects.get(account=world.manager, product__sku="voice.outbound")
    assert (voice_day.day.isoformat(), voice_day.quantity, voice_day.cost, voice_day.records) == (
        "2025-03-03",
        Decimal("3.7"),
        Decimal("0.037"),
        2,
    )
    batch = UsageBatch.objects.get()
    assert (batch.source, batch.filename, batch.accepted, batch.submitted_by) == (
        "csv",
        "march.csv",
        3,
        world.users["owner"],
    )
    assert AuditEvent.objects.filter(account=world.manager, change_type="usage.ingested").count() == 1
    page = client.get(upload_url(world.manager))
    assert "march.csv" in page_text(page)  # recent uploads


def test_re_uploading_the_same_file_adds_nothing(world, persona):
    client = persona("owner")
    upload(client, world.manager, csv_text(*GOOD_ROWS))
    before = stored()
    totals = list(DailyUsage.objects.order_by("pk").values())

    response = upload(client, world.manager, csv_text(*GOOD_ROWS))

    assert response.status_code == 302
    assert success_messages(response)[-1] == "0 records accepted, 3 duplicates skipped (usage.csv)."
    assert stored() == before
    assert list(DailyUsage.objects.order_by("pk").values()) == totals


def test_it_accepts_utf8_with_a_byte_order_mark_and_any_column_order(world, persona):
    content = "\ufeffIdempotency_Key,Product,Started_At,Quantity\r\nk-1,sms.inbound,2025-03-03 10:00:00,1\r\n"
    response = upload(persona("owner"), world.manager, content.encode("utf-8"))
    assert response.status_code == 302
    record = UsageRecord.objects.get()
    assert (record.idempotency_key, record.product.sku, record.quantity) == ("k-1", "sms.inbound", Decimal(1))


def test_a_manager_uploads_for_its_managed_accounts_with_the_account_column(world, persona):
    header = HEADER + ",account"
    rows = [
        f"voice.outbound,2.5,2025-03-03T09:15:00Z,k-1,outbound,US,+14155550123,{world.managed.public_id}",
        f"sms.outbound,1,2025-03-03T09:16:00Z,k-1,outbound,US,+14155550123,{world.sibling.public_id}",
        "sms.outbound,1,2025-03-03T09:17:00Z,k-1,outbound,US,+14155550123,",
    ]
    response = upload(persona("owner"), world.manager, csv_text(*rows, header=header))

    assert response.status_code == 302
    owners = dict(UsageRecord.objects.values_list("account__name", "product__sku"))
    assert owners == {"Alpine Voice": "voice.outbound", "Blue Harbor": "sms.outbound", "Acme Reseller": "sms.outbound"}
    assert UsageBatch.objects.get().submitted_by_account == world.manager
    assert DailyUsage.objects.filter(account=world.managed).count() == 1


def test_a_manager_acting_as_a_managed_account_uploads_as_itself(world, persona):
    response = upload(persona("manager_acting"), world.managed, csv_text(*GOOD_ROWS))
    assert response.status_code == 302
    assert set(UsageRecord.objects.values_list("account", flat=True)) == {world.managed.pk}
    assert UsageBatch.objects.get().submitted_by == world.users["owner"]  # the real person


# --- Bad input: 422, a clear message, nothing stored ----------------------------------------------------------

LATIN_1 = csv_text("voice.outbound,1,2025-03-03T09:15:00Z,caf\u00e9,outbound,FR,+33612345678").encode("latin-1")
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"
BAD_FILES = {
    "missing column": (
        csv_text("voice.outbound,2025-03-03T09:15:00Z,k-1", header="product,started_at,idempotency_key"),
        "The header row has no 'quantity' column",
    ),
    "bad date": (csv_text("voice.outbound,1,yesterday,k-1,,,"), "row 1"),
    "date in the future": (csv_text("voice.outbound,1,2999-01-01T00:00:00Z,k-1,,,"), "is in the future"),
    "negative quantity": (csv_text("voice.outbound,-1,2025-03-03T09:15:00Z,k-1,,,"), "cannot be negative"),
    "non-numeric quantity": (csv_text("voice.outbound,lots,2025-03-03T09:15:00Z,k-1,,,"), "'lots' is not a number"),
    "unknown product": (csv_text("voice.martian,1,2025-03-03T09:15:00Z,k-1,,,"), "'voice.martian' is not a known"),
    "duplicate key in the file": (
        csv_text(*GOOD_ROWS, "sms.outbound,1,2025-03-03T09:15:00Z,call-1,,,"),
        "'call-1' is also used in row 1.",
    ),
    "wrong number of fields": (csv_text("voice.outbound,1,2025-03-03T09:15:00Z"), "has 3 fields; the header row has 7"),
    "unknown column": (
        csv_text("voice.outbound,1,2025-03-03,k,red", header="product,quantity,started_at,idempotency_key,colour"),
        "Unknown column 'colour'",
    ),
    "not UTF-8": (LATIN_1, "This is not a CSV file: it is not UTF-8 text"),
    "a PDF": (PDF, "This is not a CSV file: it is a PDF document"),
    "a PNG": (PNG, "This is not a CSV file: it is a PNG image"),
    "binary": (b"\x01\x02\x00\x03" * 100, "This is not a CSV file: it is binary data"),
    "no header row": (
        "voice.outbound,1,2025-03-03T09:15:00Z,k-1\n",
        "This is not a CSV file: its first line does not name the columns",
    ),
    "semicolons": (
        "product;quantity;started_at;idempotency_key\nsms.outbound;1;2025-03-03T09:15:00Z;k-1\n",
        "This is not a CSV file: its columns are separated by semicolons, not commas",
    ),
    "a letter": ("Dear team,\nplease find our usage attached.\n", "This is not a CSV file"),
    "empty": (b"", "The file is empty."),
    "blank lines only": ("\n\n  \n", "The file is empty."),
    "a header and no records": (csv_text(), "The file has a header row but no records."),
    "too many records": (
        csv_text(*(f"sms.outbound,1,2025-03-03T09:15:00Z,k-{n},,," for n in range(10_001))),
        "A batch holds at most 10,000 records; this file has 10,001.",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_it_refuses_bad_input_and_stores_nothing(world, persona, case):
    content, message = BAD_FILES[case]
    client = persona("owner")
    upload(client, world.manager, csv_text(GOOD_ROWS[0]))  # something stored already
    before = stored()

    response = upload(client, world.manager, content)

    assert response.status_code == 422
    assert message in page_text(response)
    assert stored() == before


def test_a_bad_date_is_named_with_its_row_and_value(world, persona):
    rows = [*GOOD_ROWS, "voice.outbound,1,27/11/2025,k-9,,,"]
    response = upload(persona("owner"), world.manager, csv_text(*rows))
    assert response.status_code == 422
    assert "row 4" in page_text(response)
    assert "'27/11/2025' is not an ISO 8601 time" in page_text(response)


def test_row_numbers_are_the_data_lines_after_the_header(world, persona):
    # Blank lines are skipped but still counted, so "row 4" is the 4th line below the header.
    content = csv_text(GOOD_ROWS[0], "", GOOD_ROWS[1], "voice.outbound,-2,2025-03-03T09:15:00Z,k-9,,,")
    response = upload(persona("owner"), world.manager, content)

    errors = response.context["rejected"].errors
    assert [(e.row, e.field) for e in errors] == [(4, "quantity")]


def test_it_shows_the_first_100_errors_and_how_many_more(world, persona):
    rows = [f"voice.outbound,-1,2025-03-03T09:15:00Z,k-{n},,," for n in range(150)]
    response = upload(persona("owner"), world.manager, csv_text(*rows))

    text = page_text(response)
    assert response.status_code == 422
    assert "150 problems found" in text
    assert "row 100<" in text and "row 101<" not in text
    assert "and 50 more" in text
    assert UsageRecord.objects.count() == 0


def test_a_50_megabyte_file_is_refused_before_it_is_read(world, persona, monkeypatch):
    def must_not_parse(upload):
        raise AssertionError("an oversized file was parsed")

    monkeypatch.setattr(csv_upload, "parse_usage_csv", must_not_parse)
    content = (HEADER + "\n").encode() + b"x" * (50 * 1024 * 1024)

    response = upload(persona("owner"), world.manager, content)

    assert response.status_code == 422
    assert "The file is 50.0 MB; the limit is 20 MB." in page_text(response)
    assert stored() == (0, 0, 0)


def test_a_file_just_over_the_limit_is_refused_and_one_at_the_limit_is_read(world, persona):
    client = persona("owner")
    line = GOOD_ROWS[0] + "\n"
    at_limit = (HEADER + "\n" + line).encode()
    padding = csv_upload.MAX_UPLOAD_BYTES - len(at_limit)
    at_limit += (b" " * 999 + b"\n") * (padding // 1000) + b"\n" * (padding % 1000)  # blank lines
    assert len(at_limit) == csv_upload.MAX_UPLOAD_BYTES
    assert upload(client, world.manager, at_limit).status_code == 302
    assert upload(client, world.manager, at_limit + b" ").status_code == 422


def test_a_file_is_required(world, persona):
    response = persona("owner").post(upload_url(world.manager), {})
    assert response.status_code == 422
    assert "Choose a CSV file to upload." in page_text(response)


def test_a_row_naming_another_managers_account_is_refused(world, persona):
    header = HEADER + ",account"
    rows = [
        f"sms.outbound,1,2025-03-03T09:15:00Z,k-1,,,,{world.managed.public_id}",
        f"sms.outbound,1,2025-03-03T09:15:00Z,k-2,,,,{world.other_managed.public_id}",
    ]
    response = upload(persona("owner"), world.manager, csv_text(*rows, header=header))

    assert response.status_code == 422
    text = page_text(response)
    assert f"'{world.other_managed.public_id}' is not this account or one of its managed accounts" in text
    assert "row 2" in text
    assert stored() == (0, 0, 0)


def test_a_managed_account_cannot_upload_for_its_sibling(world, persona):
    header = HEADER + ",account"
    row = f"sms.outbound,1,2025-03-03T09:15:00Z,k-1,,,,{world.sibling.public_id}"
    response = upload(persona("managed_owner"), world.managed, csv_text(row, header=header))
    assert response.status_code == 422
    assert stored() == (0, 0, 0)


@pytest.mark.parametrize("status", [Account.Status.DISABLED, Account.Status.CANCELLED])
def test_a_row_for_a_disabled_or_cancelled_managed_account_is_refused(world, persona, status):
    Account.objects.filter(pk=world.sibling.pk).update(status=status)
    header = HEADER + ",account"
    rows = [
        f"sms.outbound,1,2025-03-03T09:15:00Z,k-1,,,,{world.managed.public_id}",
        f"sms.outbound,1,2025-03-03T09:15:00Z,k-2,,,,{world.sibling.public_id}",
    ]
    response = upload(persona("owner"), world.manager, csv_text(*rows, header=header))

    assert response.status_code == 422
    assert f"Blue Harbor is {status}; its usage is refused." in page_text(response)
    assert stored() == (0, 0, 0)


# --- The rate card -----------------------------------------------------------------------------------------


def rates_url(account: Account) -> str:
    return reverse("rate_card", args=[account.public_id])


def set_rate(account: Account | None, sku: str, price: str, *, since: datetime | None = None) -> Rate:
    since = since or datetime(2024, 1, 1, tzinfo=UTC)
    return Rate.objects.create(
        product=Product.objects.get(sku=sku), account=account, unit_price=Decimal(price), effective_from=since
    )


def card_rows(response) -> dict[str, tuple[str, str]]:
    return {line.product.sku: (line.price, line.source) for line in response.context["lines"]}


@pytest.mark.parametrize(
    ("name", "status"),
    [("owner", 200), ("admin", 200), ("billing", 200), ("reporting", 403), ("other_tenant", 404), ("anonymous", 302)],
)
def test_the_rate_card_is_for_owners_admins_and_billing(world, persona, name, status):
    assert persona(name).get(rates_url(world.manager)).status_code == status


def test_the_rate_card_shows_list_and_negotiated_prices_with_six_decimals(world, persona):
    set_rate(world.manager, "sms.outbound", "0.0035")
    set_rate(world.manager, "voice.outbound", "0.0042", since=datetime.now(UTC) + timedelta(days=3))  # not yet

    rows = card_rows(persona("owner").get(rates_url(world.manager)))

    assert rows["sms.outbound"] == ("USD 0.003500", "Negotiated")
    assert rows["voice.outbound"] == ("USD 0.010000", "List price")
    assert len(rows) == Product.objects.filter(active=True).count()


def test_a_managed_account_sees_the_rates_it_inherits_and_its_custom_rates(world, persona):
    set_rate(world.manager, "sms.outbound", "0.0035")
    Account.objects.filter(pk=world.managed.pk).update(allow_custom_pricing=True)
    set_rate(world.managed, "voice.outbound", "0.008123")

    response = persona("managed_owner").get(rates_url(world.managed))

    rows = card_rows(response)
    assert rows["sms.outbound"] == ("USD 0.003500", "Negotiated")
    assert rows["voice.outbound"] == ("USD 0.008123", "Custom")
    assert "<h2>Custom rates</h2>" in page_text(response)


def test_a_manager_sees_what_its_managed_accounts_inherit_and_their_custom_rates(world, persona):
    Account.objects.filter(pk=world.managed.pk).update(allow_custom_pricing=True)
    set_rate(world.managed, "voice.outbound", "0.008123")
    set_rate(world.sibling, "voice.outbound", "0.001")  # custom pricing not allowed: not in force

    response = persona("owner").get(rates_url(world.manager))

    text = page_text(response)
    assert "Rates your managed accounts inherit" in text
    lines = [
        (line.account.name, line.product.sku, line.price, line.inherited)
        for line in response.context["managed_custom_lines"]
    ]
    assert lines == [("Alpine Voice", "voice.outbound", "USD 0.008123", "USD 0.010000")]


def test_the_rate_card_does_not_exist_for_hidden_pricing_accounts(world, persona):
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)
    assert persona("managed_owner").get(rates_url(world.managed)).status_code == 404
    assert persona("manager_acting").get(rates_url(world.managed)).status_code == 404
    assert persona("owner").get(rates_url(world.manager)).status_code == 200
