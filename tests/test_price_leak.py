"""No rate, cost or priced amount reaches a hidden-pricing account, on any page, export or e-mail.

The managed account uses its manager's negotiated rates, chosen so that every rate and every
amount they produce is a string that appears nowhere else. Every GET URL of the portal (found by
walking the URL resolver, as the authorization matrix does), every report grouping and both CSV
exports are requested as the managed account's owner and as the manager logged in as it; none may
contain them. The same requests with pricing visible must show them, so the test can fail.

The one amount a hidden-pricing account is shown is what it owes: the total of the invoice billed to
it (here, world.managed is billed roll-up, so its manager's reseller invoice to it), on its invoice
pages and PDF only. Those pages are requested too, the PDF read back with pypdf; their per-line
amounts and rates are secrets like any other.
"""

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import BytesIO

import pytest
from django.core import mail
from django.db.models import Sum
from django.urls import reverse
from pypdf import PdfReader

from accounts.actor import Actor
from accounts.models import Invitation, Role
from accounts.services import create_api_key, invite_member
from billing.invoices.builder import invoice_party
from billing.invoices.credit_notes import creditable_lines, issue_credit_note
from billing.invoices.services import set_resale_markup
from billing.models import Invoice, Product, Rate, ResaleRate, UsageRecord
from billing.money import to_cents
from billing.usage.services import ingest_usage
from tests.test_authorization_matrix import portal_url_patterns

VOICE_RATE = Decimal("0.013370")
SMS_RATE = Decimal("0.004125")
# quantity per day: voice minutes and SMS counts chosen so the amounts are unlikely strings
VOICE_MINUTES = [Decimal("923.1"), Decimal("811.7"), Decimal("1207.3")]
SMS_COUNTS = [Decimal("2987"), Decimal("3411"), Decimal("1999")]


@pytest.fixture
def priced_usage(world):
    now = datetime.now(UTC).replace(microsecond=0)
    since = now - timedelta(days=40)
    for sku, price in (("voice.outbound", VOICE_RATE), ("sms.outbound", SMS_RATE)):
        Rate.objects.create(
            product=Product.objects.get(sku=sku), account=world.manager, unit_price=price, effective_from=since
        )
    days = [now - timedelta(days=d, hours=1) for d in (0, 1, 2)]
    rows = []
    for n, moment in enumerate(days):
        rows.append(_row(f"v{n}", "voice.outbound", VOICE_MINUTES[n], moment))
        rows.append(_row(f"s{n}", "sms.outbound", SMS_COUNTS[n], moment))
    ingest_usage(submitter=world.managed, rows=rows, source="api", actor=Actor(user=world.users["managed_owner"]))
    start, end = min(days).date(), now.date()
    return {"start": start.isoformat(), "end": end.isoformat()}


def _row(key, sku, quantity, moment):
    return {"product": sku, "quantity": str(quantity), "started_at": moment.isoformat(), "idempotency_key": key}


def _secrets() -> set[str]:
    """Every rate and every amount (per record, per product, per day, in total) as pages would print it."""
    voice = [q * VOICE_RATE for q in VOICE_MINUTES]
    sms = [q * SMS_RATE for q in SMS_COUNTS]
    amounts = [*voice, *sms, sum(voice), sum(sms), *(v + s for v, s in zip(voice, sms, strict=True))]
    amounts.append(sum(voice) + sum(sms))
    found = {"0.013370", "0.01337", "0.004125"}
    for amount in amounts:
        found |= {f"{to_cents(amount):,.2f}", f"{to_cents(amount):.2f}", str(amount.normalize())}
    return found


