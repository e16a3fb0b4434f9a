"""The invoice pages: an account's invoice list and one invoice (header, statement, lines in a
section per account, the check that the sections add up to the total), hidden pricing on them,
who may see them, and a constant number of queries whatever the number of roll-up sections.

Invoices are made the way the monthly close makes them: usage ingested with past timestamps, then
billing.invoicing.invoice_party. March 2025 at list prices (USD: voice.outbound 0.01/minute,
sms.outbound 0.004/message):

    world.manager (Acme Reseller)   own sms 7 = 0.028                      -> section 0.03
    world.managed (Alpine Voice)    roll-up, voice 250 = 2.50              -> section 2.50
    world.sibling (Blue Harbor)     roll-up, voice 33.3 = 0.333 -> 0.33,
                                    sms 1001 = 4.004 -> 4.00, exact 4.337   -> section 4.34 (rounding 0.01)
                                                                              total 6.87
    The stored rounding line is not shown: its cent goes to Blue Harbor's largest line, shown 4.01.
    statement: adjustment 10.00 in February (opening), top-up 100.00 in March (credits),
               charges 6.87, closing 103.13
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, Membership, Role, User
from billing.invoices.builder import invoice_party
from billing.ledger import services as ledger
from billing.models import Invoice, LedgerEntry, Product, Rate
from billing.money import to_cents
from billing.usage.services import ingest_usage
from tests.conftest import log_in_as

MARCH = date(2025, 3, 1)
FEBRUARY = date(2025, 2, 1)


def _owner(account: Account) -> User:
    return Membership.objects.filter(account=account, role=Role.OWNER).first().user


def usage(submitter: Account, *rows: tuple[Account, str, str], month: date = MARCH) -> None:
    """Ingests (account, product, quantity) rows, one a day from the 1st of `month`, as `submitter`."""
    records = [
        {
            "account": str(account.public_id),
            "product": product,
            "quantity": quantity,
            "started_at": f"{month:%Y-%m}-{n % 28 + 1:02d}T10:00:00Z",
            "idempotency_key": f"invoice-test-{account.pk}-{product}-{n}",
        }
        for n, (account, product, quantity) in enumerate(rows)
    ]
    owner = Membership.objects.filter(account=submitter, role=Role.OWNER).first()
    ingest_usage(submitter=submitter, rows=records, source="api", actor=Actor(user=owner.user if owner else None))


def at(moment: datetime):
    """Entries posted inside this block are dated `moment` (the statement dates them by created_at)."""
    return mock.patch("django.utils.timezone.now", return_value=moment)


def list_url(account: Account) -> str:
    return reverse("invoice_list", args=[account.public_id])


def detail_url(account: Account, invoice: Invoice) -> str:
    return reverse("invoice_detail", args=[account.public_id, invoice.public_id])


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def manager_invoice(world) -> Invoice:
    """world.manager's March invoice of the module docstring."""
    with at(datetime(2025, 2, 10, 12, tzinfo=UTC)):
        ledger.adjust_balance(
            account=world.manager, amount=Decimal("10.00"), reason="Goodwill", key="feb", actor=Actor.platform_staff()
        )
    with at(datetime(2025, 3, 5, 12, tzinfo=UTC)):
        ledger.post_entry(
            account=world.manager, kind=LedgerEntry.Kind.TOP_UP, amount=Decimal("100.00"), key="mar",
            description="Top-up",
        )  # fmt: skip
    usage(
        world.manager,
        (world.manager, "sms.outbound", "7"),
        (world.managed, "voice.outbound", "250"),
        (world.sibling, "voice.outbound", "33.3"),
        (world.sibling, "sms.outbound", "1001"),
    )
    return invoice_party(account=world.manager, month=MARCH)


# --- The list ------------------------------------------------------------------------------------------


