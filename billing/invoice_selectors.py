"""The read side of invoices, for the invoice pages and the v2 API alike: which invoices an account
sees, and an invoice's lines laid out in its sections.

An account sees the platform's invoices billed to it once they are finalized (a draft exists only
inside the transaction that builds it). A roll-up managed account is billed nothing of its own:
its usage is a section of its manager's invoice, which it never sees.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db.models import QuerySet

from accounts.models import Account
from billing.models import Invoice, InvoiceLine


def invoices_of(account: Account) -> QuerySet[Invoice]:
    """The invoices `account`'s people (and its API keys) may see, newest first."""
    return (
        Invoice.objects.filter(bill_to=account, issuer__isnull=True)
        .exclude(status=Invoice.Status.DRAFT)
        .order_by("-period", "-id")
    )


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
            sections.append(Section(account=line.account, own=line.account_id == invoice.bill_to_id))
        section = sections[-1]
        section.lines.append(line)
        section.subtotal += line.amount
    return Layout(sections=sections, sections_total=sum((s.subtotal for s in sections), Decimal("0.00")))