def _requests(world, dates) -> list[str]:
    urls = []
    kwargs_by_name = {
        "account_id": world.managed.public_id,
        "managed_id": world.sibling.public_id,
        "membership_id": world.managed.memberships.get().pk,
    }
    invitation = invite_member(
        account=world.managed,
        email="colleague@example.com",
        role=Role.ADMIN,
        actor=Actor(user=world.users["managed_owner"]),
    )
    kwargs_by_name |= {"invitation_id": invitation.pk, "token": invitation.token}
    key, _ = create_api_key(account=world.managed, name="Leak check", actor=Actor(user=world.users["managed_owner"]))
    kwargs_by_name["key_id"] = key.pk
    # The manager's invoice, whose world.managed section is priced: never shown to world.managed.
    month = datetime.now(UTC).date().replace(day=1)
    kwargs_by_name["invoice_id"] = invoice_party(account=world.manager, month=month).public_id
    kwargs_by_name["action"] = "paid"
    # world.managed is billed roll-up: it has no cards or payments; unknown ids are a 404.
    kwargs_by_name |= {"card_id": uuid.uuid4(), "payment_id": uuid.uuid4()}
    # Spend limits: world.managed has none of its own; an unknown id is a 404 like the others.
    kwargs_by_name["limit_id"] = uuid.uuid4()
    # Webhooks: world.managed has no endpoint; unknown ids are a 404.
    kwargs_by_name |= {"endpoint_id": uuid.uuid4(), "delivery_id": uuid.uuid4()}
    # Bulk onboarding: world.managed is no manager (a 404 either way).
    kwargs_by_name["upload_id"] = uuid.uuid4()
    # Credit notes: the one of world.managed's reseller invoice is requested below through its own URL.
    kwargs_by_name["note_id"] = uuid.uuid4()
    for route, name in portal_url_patterns():
        params = {p: kwargs_by_name[p] for p in _route_params(route)}
        urls.append(reverse(name, kwargs=params))
    query = f"?start={dates['start']}&end={dates['end']}"
    for group_by in ("day", "month", "product"):
        urls.append(reverse("usage_report", args=[world.managed.public_id]) + f"{query}&group_by={group_by}")
        urls.append(reverse("usage_report_csv", args=[world.managed.public_id]) + f"{query}&group_by={group_by}")
    urls.append(reverse("usage_records", args=[world.managed.public_id]) + query)
    urls.append(reverse("usage_records_csv", args=[world.managed.public_id]) + query)
    # The invoice world.managed owes: its manager's reseller invoice to it, page and PDF.
    resale = Invoice.objects.get(issuer=world.manager, bill_to=world.managed, period=month)
    # A credit note by lines against it (1.00 of the voice line, no secret): its page block and PDF
    # show the amount and reason, never the line it credits.
    voice = next(row for row in creditable_lines(resale) if row.line.product.sku == "voice.outbound")
    note = issue_credit_note(
        invoice=resale, lines={voice.line.pk: "1.00"}, reason="Leak check", actor=Actor(user=world.users["owner"])
    )
    urls.append(reverse("credit_note_pdf", args=[world.managed.public_id, resale.public_id, note.public_id]))
    for name in ("invoice_detail", "invoice_pdf"):
        urls.append(reverse(name, args=[world.managed.public_id, resale.public_id]))
    return urls


def _owed(world) -> tuple[list[str], set[str]]:
    """(the URLs that name world.managed's invoices, the total it owes as they print it): allowed
    there only. Its invoice pages, and the activity that says the invoice was issued (the landing
    page's recent activity and the audit log: DESIGN 3, an invoice total is money it owes)."""
    resale = Invoice.objects.get(issuer=world.manager, bill_to=world.managed)
    pages = [reverse(name, args=[world.managed.public_id]) for name in ("invoice_list", "audit_log")]
    landing = reverse("dashboard", args=[world.managed.public_id]) + "$"  # this page only, not all below
    return [*pages, landing], {f"{resale.total:,.2f}", f"{resale.total:.2f}"}


def _names(url: str, prefix: str) -> bool:
    """`url` is under `prefix`, or is the one page of a prefix that ends in $."""
    return url.split("?")[0] == prefix[:-1] if prefix.endswith("$") else url.startswith(prefix)