def test_the_list_shows_number_period_status_and_total_newest_first(world, persona, manager_invoice):
    february = invoice_party(account=world.manager, month=FEBRUARY)

    response = persona("billing").get(list_url(world.manager))

    assert response.status_code == 200
    page = text(response)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", page.split("<tbody")[1])
    assert len(rows) == 2
    march_row, february_row = rows
    assert f'href="{detail_url(world.manager, manager_invoice)}">{manager_invoice.number}</a>' in march_row
    assert "March 2025" in march_row and 'invoice-due">Due</span>' in march_row and "USD 6.87" in march_row
    assert february.number in february_row and "February 2025" in february_row and "USD 0.00" in february_row


def test_the_list_is_paged_25_at_a_time(world, persona):
    for n in range(27):
        invoice_party(account=world.standard, month=date(2022 + n // 12, n % 12 + 1, 1))
    client = persona("standard_owner")

    first = text(client.get(list_url(world.standard)))
    second = text(client.get(list_url(world.standard), {"page": 2}))

    assert first.count("March 2024") == 1 and "February 2022" not in first  # newest first
    assert second.count("<tr") == 3  # the head and the two oldest
    assert "February 2022" in second and "January 2022" in second


def test_a_roll_up_accounts_list_says_it_is_billed_by_its_manager_and_lists_the_managers_invoices_to_it(
    world, persona, manager_invoice
):
    resale = Invoice.objects.get(issuer=world.manager, bill_to=world.managed, period=MARCH)
    for who in ("managed_owner", "manager_acting"):
        response = persona(who).get(list_url(world.managed))

        assert response.status_code == 200
        page = text(response)
        assert "Alpine Voice is billed by Acme Reseller" in page
        assert "on Acme Reseller's monthly invoice" in page
        assert resale.number in page and "USD 2.50" in page  # 250 minutes at 0.01, no markup set
        assert manager_invoice.number not in page and "6.87" not in page


def test_a_hidden_pricing_roll_up_account_sees_its_reseller_invoice_with_quantities_only(
    world, persona, manager_invoice
):
    """It owes its manager the total, so it sees it (issue 12, item 4), like a separately billed
    hidden-pricing account sees its platform invoice: quantities, no per-line amount."""
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)
    resale = Invoice.objects.get(issuer=world.manager, bill_to=world.managed, period=MARCH)
    for who in ("managed_owner", "manager_acting"):
        client = persona(who)
        listed = text(client.get(list_url(world.managed)))
        page = text(client.get(detail_url(world.managed, resale)))

        assert "Acme Reseller's invoices to Alpine Voice are listed below" in listed, who
        assert resale.number in listed and "USD 2.50" in listed, who
        assert manager_invoice.number not in listed and "6.87" not in listed, who
        assert [s["lines"] for s in _sections(page)] == [[("Outbound voice (minute)", "250", "")]], who
        assert "Quantities only" in page and "Amount</th>" not in page and "Subtotal" not in page, who
        assert '<div class="invoice-total"><span>Total</span><span>USD 2.50</span>' in page, who


def test_a_roll_up_account_cannot_open_its_managers_invoice(world, persona, manager_invoice):
    for who in ("managed_owner", "manager_acting"):
        response = persona(who).get(detail_url(world.managed, manager_invoice))
        assert response.status_code == 404
        assert b"6.87" not in response.content


def test_the_invoices_link_is_in_the_nav_for_owner_admin_and_billing_only(world, persona):
    dashboard = reverse("dashboard", args=[world.manager.public_id])
    link = f'href="{list_url(world.manager)}">Invoices</a>'
    for role in ("owner", "admin", "billing"):
        assert link in text(persona(role).get(dashboard)), role
    assert link not in text(persona("reporting").get(dashboard))


# --- One invoice -------------------------------------------------------------------------------------


def test_the_invoice_shows_its_header_and_statement(world, persona, manager_invoice):
    response = persona("billing").get(detail_url(world.manager, manager_invoice))

    assert response.status_code == 200
    page = text(response)
    assert f"<h1>Invoice {manager_invoice.number}</h1>" in page
    assert f"<dt>Invoice number</dt><dd>{manager_invoice.number}</dd>" in page
    assert "<dt>Period</dt><dd>1 March 2025 – 31 March 2025 (UTC)</dd>" in page
    assert "<h2>Bill to</h2> <address><strong>Acme Reseller</strong>" in page
    assert 'invoice-due">Due</span>' in page  # finalized, its due date not passed (Invoice.payment_status)
    statement = dict(re.findall(r'<th scope="row">(.*?)</th><td class="num">(.*?)</td>', page))
    assert statement == {
        "Opening balance": "USD 10.00",
        "Credits (top-ups, transfers, adjustments)": "USD 100.00",
        "Usage charges": "USD 6.87",
        "Closing balance": "USD 103.13",
    }
    assert (manager_invoice.opening_balance, manager_invoice.credits) == (Decimal("10.00"), Decimal("100.00"))
    # Print-to-PDF gives a clean document: the page's stylesheet (a static file, for the CSP) has print rules.
    assert 'href="/static/css/invoice.css"' in page
    assert "@media print" in (Path(settings.BASE_DIR) / "static" / "css" / "invoice.css").read_text()
    assert "Save as PDF" in page


def _sections(page: str) -> list[dict]:
    """Each section of the page: title, note, lines (description, quantity, amount) and subtotal."""
    found = []
    for block in re.findall(r'<section class="invoice-section">(.*?)</section>', page):
        heading = re.search(r"<h3>(.*?)(?:<small>(.*?)</small>)?</h3>", block)
        lines = re.findall(r'<tr><td>(.*?)</td><td class="num">(.*?)</td>(?:<td class="num">(.*?)</td>)?</tr>', block)
        subtotal = re.search(r'<tr class="subtotal"><td colspan="2">.*?</td><td class="num">(.*?)</td>', block)
        found.append(
            {
                "title": heading.group(1),
                "note": heading.group(2),
                "lines": lines,
                "subtotal": subtotal.group(1) if subtotal else None,
            }
        )
    return found


def _usd(value: str) -> Decimal:
    assert value.startswith("USD "), value
    return Decimal(value[4:].replace(",", ""))


def test_a_managers_invoice_has_its_own_section_then_one_per_roll_up_account(world, persona, manager_invoice):
    page = text(persona("billing").get(detail_url(world.manager, manager_invoice)))

    sections = _sections(page)
    assert [(s["title"], s["note"], s["subtotal"]) for s in sections] == [
        ("Acme Reseller", "Own usage", "USD 0.03"),
        ("Alpine Voice", "Roll-up managed account", "USD 2.50"),
        ("Blue Harbor", "Roll-up managed account", "USD 4.34"),
    ]
    assert sections[0]["lines"] == [("Outbound SMS (message)", "7", "USD 0.03")]
    assert sections[1]["lines"] == [("Outbound voice (minute)", "250", "USD 2.50")]
    assert sections[2]["lines"] == [
        ("Outbound SMS (message)", "1,001", "USD 4.01"),
        ("Outbound voice (minute)", "33.3", "USD 0.33"),
    ]  # its stored rounding line (USD 0.01) is in its largest line, never a line of its own
    assert "Rounding" not in page


def test_the_sections_add_up_to_the_total_and_the_page_says_so(world, persona, manager_invoice):
    page = text(persona("billing").get(detail_url(world.manager, manager_invoice)))

    sections = _sections(page)
    for section in sections:
        assert sum(_usd(amount) for _, _, amount in section["lines"]) == _usd(section["subtotal"])
    total = _usd(re.search(r'<div class="invoice-total"><span>Total</span><span>(.*?)</span>', page).group(1))
    assert sum(_usd(s["subtotal"]) for s in sections) == total == manager_invoice.total == Decimal("6.87")
    assert "Rounding" not in page
    assert "Check" not in page  # platform staff only: tests/test_invoice_shows_customers_no_internal_check.py
    # ...and the invoice total is what the ledger charged for the month.
    charged = LedgerEntry.objects.filter(account=world.manager, kind=LedgerEntry.Kind.USAGE_CHARGE, period=MARCH)
    assert -sum(e.amount for e in charged) == total


def test_a_check_that_fails_is_shown_as_failed(world, persona, manager_invoice):
    # A finalized invoice never changes; this edit only simulates a broken one to see the check fire.
    Invoice.objects.filter(pk=manager_invoice.pk).update(total=Decimal("6.88"))
    User.objects.filter(pk=world.users["billing"].pk).update(is_staff=True)  # the check is for platform staff

    page = text(persona("billing").get(detail_url(world.manager, manager_invoice)))

    assert "Check failed (platform staff only): the 3 sections, rounding included, add up to USD 6.87, not" in page
    assert "✓" not in page


def test_a_standard_accounts_invoice_has_one_section_and_no_usage_says_so(world, persona):
    empty = invoice_party(account=world.standard, month=FEBRUARY)
    usage(world.standard, (world.standard, "voice.outbound", "12"))
    march = invoice_party(account=world.standard, month=MARCH)
    client = persona("standard_owner")

    sections = _sections(text(client.get(detail_url(world.standard, march))))
    assert [(s["title"], s["note"], s["subtotal"]) for s in sections] == [("Solo Standard", None, "USD 0.12")]
    page = text(client.get(detail_url(world.standard, empty)))
    assert "No usage in February 2025." in page
    assert "<dt>Period</dt><dd>1 February 2025 – 28 February 2025 (UTC)</dd>" in page


def test_another_accounts_invoice_is_not_found(world, persona, manager_invoice):
    foreign = invoice_party(account=world.other_manager, month=MARCH)
    client = persona("billing")

    assert client.get(detail_url(world.manager, foreign)).status_code == 404
    assert client.get(reverse("invoice_detail", args=[world.manager.public_id, uuid.uuid4()])).status_code == 404
    # the manager's own invoice through another account's URL
    assert persona("other_tenant").get(detail_url(world.other_manager, manager_invoice)).status_code == 404


@pytest.mark.parametrize(
    ("who", "status"),
    [("owner", 200), ("admin", 200), ("billing", 200), ("reporting", 403), ("managed_owner", 404),
     ("standard_owner", 404), ("other_tenant", 404), ("manager_acting", 404)],
)  # fmt: skip
def test_who_may_see_a_managers_invoices(world, persona, manager_invoice, who, status):
    client = persona(who)
    for url in (list_url(world.manager), detail_url(world.manager, manager_invoice)):
        response = client.get(url)
        assert response.status_code == status, (url, who)
        if status != 200:
            assert b"6.87" not in response.content


def test_anonymous_is_sent_to_sign_in(world, manager_invoice):
    response = Client().get(detail_url(world.manager, manager_invoice))
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


# --- Hidden pricing ------------------------------------------------------------------------------------

VOICE_RATE = Decimal("0.013370")
SMS_RATE = Decimal("0.004125")
VOICE_MINUTES, SMS_COUNT = Decimal("923.1"), Decimal("2987")


@pytest.fixture
def canyon(world) -> Account:
    """A separately billed managed account on the manager's negotiated rates, with an invoice for
    March: voice 923.1 x 0.013370 = 12.341847 -> 12.34, sms 2987 x 0.004125 = 12.321375 -> 12.32,
    total 24.663222 -> 24.66."""
    for sku, price in (("voice.outbound", VOICE_RATE), ("sms.outbound", SMS_RATE)):
        Rate.objects.create(
            product=Product.objects.get(sku=sku),
            account=world.manager,
            unit_price=price,
            effective_from=datetime(2024, 1, 1, tzinfo=UTC),
        )
    canyon = services.create_managed_account(
        manager=world.manager, name="Canyon Lines", owner_email="canyon@example.com", owner_password=None,
        billing_mode=Account.BillingMode.SEPARATE, allow_custom_pricing=False, pricing_hidden=True,
        actor=Actor(user=world.users["owner"]),
    )  # fmt: skip
    usage(canyon, (canyon, "voice.outbound", str(VOICE_MINUTES)), (canyon, "sms.outbound", str(SMS_COUNT)))
    canyon.invoice = invoice_party(account=canyon, month=MARCH)
    return canyon


def _secrets() -> set[str]:
    """The rates and the per-line amounts, as a page would print them."""
    voice, sms = VOICE_MINUTES * VOICE_RATE, SMS_COUNT * SMS_RATE
    found = {"0.013370", "0.01337", "0.004125"}
    for amount in (voice, sms):
        found |= {f"{to_cents(amount):,.2f}", str(amount.normalize())}
    found.add(str((voice + sms).normalize()))  # the exact, unrounded total
    return found


def _canyon_clients(world, canyon) -> dict[str, Client]:
    owner = Client()
    owner.force_login(_owner(canyon))
    acting = Client()
    acting.force_login(world.users["owner"])
    assert log_in_as(acting, world.manager, canyon).status_code == 302
    return {"canyon_owner": owner, "manager_acting": acting}


def test_hidden_pricing_shows_totals_and_quantities_but_no_line_amounts(world, canyon):
    assert canyon.invoice.total == Decimal("24.66")
    for who, client in _canyon_clients(world, canyon).items():
        page = text(client.get(detail_url(canyon, canyon.invoice)))

        assert '<div class="invoice-total"><span>Total</span><span>USD 24.66</span>' in page, who
        assert '<th scope="row">Usage charges</th><td class="num">USD 24.66</td>' in page, who
        sections = _sections(page)
        assert [(s["title"], s["subtotal"]) for s in sections] == [("Canyon Lines", None)], who
        assert sections[0]["lines"] == [
            ("Outbound SMS (message)", "2,987", ""),
            ("Outbound voice (minute)", "923.1", ""),
        ], who
        assert "Amount</th>" not in page and "Subtotal" not in page and "section subtotal" not in page, who
        assert not {s for s in _secrets() if s in page}, who
        listed = text(client.get(list_url(canyon)))
        assert "USD 24.66" in listed and not {s for s in _secrets() if s in listed}, who


def test_hidden_pricing_drops_the_rounding_line(world, persona):
    sibling = world.sibling
    Account.objects.filter(pk=sibling.pk).update(billing_mode=Account.BillingMode.SEPARATE, pricing_hidden=True)
    sibling.refresh_from_db()
    usage(sibling, (sibling, "voice.outbound", "33.3"), (sibling, "sms.outbound", "1001"))
    invoice = invoice_party(account=sibling, month=MARCH)
    client = Client()
    client.force_login(_owner(sibling))

    page = text(client.get(detail_url(sibling, invoice)))

    assert [s["lines"] for s in _sections(page)] == [[("Outbound SMS (message)", "1,001", ""),
                                                       ("Outbound voice (minute)", "33.3", "")]]  # fmt: skip
    assert "Rounding" not in page and "USD 4.34" in page
    assert not [amount for amount in ("4.00", "0.33", "0.01", "4.004", "0.333") if amount in page]


def test_the_same_invoice_shows_line_amounts_when_pricing_is_visible(world, canyon):
    """The control: the hidden-pricing test above can fail."""
    Account.objects.filter(pk=canyon.pk).update(pricing_hidden=False)
    client = _canyon_clients(world, canyon)["canyon_owner"]

    page = text(client.get(detail_url(canyon, canyon.invoice)))

    assert {"12.34", "12.32"} <= {s for s in _secrets() if s in page}
    assert [s["subtotal"] for s in _sections(page)] == ["USD 24.66"]


def test_the_manager_sees_the_amounts_of_its_hidden_pricing_roll_up_accounts(world, persona, manager_invoice):
    Account.objects.filter(pk=world.managed.pk).update(pricing_hidden=True)

    sections = _sections(text(persona("billing").get(detail_url(world.manager, manager_invoice))))

    assert sections[1]["title"] == "Alpine Voice" and sections[1]["subtotal"] == "USD 2.50"


# --- Queries ------------------------------------------------------------------------------------------


def _manager_with_roll_ups(count: int) -> tuple[Account, Client]:
    """A manager with `count` roll-up managed accounts, each with two products of March usage (and
    usage of its own), its March invoice made, and a billing member's client."""
    manager = Account.objects.create(
        name=f"Scale {count}", email=f"scale{count}@example.com", kind=Account.Kind.MANAGER, managed_account_limit=3000
    )
    managed = Account.objects.bulk_create(
        Account(
            name=f"Roll-up {count}-{n:04d}",
            email=f"rollup{count}-{n}@example.com",
            kind=Account.Kind.MANAGED,
            manager=manager,
            billing_mode=Account.BillingMode.ROLLUP,
        )
        for n in range(count)
    )
    rows = [(manager, "sms.outbound", "3")]
    for n, account in enumerate(managed):
        rows += [(account, "voice.outbound", f"{n + 1}.5"), (account, "sms.outbound", str(n + 11))]
    usage(manager, *rows)
    invoice = invoice_party(account=manager, month=MARCH)
    user = User.objects.create(email=f"billing{count}@example.com")
    Membership.objects.create(user=user, account=manager, role=Role.BILLING)
    client = Client()
    client.force_login(user)
    manager.invoice = invoice
    return manager, client


def _queries(client: Client, url: str) -> tuple[int, str]:
    client.get(url)  # warm up: the session and the templates
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), text(response)


