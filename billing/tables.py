from typing import Any

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.models import Account
from billing.models import Invoice, LedgerEntry
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

    def render_amount(self, record: LedgerEntry) -> SafeString:
        css = "credit" if record.amount > 0 else "debit"
        return format_html('<span class="{}">{}</span>', css, format_money(record.amount, record.currency))


class InvoiceTable(tables.Table):
    """An account's invoices, newest first. Totals are money the account owes, shown even when its
    pricing is hidden (DESIGN section 3)."""

    number = tables.Column(verbose_name="Invoice", orderable=False)
    issuer = tables.Column(verbose_name="Issued by", orderable=False, default="Mission Control")
    period = tables.DateColumn(verbose_name="Period", format="F Y", orderable=False)
    issue_date = tables.DateColumn(verbose_name="Issued", format="Y-m-d", orderable=False, default="—")
    due_date = tables.DateColumn(verbose_name="Due", format="Y-m-d", orderable=False, default="—")
    status = tables.Column(verbose_name="Status", orderable=False)
    total = tables.Column(verbose_name="Total", orderable=False, attrs={"td": {"class": "num"}, "th": {"class": "num"}})

    class Meta:
        model = Invoice
        fields = ("number", "issuer", "period", "issue_date", "due_date", "status", "total")
        attrs = {"class": "table invoices"}
        empty_text = "No invoices yet: each month's invoice appears here once the month has closed (on the 1st, UTC)."

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account = account

    def render_number(self, record: Invoice) -> SafeString:
        url = reverse("invoice_detail", args=[self.account.public_id, record.public_id])
        return format_html('<a href="{}">{}</a>', url, record.number)

    def render_issuer(self, value: Account) -> str:
        # Called only for a reseller invoice: a platform invoice's None issuer shows the default.
        return value.name

    def render_status(self, record: Invoice) -> SafeString:
        # What the customer acts on (Invoice.payment_status): due, overdue, paid or void.
        status = record.payment_status
        return format_html('<span class="badge invoice-{}">{}</span>', status, record.get_payment_status_display())

    def render_total(self, record: Invoice) -> str:
        return format_money(record.total, record.currency)


class IssuedInvoiceTable(tables.Table):
    """A manager's reseller invoices to its roll-up managed accounts, newest first."""

    number = tables.Column(verbose_name="Invoice", orderable=False)
    bill_to = tables.Column(verbose_name="Managed account", accessor="bill_to__name", orderable=False)
    period = tables.DateColumn(verbose_name="Period", format="F Y", orderable=False)
    status = tables.Column(verbose_name="Status", orderable=False)
    total = tables.Column(verbose_name="Total", orderable=False, attrs={"td": {"class": "num"}, "th": {"class": "num"}})
    # The credit notes' sum (billing.invoices.credit_notes.with_credited annotates it).
    credited = tables.Column(
        verbose_name="Credited",
        orderable=False,
        empty_values=(),
        attrs={"td": {"class": "num"}, "th": {"class": "num"}},
    )

    class Meta:
        model = Invoice
        fields = ("number", "bill_to", "period", "status", "total", "credited")
        attrs = {"class": "table invoices"}
        empty_text = (
            "No reseller invoices yet: when a month closes (on the 1st, UTC), each roll-up managed account "
            "gets an invoice from you here, at your cost plus the markup above."
        )

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account = account

    def render_number(self, record: Invoice) -> SafeString:
        url = reverse("issued_invoice_detail", args=[self.account.public_id, record.public_id])
        return format_html('<a href="{}">{}</a>', url, record.number)

    def render_status(self, record: Invoice) -> SafeString:
        return format_html('<span class="badge invoice-{}">{}</span>', record.status, record.get_status_display())

    def render_total(self, record: Invoice) -> str:
        return format_money(record.total, record.currency)

    def render_credited(self, record: Invoice) -> str:
        credited = getattr(record, "credited", None)
        return format_money(credited, record.currency) if credited else "—"
