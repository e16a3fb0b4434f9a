"""The read side of invoices, for the invoice pages and the v2 API alike: which invoices an account
sees, and an invoice's lines laid out in its sections.

An account sees the invoices billed to it once they are finalized (a draft exists only inside the
transaction that builds it): the platform's, or, for a roll-up managed account, its manager's
reseller invoices (its usage is also a section of the manager's platform invoice, which it never
sees). A manager sees the reseller invoices it issued. Hidden pricing changes how an invoice is
shown (billing.invoices.pdf.invoice_view's `pricing`, and `status_note_visible`), never whether.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db.models import Count, F, Q, QuerySet, Sum, Window
from django.db.models.functions import Lag, RowNumber

from accounts.models import Account
from accounts.permissions import can_see_manager_notes
from billing.models import Invoice, InvoiceLine


def invoices_of(account: Account) -> QuerySet[Invoice]:
    """The invoices `account`'s people (and its API keys) may see, newest first: every issued invoice
    billed to it. A roll-up account whose manager hides its pricing still owes the manager money, so
    it sees its reseller invoices like a separately billed hidden-pricing account sees its platform
    invoices (DESIGN section 3): the total and the quantities, no rate, no per-line amount (the
    caller passes can_see_pricing as `pricing` to invoice_view), never the markup."""
    return Invoice.objects.filter(bill_to=account).issued().select_related("issuer").order_by("-period", "-id")


def status_note_visible(invoice: Invoice, account: Account) -> bool:
    """Whether `account`, billed by `invoice`, is shown its status note. On a reseller invoice the
    note is the manager's free text, shown by the one rule permissions.can_see_manager_notes (the
    audit log asks it too)."""
    return invoice.issuer_id is None or can_see_manager_notes(account)


def issued_invoices_of(manager: Account) -> QuerySet[Invoice]:
    """The reseller invoices `manager` issued to its roll-up managed accounts, newest first."""
    return (
        Invoice.objects.filter(issuer=manager)
        .issued()
        .select_related("bill_to", "issuer")
        .order_by("-period", "bill_to__name", "-id")
    )


def issuer_name(invoice: Invoice) -> str:
    return invoice.issuer.name if invoice.issuer is not None else "Mission Control (the platform)"


def period_end(invoice: Invoice) -> date:
    """The last day of the invoiced month (UTC), included in the period."""
    return invoice.period.replace(day=calendar.monthrange(invoice.period.year, invoice.period.month)[1])


@dataclass
class Section:
    """The lines of one account on an invoice: the billed party's own usage, or (on a manager's
    invoice) one roll-up managed account's. `subtotal` is the sum of its lines, rounding line
    included, which is the usage charge the ledger posted for that account and month."""

    account_id: int
    own: bool
    name: str = ""
    lines: list[InvoiceLine] = field(default_factory=list)
    subtotal: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class SectionPage:
    """Which of the invoice's sections a page of it shows (1-based, both ends included)."""

    number: int
    pages: int
    first: int
    last: int


@dataclass(frozen=True)
class Layout:
    sections: list[Section]
    sections_total: Decimal  # of ALL the invoice's sections, shown or not
    section_count: int  # ALL the invoice's sections
    page: SectionPage | None = None  # None: every section is in `sections`

    def adds_up(self, invoice: Invoice) -> bool:
        """The check printed on the invoice: its sections add up to its total."""
        return self.sections_total == invoice.total


SECTIONS_PER_PAGE = 50


def invoice_layout(invoice: Invoice, *, page: int | None = None, per_page: int = SECTIONS_PER_PAGE) -> Layout:
    """The invoice's lines in their sections, in the order the close wrote them (the party's own
    section first, then its roll-up accounts by name). Without `page`, every section (the PDF): one
    query whatever the number of sections. With `page`, `per_page` sections (the page of a manager
    with 3,000 roll-up accounts): one aggregate for every section's count and total (the check
    covers the whole invoice), one for the positions where the page's sections start, one for the
    page's lines. The lines come alone: no account or product row is loaded with them (a section is
    named by the name its lines carry; the names of an invoice older than that, one more query).
    On PostgreSQL the first two read an index alone (billing migration 0016)."""
    lines = InvoiceLine.objects.filter(invoice=invoice).order_by("position")
    if page is None:
        sections = _sections(invoice, lines)
        total = sum((s.subtotal for s in sections), Decimal("0.00"))
        return Layout(sections=sections, sections_total=total, section_count=len(sections))
    summary = InvoiceLine.objects.filter(invoice=invoice).aggregate(
        sections=Count("account_id", distinct=True), total=Sum("amount"), lines=Count("id")
    )
    count: int = summary["sections"]
    pages = max(1, -(-count // per_page))
    number = min(max(1, page), pages)
    first = (number - 1) * per_page
    # The close writes each section's lines in consecutive positions: a section starts where the
    # account changes, and a page's lines are those from its first section's start to the next
    # page's first, read in position order as many as there are (a LIMIT, which PostgreSQL serves
    # from the (invoice, position) index where a position range would have it read every line).
    in_order = F("position").asc()
    starts = list(
        InvoiceLine.objects.filter(invoice=invoice)
        .annotate(previous=Window(Lag("account_id"), order_by=in_order), row=Window(RowNumber(), order_by=in_order))
        .filter(Q(previous__isnull=True) | ~Q(previous=F("account_id")))
        .order_by("position")
        .values_list("position", "row")[first : first + per_page + 1]
    )
    if not starts:
        lines = lines.none()
    else:
        after = starts[per_page][1] if len(starts) > per_page else summary["lines"] + 1
        lines = lines.filter(position__gte=starts[0][0])[: after - starts[0][1]]
    shown = min(per_page, len(starts))
    return Layout(
        sections=_sections(invoice, lines),
        sections_total=summary["total"] if summary["total"] is not None else Decimal("0.00"),
        section_count=count,
        page=SectionPage(number=number, pages=pages, first=first + 1, last=first + shown),
    )


def _sections(invoice: Invoice, lines: Iterable[InvoiceLine]) -> list[Section]:
    sections: list[Section] = []
    for line in lines:
        if not sections or sections[-1].account_id != line.account_id:
            own = line.account_id == invoice.bill_to_id
            # The name the account had when the invoice was issued (older lines carry none: below).
            sections.append(Section(account_id=line.account_id, own=own, name=line.account_name))
        section = sections[-1]
        section.lines.append(line)
        section.subtotal += line.amount
    unnamed = {section.account_id for section in sections if not section.name}
    if unnamed:
        names = dict(Account.objects.filter(pk__in=unnamed).values_list("pk", "name"))
        for section in sections:
            section.name = section.name or names[section.account_id]
    return sections