def _route_params(route: str) -> list[str]:
    return re.findall(r"<(?:\w+:)?(\w+)>", route)


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    if response.get("Content-Type") == "application/pdf":
        return "\n".join(page.extract_text() for page in PdfReader(BytesIO(response.content)).pages)
    return response.content.decode()


def _shows(amount: str, body: str) -> bool:
    """`amount` printed as a number of its own: not the tail or head of a longer one (a chart's
    coordinate x="458.25" is not the amount 8.25)."""
    return re.search(rf"(?<![\d.,]){re.escape(amount)}(?![\d])", body) is not None


def _leaks(
    client, urls, owed: tuple[list[str], set[str]] = ([], set()), *, cost_columns: bool = False
) -> dict[str, list[str]]:
    """Secrets found per URL. `cost_columns`: an account that sees prices (its own resale prices)
    may have cost and rate columns in its CSVs; their values are still checked for secrets."""
    secrets = _secrets()
    invoice_urls, total = owed
    leaks = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code in (200, 302, 403, 404, 405), (url, response.status_code)
        body = _body(response)
        allowed = total if any(_names(url, prefix) for prefix in invoice_urls) else set()
        found = sorted(s for s in secrets - allowed if _shows(s, body))
        if "csv" in url and response.status_code == 200 and not cost_columns:
            header = body.splitlines()[0].lower()
            found += [word for word in ("cost", "rate", "price") if word in header]
        if found:
            leaks[url] = found
    return leaks


@pytest.mark.parametrize("who", ["managed_owner", "manager_acting"])
def test_it_hides_every_rate_and_cost_from_hidden_pricing_accounts(world, persona, priced_usage, who):
    world.managed.pricing_hidden = True
    world.managed.save()
    client = persona(who)
    urls = _requests(world, priced_usage)
    invoice_urls, total = _owed(world)

    assert _leaks(client, urls, (invoice_urls, total)) == {}
    for message in mail.outbox:
        assert not {s for s in _secrets() if s in message.body}
    # The invoice it owes is shown to it: its total, and quantities without amounts (no secret above).
    listed, pdf = _body(client.get(invoice_urls[0])), _body(client.get(urls[-1]))
    assert urls[-1].endswith("/pdf/") and "Quantities only" in pdf
    assert any(t in listed for t in total) and any(t in pdf for t in total)


def test_the_same_requests_show_prices_when_pricing_is_visible(world, persona, priced_usage):
    client = persona("managed_owner")

    leaks = _leaks(client, _requests(world, priced_usage))

    report = reverse("usage_report", args=[world.managed.public_id])
    csv_export = reverse("usage_report_csv", args=[world.managed.public_id])
    assert any(url.startswith(report) for url in leaks), "the report shows no cost when pricing is visible"
    assert any(url.startswith(csv_export) for url in leaks), "the CSV has no cost when pricing is visible"
    assert any(url.startswith(reverse("rate_card", args=[world.managed.public_id])) for url in leaks)
    total = to_cents(sum(q * VOICE_RATE for q in VOICE_MINUTES) + sum(q * SMS_RATE for q in SMS_COUNTS))
    assert any(f"{total:,.2f}" in found for found in leaks.values())