def test_the_invoice_page_runs_the_same_queries_for_3_and_300_roll_up_accounts(db):
    small, small_client = _manager_with_roll_ups(3)
    large, large_client = _manager_with_roll_ups(300)

    small_count, small_page = _queries(small_client, detail_url(small, small.invoice))
    started = time.perf_counter()
    large_count, large_page = _queries(large_client, detail_url(large, large.invoice))
    seconds = time.perf_counter() - started

    assert small_count == large_count, (small_count, large_count)
    # 50 sections a page; the check still covers all 301 sections.
    assert len(_sections(small_page)) == 4 and len(_sections(large_page)) == 50
    assert "Check" not in large_page  # platform staff only
    assert "Sections 1–50 of 301" in large_page and "Page 1 of 7" in large_page
    assert seconds < 10, seconds
    pages = [_queries(large_client, detail_url(large, large.invoice) + f"?page={n}") for n in range(1, 8)]
    assert {count for count, _ in pages} == {large_count}
    shown = [section for _, page in pages for section in _sections(page)]
    assert len(shown) == 301 and len({s["title"] for s in shown}) == 301  # each section on exactly one page
    assert large.invoice.lines.filter(product__isnull=True).count() > 50  # stored rounding lines, none shown
    for section in shown:
        assert sum(_usd(amount) for _, _, amount in section["lines"]) == _usd(section["subtotal"])
    assert sum(_usd(s["subtotal"]) for s in shown) == large.invoice.total
    assert not [page for _, page in pages if "Rounding" in page]
    assert "Sections 301–301 of 301" in pages[-1][1]
    # A page past the end, or not a number, shows the last or the first page rather than an error.
    assert "Page 7 of 7" in _queries(large_client, detail_url(large, large.invoice) + "?page=99")[1]
    assert "Page 1 of 7" in _queries(large_client, detail_url(large, large.invoice) + "?page=x%27")[1]
    # The list page too.
    assert _queries(small_client, list_url(small))[0] == _queries(large_client, list_url(large))[0]
