"""The read side of invoices, for the invoice pages and the v2 API alike: which invoices an account
sees, and an invoice's lines laid out in its sections.

An account sees the invoices billed to it once they are finalized (a draft exists only inside the
transaction that builds it): the platform's, or, for a roll-up managed account, its manager's
reseller invoices (its usage is also a section of the manager's platform invoice, which it never
sees). A manager sees the reseller invoices it issued.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db.models import QuerySet

from accounts.models import Account
from accounts.permissions import can_see_pricing
from billing.models import Invoice, InvoiceLine


def invoices_of(account: Account) -> QuerySet[Invoice]:
    """The invoices `account`'s people (and its API keys) may see, newest first. A managed account
    whose manager hides pricing sees no reseller invoice: at the manager's resale prices, it would
    tell the account the manager's own cost (and at 0 % markup, exactly). The manager sends those
    itself (it has the page and the PDF)."""
    invoices = Invoice.objects.filter(bill_to=account).exclude(status=Invoice.Status.DRAFT)
    if not resale_invoices_visible(account):
        invoices = invoices.filter(issuer__isnull=True)
    return invoices.select_related("issuer").order_by("-period", "-id")


def resale_invoices_visible(account: Account) -> bool:
    return can_see_pricing(account)


def issued_invoices_of(manager: Account) -> QuerySet[Invoice]:
    """The reseller invoices `manager` issued to its roll-up managed accounts, newest first."""
    return (
        Invoice.objects.filter(issuer=manager)
        .exclude(status=Invoice.Status.DRAFT)
        .select_related("bill_to", "issuer")
        .order_by("-period", "bill_to__name", "-id")
    )


def issuer_name(invoice: Invoice) -> str:
    return invoice.issuer.name if invoice.issuer_id else "Mission Control (the platform)"


def period_end(invoice: Invoice) -> date:
    """The last day of the invoiced month (UTC), included in the period."""
    return invoice.period.replace(day=calendar.monthrange(invoice.period.year, invoice.period.month)[1])


@dataclass
class Section:
    """The lines of one account on an invoice: the billed party's own usage, or (on a manager's
    invoice) one roll-up managed account's. `subtotal` is the sum of its lines, rounding line
    included, which is the usage charge the ledger posted for that account and month."""

    account: Account
    own: bool
    name: str = ""
    lines: list[InvoiceLine] = field(default_factory=list)
    subtotal: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class Layout:
    sections: list[Section]
    sections_total: Decimal

    def adds_up(self, invoice: Invoice) -> bool:
        """The check printed on the invoice: its sections add up to its total."""
        return self.sections_total == invoice.total


def invoice_layout(invoice: Invoice) -> Layout:
    """The invoice's lines in their sections, in the order the close wrote them (the party's own
    section first, then its roll-up accounts by name). One query whatever the number of sections:
    each line comes with its account and product."""
    lines = InvoiceLine.objects.filter(invoice=invoice).select_related("account", "product").order_by("position")
    sections: list[Section] = []
    for line in lines:
        if not sections or sections[-1].account.pk != line.account_id:
            own = line.account_id == invoice.bill_to_id
            # The name the account had when the invoice was issued (older lines carry none).
            sections.append(Section(account=line.account, own=own, name=line.account_name or line.account.name))
        section = sections[-1]
        section.lines.append(line)
        section.subtotal += line.amount
    return Layout(sections=sections, sections_total=sum((s.subtotal for s in sections), Decimal("0.00")))