def test_a_rollup_account_sees_its_resale_prices_never_its_managers_cost(world, persona, priced_usage):
    """Pricing visible, a 10 % markup and a resale rate for SMS this month (issue 12 item 9): the
    roll-up account (and its manager acting as it) sees the prices it pays on every page, export
    and invoice; no rate or amount at its manager's cost (billing.pricing.prices_for)."""
    set_resale_markup(manager=world.manager, markup_percent=Decimal("10"), actor=Actor(user=world.users["owner"]))
    this_month = datetime.now(UTC).date().replace(day=1)
    sms = Product.objects.get(sku="sms.outbound")
    ResaleRate.objects.create(
        manager=world.manager, product=sms, unit_price=Decimal("0.005311"), effective_from=this_month
    )
    urls = _requests(world, priced_usage)
    for who in ("managed_owner", "manager_acting"):
        assert _leaks(persona(who), urls, cost_columns=True) == {}, who
    query = f"?start={priced_usage['start']}&end={priced_usage['end']}&group_by=product"
    report = persona("managed_owner").get(reverse("usage_report", args=[world.managed.public_id]) + query)
    shown = report.content.decode()
    assert "0.005311" not in shown  # a report shows amounts; the rate card shows the rate
    assert f"{to_cents(sum(SMS_COUNTS) * Decimal('0.005311')):,.2f}" in shown  # SMS at its resale rate
    card = persona("managed_owner").get(reverse("rate_card", args=[world.managed.public_id])).content.decode()
    assert "0.005311" in card and "0.014707" in card  # SMS's resale rate; voice at 0.013370 x 1.10


def test_invitations_to_hidden_pricing_accounts_carry_no_prices(
    world, priced_usage, django_capture_on_commit_callbacks
):
    world.managed.pricing_hidden = True
    world.managed.save()
    with django_capture_on_commit_callbacks(execute=True):
        invite_member(
            account=world.managed,
            email="x@example.com",
            role=Role.BILLING,
            actor=Actor(user=world.users["managed_owner"]),
        )
    assert Invitation.objects.filter(email="x@example.com").exists()
    assert mail.outbox and not any(s in mail.outbox[-1].body for s in _secrets())


def test_the_invoice_email_of_a_hidden_pricing_account_names_only_its_total(
    world, priced_usage, django_capture_on_commit_callbacks
):
    """Issue 12 item 7: the close e-mails world.managed its reseller invoice, with its PDF; neither
    the body nor the attachment carries a rate or a per-line amount, only the total it owes."""
    world.managed.pricing_hidden = True
    world.managed.save()
    month = datetime.now(UTC).date().replace(day=1)

    with django_capture_on_commit_callbacks(execute=True):
        invoice_party(account=world.manager, month=month)

    resale = Invoice.objects.get(issuer=world.manager, bill_to=world.managed, period=month)
    total = {f"{resale.total:,.2f}", f"{resale.total:.2f}"}
    [message] = [
        m for m in mail.outbox if m.to == [world.users["managed_owner"].email] and m.subject.startswith("Invoice")
    ]
    [(_, attachment, _)] = message.attachments
    pdf = "\n".join(page.extract_text() for page in PdfReader(BytesIO(attachment)).pages)
    for body in (message.subject, message.body, pdf):
        assert not {s for s in _secrets() - total if s in body}, body
    assert any(t in message.body for t in total) and "Quantities only" in pdf


@pytest.mark.parametrize("who", ["managed_owner", "manager_acting"])
def test_a_rollup_accounts_overview_prices_its_month_at_its_resale_rates_not_its_managers_cost(
    world, persona, priced_usage, who
):
    """At 0 % markup with a resale rate for SMS this month, the overview's "Usage this month" and its
    chart price SMS at the resale rate (billing.pricing.prices_for, as the reports do), never at the
    manager's own cost."""
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    sms = Product.objects.get(sku="sms.outbound")
    ResaleRate.objects.create(
        manager=world.manager, product=sms, unit_price=Decimal("0.005311"), effective_from=this_month.date()
    )
    used = UsageRecord.objects.filter(account=world.managed, product=sms, started_at__gte=this_month)
    messages = used.aggregate(total=Sum("quantity"))["total"]

    page = persona(who).get(reverse("dashboard", args=[world.managed.public_id])).content.decode()

    assert f"{to_cents(messages * Decimal('0.005311')):,.2f}" in page  # what it pays for SMS
    assert f"{to_cents(messages * SMS_RATE):,.2f}" not in page  # what its manager pays
