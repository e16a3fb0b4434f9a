"""portal.tables.QuickRows draws a table's page rows as django-tables2 itself draws them: for each
table that uses it, the same data drawn through django-tables2's own template and through the
quick one gives the same HTML (whitespace between tags aside), hostile values escaped alike."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import django_tables2 as tables
import pytest
from django.test import RequestFactory

from accounts.models import AuditEvent
from portal.pagination import paginate_table
from portal.tables import QUICK_TABLE, QuickRows
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.tables import DeliveriesTable

STOCK = "django_tables2/table.html"


def _normalized(html: str) -> str:
    body = re.search(r"<tbody.*?</tbody>", html, flags=re.S)
    assert body is not None, html
    tbody = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken" value=""', body.group(0))
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", tbody)).strip()  # the token is masked anew per use


def _drawn(make_table, template: str, query: str = "") -> str:
    request = RequestFactory().get("/" + query)
    table = paginate_table(request, make_table(template), per_page=25)
    return _normalized(table.as_html(request))


def test_the_delivery_log_is_drawn_as_django_tables2_draws_it(world):
    endpoint = WebhookEndpoint.objects.create(account=world.manager, url="https://hooks.example.com/", secret="s")
    statuses = [WebhookDelivery.Status.PENDING, WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED]
    for n in range(30):
        event = AuditEvent.objects.create(account=world.manager, change_type="x", resource_type="x", resource_id=str(n))
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event=event,
            event_type='<script>alert("x")</script> & co' if n % 7 == 0 else "managed_account.disabled",
            data={},
            status=statuses[n % 3],
            attempts=n % 4,
            response_code=None if n % 3 == 0 else 200 + n,
        )
        if n % 2:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                last_attempt_at=datetime(2026, 3, 4, 5, 6, n, tzinfo=UTC)
            )

    def make(template: str) -> DeliveriesTable:
        return DeliveriesTable(
            WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-created_at", "-pk"),
            account_id=str(world.manager.public_id),
            endpoint_id=str(endpoint.public_id),
            template_name=template,
        )

    for query in ("", "?page=2"):
        quick, stock = _drawn(make, QUICK_TABLE, query), _drawn(make, STOCK, query)
        assert quick == stock
        assert "&lt;script&gt;" in quick and "<script>" not in quick
        assert quick.count("<tr") == (25 if not query else 5)


def test_a_column_it_cannot_draw_alike_is_refused_not_drawn_differently(world):
    class Linked(QuickRows, tables.Table):
        name = tables.Column(linkify=lambda record: "/x/")

    table = Linked([{"name": "a"}], template_name=QUICK_TABLE)
    table.paginate(per_page=10)
    with pytest.raises(ValueError, match="linked"):
        table.quick_rows()


def test_the_managed_accounts_list_is_drawn_as_django_tables2_draws_it(world):
    from accounts import selectors
    from accounts.models import Account
    from accounts.tables import ManagedAccountTable
    from tests.factories import AccountFactory

    AccountFactory(
        managed_kind=True,
        manager=world.manager,
        name='<b>"Bold" & Co</b>',
        email="",
        billing_mode=Account.BillingMode.ROLLUP,
        pricing_hidden=True,
    )
    disabled = AccountFactory(managed_kind=True, manager=world.manager, name="Delta Dental")
    Account.objects.filter(pk=disabled.pk).update(status=Account.Status.DISABLED)
    accounts = selectors.with_balances(selectors.managed_accounts_for(world.manager).select_related("manager"))

    def make(template: str) -> ManagedAccountTable:
        table = ManagedAccountTable(accounts, template_name=template)
        table.log_in_as = {
            pk: None if n % 2 else "refused" for n, pk in enumerate(accounts.values_list("pk", flat=True))
        }
        return table

    for query in ("", "?sort=name", "?sort=-balance"):
        quick, stock = _drawn(make, QUICK_TABLE, query), _drawn(make, STOCK, query)
        assert quick == stock
        assert "&lt;b&gt;&quot;Bold&quot; &amp; Co&lt;/b&gt;" in quick and "<b>" not in quick
        assert "Log in as" in quick and "Enable" in quick and "billed to you (roll-up)" in quick


@pytest.mark.parametrize("group_by,pricing", [("account", True), ("product", True), ("day", False)])
def test_a_usage_report_table_is_drawn_as_django_tables2_draws_it(group_by, pricing):
    from decimal import Decimal

    from billing.usage.selectors import UsageRow, UsageTotals
    from reporting.tables import UsageSummaryTable

    rows = [
        UsageRow(
            key=f"k{n}",
            label='<i>"Evil" & sons</i>' if n % 5 == 0 else f"Group {n}",
            quantity=Decimal(n) / 7,
            records=n * 1000,
            cost=Decimal("123456.789") * n,
            unit="" if n % 3 else "minute",
        )
        for n in range(40)
    ]
    totals = UsageTotals(quantity=Decimal("1.5"), records=7, cost=Decimal("2.25"))

    def make(template: str) -> UsageSummaryTable:
        return UsageSummaryTable(
            rows,
            group_by=group_by,
            totals=totals,
            pricing=pricing,
            link=lambda row: None if row.key == "k3" else f"/drill/?key={row.key}&x=<y>",
            template_name=template,
        )

    for query in ("", "?page=2", "?sort=-cost"):
        quick, stock = _drawn(make, QUICK_TABLE, query), _drawn(make, STOCK, query)
        assert quick == stock
        assert "<i>" not in quick


def test_the_spend_limits_page_is_drawn_as_django_tables2_draws_it(world):
    from decimal import Decimal

    from django.utils import timezone

    from controls import selectors
    from controls.models import SpendLimit
    from controls.tables import LimitsTable

    today = timezone.now().date()
    SpendLimit.objects.create(account=world.managed, set_by="manager", monthly_amount=Decimal("25.00"))
    SpendLimit.objects.create(
        account=world.sibling, set_by="manager", monthly_amount=Decimal("10.00"), daily_amount=Decimal("2.00")
    )

    def make(template: str) -> LimitsTable:
        return LimitsTable(selectors.limits_overview(world.manager, today=today), today=today, template_name=template)

    for query in ("", "?sort=name", "?sort=-month_spend"):
        quick, stock = _drawn(make, QUICK_TABLE, query), _drawn(make, STOCK, query)
        assert quick == stock
        assert quick.count("USD 0.00 this month") == 2
