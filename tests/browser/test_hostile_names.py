"""Names with HTML in them, in every place the portal shows a name, run no script (issue 11, hole 1).

An account's owner chooses its name; a manager then sees it in tables, chart tooltips and axes,
the log-in-as banner, the account switcher, invoices and their PDF. Every name here carries a
payload that, if it ever became markup, would set `window.__xss` or open a dialog. The page must
show the name as text, the flag must stay unset, no dialog may open and the browser must report no
Content-Security-Policy violation (a violation means markup got into the page and only the policy
stopped it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from io import BytesIO

import pytest
from django.urls import reverse
from playwright.sync_api import ConsoleMessage, Dialog, Page, expect
from pypdf import PdfReader

from accounts.actor import Actor
from accounts.models import Account, Membership, Role, User
from billing.invoices import builder
from billing.models import Invoice
from billing.usage.services import ingest_usage
from reporting.forms import today_utc
from tests.factories import PASSWORD, AccountFactory, account_with_owner

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def hostile(name: str) -> str:
    """`name` followed by markup that would run script if it were ever parsed as HTML."""
    return f'{name}<img src=x onerror="window.__xss=1"><svg onload="alert(1)"></svg>'


MANAGED_NAME = hostile("Alpine")
SIBLING_NAME = hostile("Blue Harbor")
MANAGER_NAME = hostile("Acme Reseller")
OTHER_NAME = hostile("Solo Standard")  # another account of the manager's owner: the switcher
PERSON_NAME = hostile("Ann")  # the manager owner's first name: the log-in-as banner


@dataclass
class Watch:
    """What the page said while the test ran: console messages, dialogs and uncaught errors."""

    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    errors: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m or "Content-Security-Policy" in m]


def watch(page: Page) -> Watch:
    seen = Watch()

    def on_console(message: ConsoleMessage) -> None:
        seen.console.append(f"{message.type}: {message.text}")

    def on_dialog(dialog: Dialog) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: seen.errors.append(error.message))
    return seen


def assert_no_script_ran(page: Page, seen: Watch) -> None:
    page.wait_for_load_state("networkidle")  # an <img src=x> would fail (and fire onerror) by now
    assert page.evaluate("window.__xss") is None, f"a name's payload ran as script on {page.url}"
    assert seen.dialogs == [], seen.dialogs
    assert seen.csp_violations() == [], seen.csp_violations()
    assert seen.errors == [], seen.errors


def assert_shows_as_text(page: Page, seen: Watch, where: str, *names: str) -> None:
    """Every name is in the text of `where` exactly as typed, no markup of it is in the page, and
    no script ran."""
    text = page.locator(where).first.inner_text()
    for name in names:
        assert name in text, f"{name!r} is not shown as text in {where} of {page.url}"
    assert page.locator('img[src="x"], svg[onload]').count() == 0, f"a name became markup on {page.url}"
    assert_no_script_ran(page, seen)


def sign_in(page: Page, email: str) -> None:
    page.goto(reverse("account_login"))
    page.locator('input[name="login"]').fill(email)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page.locator(".who")).to_have_text(email)


def usage_yesterday(manager: Account, owner: User, *accounts: Account) -> None:
    """Some SMS of each of `accounts` yesterday (UTC), sent by their manager."""
    at = f"{today_utc() - timedelta(days=1)}T10:00:00Z"
    rows = [
        {
            "account": str(account.public_id),
            "product": "sms.outbound",
            "quantity": str(10 * (n + 1)),
            "started_at": at,
            "idempotency_key": f"hostile-{account.pk}",
        }
        for n, account in enumerate(accounts)
    ]
    result = ingest_usage(submitter=manager, rows=rows, source="api", actor=Actor(user=owner))
    assert result.accepted == len(rows), result


def report_by_account_url(manager: Account) -> str:
    start = today_utc() - timedelta(days=3)
    query = f"start={start}&end={today_utc()}&group_by=account"
    return f"{reverse('usage_report', args=[manager.public_id])}?{query}"


def test_hole_1_account_name_in_chart_tooltip_runs_no_script(page: Page, live_server, catalogue):
    manager, owner = account_with_owner(name="Acme Reseller", manager_kind=True)
    managed, _ = account_with_owner(name=MANAGED_NAME, managed_kind=True, manager=manager)
    sibling, _ = account_with_owner(name=SIBLING_NAME, managed_kind=True, manager=manager)
    usage_yesterday(manager, owner, managed, sibling)  # the sibling uses more: its bar comes first
    seen = watch(page)

    sign_in(page, owner.email)
    page.goto(report_by_account_url(manager))
    bars = page.locator("#usage-chart .chart-bars rect")
    expect(bars).to_have_count(2)

    # Each bar's tooltip (its SVG <title>, drawn by the server) names its own account, in full and
    # as text, and its cost; the axis shows the names as text too.
    for bar, (name, cost) in enumerate([(SIBLING_NAME, "USD 0.08"), (MANAGED_NAME, "USD 0.04")]):
        title = bars.nth(bar).locator("title")
        expect(title).to_have_text(f"{name}: {cost}")
        expect(title.locator("*")).to_have_count(0)
    axis = page.locator("#usage-chart text.chart-x").all_text_contents()
    assert [label.split("<")[0] for label in axis] == ["Blue Harbor", "Alpine"], axis
    assert_shows_as_text(page, seen, "#usage-chart figcaption", SIBLING_NAME, MANAGED_NAME)
    assert_no_script_ran(page, seen)


def pdf_text(content: bytes) -> str:
    reader = PdfReader(BytesIO(content))
    return re.sub(r"\s+", " ", "\n".join(p.extract_text() for p in reader.pages))


@dataclass
class Reseller:
    manager: Account
    owner: User
    managed: Account
    sibling: Account
    invoice: Invoice  # the manager's March 2025 invoice, a section per roll-up managed account


@pytest.fixture
def reseller(catalogue) -> Reseller:
    """A manager with two roll-up managed accounts, every name and the owner's first name hostile;
    their usage in March 2025 (invoiced) and yesterday (charted)."""
    manager, owner = account_with_owner(name=MANAGER_NAME, manager_kind=True)
    User.objects.filter(pk=owner.pk).update(first_name=PERSON_NAME)
    managed, _ = account_with_owner(name=MANAGED_NAME, managed_kind=True, manager=manager)
    sibling, _ = account_with_owner(name=SIBLING_NAME, managed_kind=True, manager=manager)
    Membership.objects.create(user=owner, account=AccountFactory(name=OTHER_NAME), role=Role.OWNER)
    Account.objects.update(created_at=datetime(2025, 1, 1, tzinfo=UTC))  # they existed in March
    march = datetime.combine(datetime(2025, 3, 10), time(12), UTC).isoformat()
    rows = [
        {"account": str(a.public_id), "product": "sms.outbound", "quantity": "100", "started_at": march,
         "idempotency_key": f"march-{a.pk}"}
        for a in (manager, managed, sibling)
    ]  # fmt: skip
    ingest_usage(submitter=manager, rows=rows, source="api", actor=Actor(user=owner))
    builder.invoice_party(account=manager, month=datetime(2025, 3, 1).date())
    usage_yesterday(manager, owner, managed, sibling)
    invoice = Invoice.objects.get(bill_to=manager, issuer__isnull=True, period=datetime(2025, 3, 1).date())
    return Reseller(manager, User.objects.get(pk=owner.pk), managed, sibling, invoice)


def test_hole_1_names_with_html_run_no_script_anywhere_they_are_shown(page: Page, live_server, reseller):
    r = reseller
    seen = watch(page)
    sign_in(page, r.owner.email)

    # The account switcher (the owner has two accounts), the nav and the dashboard.
    page.goto(reverse("dashboard", args=[r.manager.public_id]))
    page.locator(".switcher summary").click()
    assert_shows_as_text(page, seen, ".switcher", MANAGER_NAME, OTHER_NAME)
    assert_shows_as_text(page, seen, "main", MANAGER_NAME)
    assert page.title().startswith(MANAGER_NAME)

    # Tables: the managed accounts list, the invoice list, the reseller invoices.
    page.goto(reverse("managed_list", args=[r.manager.public_id]))
    assert_shows_as_text(page, seen, "main table", MANAGED_NAME, SIBLING_NAME)
    page.goto(reverse("invoice_list", args=[r.manager.public_id]))
    assert_shows_as_text(page, seen, "main table", r.invoice.number)
    page.goto(reverse("resale_invoices", args=[r.manager.public_id]))
    assert_shows_as_text(page, seen, "main table", MANAGED_NAME, SIBLING_NAME)

    # The invoice, a section per managed account, and its PDF: the markup is text in it.
    page.goto(reverse("invoice_detail", args=[r.manager.public_id, r.invoice.public_id]))
    assert_shows_as_text(page, seen, "main .invoice", MANAGER_NAME, MANAGED_NAME, SIBLING_NAME)
    pdf = page.request.get(reverse("invoice_pdf", args=[r.manager.public_id, r.invoice.public_id]))
    assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
    text = pdf_text(pdf.body())
    for name in (MANAGER_NAME, MANAGED_NAME, SIBLING_NAME):
        assert name in text, (name, text)

    # The usage report by account: the table, the scope's options, the chart's axis and tooltip.
    page.goto(report_by_account_url(r.manager))
    expect(page.locator("#usage-chart .chart-bars rect")).to_have_count(2)
    assert_shows_as_text(page, seen, "table.usage-summary", MANAGED_NAME, SIBLING_NAME)
    assert MANAGER_NAME in page.locator('select[name="scope"]').inner_text()
    axis = page.locator("#usage-chart text.chart-x").all_text_contents()
    assert len(axis) == 2 and all(label.startswith(("Alpine<", "Blue Harbor<")) for label in axis), axis
    expect(page.locator("#usage-chart .chart-bars rect title").first).to_have_text(f"{SIBLING_NAME}: USD 0.08")
    assert_shows_as_text(page, seen, "#usage-chart figcaption", SIBLING_NAME)

    # The managed account's page, then log in as it: the banner names the person and both accounts.
    page.goto(reverse("managed_detail", args=[r.manager.public_id, r.managed.public_id]))
    assert_shows_as_text(page, seen, "main", MANAGED_NAME)
    page.get_by_role("button", name=f"Log in as {MANAGED_NAME}").click()
    expect(page).to_have_url(live_server.url + reverse("dashboard", args=[r.managed.public_id]))
    assert_shows_as_text(page, seen, ".acting-banner", PERSON_NAME, MANAGED_NAME, MANAGER_NAME)
    page.goto(reverse("usage_report", args=[r.managed.public_id]))
    assert_shows_as_text(page, seen, ".acting-banner", PERSON_NAME, MANAGED_NAME)

    assert seen.csp_violations() == [] and seen.dialogs == []


# --- The policy in the browser -----------------------------------------------------------------------------


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


CATCH_VIOLATIONS = """() => {
  window.__violations = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__violations.push(e.violatedDirective + " " + (e.blockedURI || ""));
  });
}"""

# An inline script, an inline event handler, an inline style attribute, a <style> block and eval,
# all added by script the test runs in the page.
INJECT = """() => {
  const script = document.createElement("script");
  script.textContent = "window.__inline = 1";
  document.body.appendChild(script);
  const holder = document.createElement("div");
  holder.innerHTML = '<img src="/static/css/portal.css" onerror="window.__handler = 1">' +
    '<p id="styled" style="color: rgb(255, 0, 0)">styled</p><style>main { color: rgb(0, 0, 255) }</style>';
  document.body.appendChild(holder);
  // eval from a timer: code that DevTools evaluates directly is exempt from the page's policy.
  window.setTimeout(() => {
    try { window.__eval = eval("'allowed'"); } catch (error) { window.__eval = error.name; }
  }, 0);
}"""


def test_the_pages_answer_with_a_strict_content_security_policy_that_the_browser_enforces(
    page: Page, live_server, reseller
):
    sign_in(page, reseller.owner.email)
    response = page.goto(report_by_account_url(reseller.manager))
    assert response is not None and response.ok
    header = response.headers.get("content-security-policy")
    assert header, "no Content-Security-Policy header"
    assert "content-security-policy-report-only" not in response.headers
    policy = directives(header)
    assert "'unsafe-inline'" not in header and "'unsafe-eval'" not in header
    assert policy["script-src"][0] == "'self'" and not any("*" in s for s in policy["script-src"])
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"]
    expect(page.locator("#usage-chart .chart-bars rect")).to_have_count(2)  # drawn by the server, no script

    page.evaluate(CATCH_VIOLATIONS)
    page.evaluate(INJECT)
    page.wait_for_load_state("networkidle")
    page.wait_for_function("window.__eval !== undefined && window.__violations.length >= 4")

    assert page.evaluate("window.__inline") is None, "an inline script ran"
    assert page.evaluate("window.__handler") is None, "an inline event handler ran"
    assert page.evaluate("window.__eval") == "EvalError", "eval was allowed"
    assert page.locator("#styled").evaluate("e => getComputedStyle(e).color") != "rgb(255, 0, 0)"
    assert page.locator("main").evaluate("e => getComputedStyle(e).color") != "rgb(0, 0, 255)"
    violated = " ".join(page.evaluate("window.__violations"))
    assert "script-src" in violated and "style-src" in violated, violated
