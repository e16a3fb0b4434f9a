import django_tables2 as tables
from django.utils.html import format_html

from billing.models import LedgerEntry
from billing.money import format_money


class LedgerEntryTable(tables.Table):
    """An account's ledger, newest first. Amounts are money the account holds or owes, shown even
    when its pricing is hidden; descriptions name a month's usage, never a rate."""

    created_at = tables.DateTimeColumn(verbose_name="Date (UTC)", format="Y-m-d H:i", orderable=False)
    kind = tables.Column(verbose_name="Kind", orderable=False)
    description = tables.Column(verbose_name="Description", orderable=False)
    amount = tables.Column(
        verbose_name="Amount", orderable=False, attrs={"td": {"class": "num"}, "th": {"class": "num"}}
    )

    class Meta:
        model = LedgerEntry
        fields = ("created_at", "kind", "description", "amount")
        attrs = {"class": "table ledger-entries"}
        empty_text = "No entries yet: top-ups, transfers, usage charges and adjustments appear here."

    def render_amount(self, record):
        css = "credit" if record.amount > 0 else "debit"
        return format_html('<span class="{}">{}</span>', css, format_money(record.amount, record.currency))
