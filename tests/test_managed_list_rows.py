"""The managed accounts list's rows (ManagedAccountTable, drawn by portal.tables.QuickRows): every
cell of a row (escaped, with its column's td attributes), the actions each account's state allows,
and the log-in-as form's CSRF token that the POST needs."""

import re

from django.urls import reverse

from accounts.models import Account
from tests.factories import AccountFactory


def _row_of(html: str, name_html: str) -> str:
    rows = re.findall(r"<tr class=\"(?:odd|even)\">(.*?)</tr>", html, flags=re.S)
    matching = [row for row in rows if name_html in row]
    assert len(matching) == 1, f"{len(matching)} rows hold {name_html!r}"
    return re.sub(r"\s+", " ", matching[0])


def test_a_row_shows_every_column_escaped(world, persona):
    hostile = AccountFactory(
        managed_kind=True,
        manager=world.manager,
        name='<b>"Bold" & Co</b>',
        email="owner@bold.example.com",
        billing_mode=Account.BillingMode.ROLLUP,
        pricing_hidden=True,
    )
    response = persona("owner").get(reverse("managed_list", args=[world.manager.public_id]))
    html = response.content.decode()
    escaped = "&lt;b&gt;&quot;Bold&quot; &amp; Co&lt;/b&gt;"
    row = _row_of(html, escaped)
    detail = reverse("managed_detail", args=[world.manager.public_id, hostile.public_id])
    assert f'<td ><a href="{detail}">{escaped}</a></td>' in row
    assert "<td >owner@bold.example.com</td>" in row
    assert '<td ><span class="badge badge-enabled">Enabled</span></td>' in row
    assert "<td >Roll-up</td>" in row
    assert '<td class="num">billed to you (roll-up)</td>' in row
    assert '<td ><span class="true">Hidden</span></td>' in row
    assert f"<td >{hostile.created_at:%Y-%m-%d}</td>" in row
    assert "<b>" not in row
    usage = reverse("managed_usage", args=[world.manager.public_id, hostile.public_id])
    assert f'<a href="{usage}" aria-label="Usage of {escaped}">Usage</a>' in row
    disable = reverse("managed_disable", args=[world.manager.public_id, hostile.public_id])
    assert f'<a href="{disable}" aria-label="Disable {escaped}">Disable</a>' in row


def test_a_disabled_account_offers_enable_and_no_disable(world, persona):
    managed = AccountFactory(managed_kind=True, manager=world.manager, name="Delta Dental")
    Account.objects.filter(pk=managed.pk).update(status=Account.Status.DISABLED)
    response = persona("owner").get(reverse("managed_list", args=[world.manager.public_id]), {"status": "disabled"})
    row = _row_of(response.content.decode(), "Delta Dental")
    enable = reverse("managed_enable", args=[world.manager.public_id, managed.public_id])
    assert f'<a href="{enable}" aria-label="Enable Delta Dental">Enable</a>' in row
    assert ">Disable</a>" not in row


def test_log_in_as_is_a_post_form_with_the_pages_csrf_token_where_the_rule_allows_it(world, persona):
    response = persona("owner").get(reverse("managed_list", args=[world.manager.public_id]))
    html = response.content.decode()
    denials = response.context["table"].log_in_as
    allowed = [
        row.record for row in response.context["table"].page.object_list if denials.get(row.record.pk, "") is None
    ]
    refused = [row.record for row in response.context["table"].page.object_list if denials.get(row.record.pk)]
    assert allowed, "the owner may log in as some managed account of the world"
    for record in allowed:
        row = _row_of(html, f">{record.name}</a>")
        action = reverse("managed_log_in_as", args=[world.manager.public_id, record.public_id])
        form = re.search(
            rf'<form method="post" action="{action}" class="inline"><input type="hidden" '
            rf'name="csrfmiddlewaretoken" value="[A-Za-z0-9]+"><button type="submit" class="link" '
            rf'aria-label="Log in as {record.name}">Log in as</button></form>',
            row,
        )
        assert form is not None, row
    for record in refused:
        assert reverse("managed_log_in_as", args=[world.manager.public_id, record.public_id]) not in html


def test_a_balance_is_shown_with_its_currency_and_two_decimals(world, persona):
    response = persona("owner").get(reverse("managed_list", args=[world.manager.public_id]))
    table = response.context["table"]
    rows = table.quick_rows()
    assert len(rows) == len(table.page.object_list) > 0
    for page_row, bound in zip(rows, table.page.object_list, strict=True):
        record = bound.record
        balance_td, balance_html = page_row.cells[4]
        assert balance_td == 'class="num"'
        if record.balance_amount is None:
            assert balance_html == "billed to you (roll-up)"
        else:
            assert balance_html == f"{record.balance_currency} {record.balance_amount:,.2f}"
