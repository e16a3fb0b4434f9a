"""Issue 13's "Done when", in a real browser: a manager subscribes a webhook endpoint (a real HTTP
receiver on loopback) to its managed accounts' events and sets a spend limit on one; usage through
the real ingestion service crosses it, the account is blocked, the manager gets the e-mail and the
signed webhook; it raises the limit and the block lifts (e-mail and webhook again). Also: the
notification settings page and the low-balance banner with its way to pay."""

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect
from standardwebhooks import Webhook

from accounts.actor import Actor
from accounts.models import Account, AuditEvent
from billing.ledger import services as ledger
from billing.usage.services import ingest_usage
from tests import webhook_receiver
from tests.browser.test_log_in_as_flow import sign_in
from tests.factories import PASSWORD, account_with_owner

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver():
    server = webhook_receiver.start()
    yield server
    server.stop()


def wait_for(predicate, seconds: float = 15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def events_of(receiver, event_type: str) -> list[dict]:
    bodies = [(r, json.loads(r.body)) for r in list(receiver.requests) if r.answered == 204]
    return [(r, b) for r, b in bodies if b["data"]["event_type"] == event_type]


def test_a_manager_limits_an_account_gets_the_email_and_webhook_of_the_block_and_lifts_it(
    page: Page, live_server, catalogue, receiver
):
    manager, owner = account_with_owner(name="Acme Reseller", manager_kind=True)
    ledger.set_credit_limit(account=manager, limit=Decimal("1000.00"), actor=Actor.platform_staff())
    managed, _ = account_with_owner(name="Alpine Voice", managed_kind=True, manager=manager)
    sign_in(page, owner.email, PASSWORD)

    # The webhook endpoint, for the events of all its managed accounts.
    page.goto(reverse("webhooks_create", args=[manager.public_id]))
    page.get_by_label("URL").fill(receiver.url)
    for event_type in ("service.blocked", "service.unblocked", "spend_limit.reached"):
        page.get_by_label(event_type, exact=False).first.check()
    page.get_by_label("Also the events of all my managed accounts").check()
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.locator("#webhook-secret").inner_text().strip()
    assert secret.startswith("whsec_")

    # Settings -> Notifications: the owner's defaults include its managed accounts' blocks.
    page.goto(reverse("dashboard", args=[manager.public_id]))
    page.get_by_role("link", name="Notifications").click()
    expect(page.locator("h1")).to_have_text("Notifications")
    expect(page.get_by_label("Managed accounts: Service blocked")).to_be_checked()

    # The limit, set in the browser.
    page.goto(reverse("controls_managed_limit", args=[manager.public_id, managed.public_id]))
    form = page.locator("#limit-form")
    form.get_by_label("Monthly limit (USD)").fill("5.00")
    form.get_by_label("Alert and block").check()
    form.get_by_role("button", name="Save limit").click()
    expect(page.locator("main")).to_contain_text("Saved: The manager's limit of USD 5.00 a month")

    at = (timezone.now() - timedelta(minutes=1)).isoformat()
    rows = [
        {"account": str(managed.public_id), "product": "sms.outbound", "quantity": "1000", "started_at": at,
         "idempotency_key": f"alerts-{i}"}
        for i in range(2)
    ]  # fmt: skip
    ingest_usage(submitter=manager, rows=rows, source="api", actor=Actor(user=owner))  # USD 8.00, checked on commit

    page.goto(reverse("controls_managed_limit", args=[manager.public_id, managed.public_id]))
    expect(page.locator("#service-status")).to_contain_text("Blocked: Spend limit reached")

    # The e-mail: to the manager's owner, about the managed account, with the way to its limit.
    blocked_mail = wait_for(
        lambda: [m for m in mail.outbox if m.to == [owner.email] and "service blocked" in m.subject]
    )
    (message,) = blocked_mail
    assert message.subject.endswith("Alpine Voice: service blocked")
    assert "New service for Alpine Voice is blocked: Spend limit reached." in message.body
    limit_page = reverse("controls_managed_limit", args=[manager.public_id, managed.public_id])
    assert limit_page in message.body

    # The webhook: signed (Standard Webhooks), the Telnyx envelope, about the managed account.
    ((request, body),) = wait_for(lambda: events_of(receiver, "service.blocked"))
    Webhook(secret).verify(request.body, request.headers)
    assert body["data"]["payload"]["account_id"] == str(managed.public_id)
    assert body["data"]["payload"]["manager_account_id"] == str(manager.public_id)
    assert wait_for(lambda: events_of(receiver, "spend_limit.reached"))

    # Open the link the e-mail carries, raise the limit: the block lifts.
    page.goto(limit_page)
    form = page.locator("#limit-form")
    form.get_by_label("Monthly limit (USD)").fill("50")
    form.get_by_role("button", name="Save limit").click()
    expect(page.locator("#service-status")).to_contain_text("In service")
    assert Account.objects.select_related("manager").get(pk=managed.pk).in_service
    assert AuditEvent.objects.get(account=managed, change_type="service.unblocked").user == owner
    assert wait_for(lambda: [m for m in mail.outbox if m.to == [owner.email] and "service restored" in m.subject])
    ((request, body),) = wait_for(lambda: events_of(receiver, "service.unblocked"))
    Webhook(secret).verify(request.body, request.headers)
    assert receiver.ids().most_common(1)[0][1] == 1  # none delivered twice


def test_the_owner_sets_a_low_balance_alert_and_the_banner_offers_a_payment(page: Page, live_server, catalogue):
    account, owner = account_with_owner(name="Solo Standard")
    ledger.post_entry(account=account, kind="top_up", amount=Decimal("30.00"), key="t-1", description="Top-up")
    sign_in(page, owner.email, PASSWORD)
    page.goto(reverse("notification_settings", args=[account.public_id]))
    form = page.locator("#threshold-form")
    form.get_by_label("Alert when the balance falls below (USD)").fill("20")
    form.get_by_role("button", name="Save low-balance alert").click()
    expect(page.locator("main")).to_contain_text("The low-balance alert is on, below USD 20.00.")
    expect(page.locator("#low-balance-banner")).to_have_count(0)

    ledger.post_entry(
        account=account, kind="adjustment", amount=Decimal("-15.00"), key="d-1", description="Charge",
        allow_overdraft=True,
    )  # fmt: skip
    page.goto(reverse("dashboard", args=[account.public_id]))
    banner = page.locator("#low-balance-banner")
    expect(banner).to_contain_text("The balance of Solo Standard is USD 15.00, below its alert threshold of USD 20.00.")
    banner.get_by_role("link", name="Make a payment").click()
    expect(page).to_have_url(f"{live_server.url}{reverse('top_up', args=[account.public_id])}")
    assert wait_for(lambda: [m for m in mail.outbox if m.to == [owner.email] and "balance below" in m.subject])
