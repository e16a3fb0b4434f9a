"""An invoice as a PDF (DESIGN section 5: "HTML page and PDF download"), and the invoice as shown,
which the HTML page (billing.views.invoice_detail) and the PDF both print: header, statement, the
lines in a section per account (billing.invoices.selectors' layout), section subtotals and the
total (the self-check that the sections add up to the total is `InvoiceView.adds_up`, shown to
platform staff on the page only, never in the PDF).

The rounding: each section's lines are rounded one by one and the section total, which the
ledger charged, is the exact cost rounded once (billing.invoices.lines.section_amounts); the
difference is stored as a rounding line in its section. It is never shown: `section_view` spreads
it over the section's largest lines (billing.invoices.lines.shown_amounts), so the lines shown add
up to the stored section subtotal and the subtotals to the total, with no rounding line anywhere.

Hidden pricing (DESIGN section 3) is decided by the caller (`pricing`, from
accounts.permissions.can_see_pricing) and applied here once for both: without it the lines carry
quantities only, with no per-line amount and no subtotal; the statement and the
total stay, since they are money the account itself owes.

The PDF is drawn with reportlab's platypus in the Unicode fonts of billing.invoices.fonts, which
come from pip packages (what prints in which script is said there).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from io import BytesIO
from typing import Any

from django.core import signing
from django.db.models import Sum
from django.utils.dateformat import format as format_date
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from accounts import billing_profile as profiles
from accounts.models import Account
from billing.invoices import fonts
from billing.invoices.fonts import SANS, SANS_BOLD
from billing.invoices.lines import shown_amounts
from billing.invoices.selectors import Section, SectionPage, invoice_layout, issuer_name, period_end
from billing.models import CreditNote, Invoice, InvoiceLine
from billing.money import format_money

# --- The invoice as shown ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLineRow:
    description: str
    quantity: str
    amount: str | None  # None: the account's pricing is hidden


@dataclass(frozen=True)
class InvoiceSectionView:
    title: str
    note: str
    rows: list[InvoiceLineRow]
    subtotal: str | None  # None: the account's pricing is hidden


@dataclass(frozen=True)
class InvoiceView:
    invoice: Invoice
    payer: Account
    priced: bool
    sections: list[InvoiceSectionView]
    statement: list[tuple[str, str]]
    total: str
    sections_total: str
    adds_up: bool
    issuer: str
    statement_note: str
    section_count: int  # all the invoice's sections, also those not on this page
    page: SectionPage | None = None
    issuer_party: Party | None = None
    bill_to_party: Party | None = None
    payment_status: str = ""  # Invoice.payment_status, the one rule
    payment_status_label: str = ""


@dataclass(frozen=True)
class Party:
    """An invoice's issuer or bill-to as printed: the billing profile the invoice was issued with."""

    name: str
    lines: list[str]  # the postal address
    tax_id: str
    email: str


def parties(invoice: Invoice) -> tuple[Party, Party]:
    """(issuer, bill-to) from the snapshots taken when the invoice was finalized; an invoice issued
    before snapshots existed shows the names it always showed, never today's profile."""
    issuer, bill_to = invoice.issuer_details or {}, invoice.bill_to_details or {}
    issuer_email = invoice.issuer.email if invoice.issuer is not None else ""
    return (
        _party(issuer, name=issuer_name(invoice), email=issuer_email),
        _party(bill_to, name=invoice.bill_to.name, email=invoice.bill_to.email),
    )


def _party(snapshot: dict[str, Any], *, name: str, email: str) -> Party:
    return Party(
        name=str(snapshot.get("name") or name),
        lines=profiles.address_lines(snapshot),
        tax_id=str(snapshot.get("tax_id") or ""),
        email=str(snapshot.get("email") or email),
    )


def invoice_view(invoice: Invoice, *, pricing: bool, page: int | None = None) -> InvoiceView:
    """The invoice as its payer (`invoice.bill_to`) sees it, with or without pricing. Two queries
    whatever the number of sections: the lines come with their accounts and products."""
    layout = invoice_layout(invoice, page=page)
    payer = invoice.bill_to
    currency = invoice.currency
    statement, note = _statement_rows(invoice)
    issuer_party, bill_to_party = parties(invoice)
    return InvoiceView(
        invoice=invoice,
        payer=payer,
        priced=pricing,
        sections=[section_view(section, payer, currency, pricing) for section in layout.sections],
        statement=statement,
        total=format_money(invoice.total, currency),
        sections_total=format_money(layout.sections_total, currency),
        adds_up=layout.adds_up(invoice),
        issuer=issuer_name(invoice),
        statement_note=note,
        section_count=layout.section_count,
        page=layout.page,
        issuer_party=issuer_party,
        bill_to_party=bill_to_party,
        payment_status=invoice.payment_status,
        payment_status_label=invoice.get_payment_status_display(),
    )


def _statement_rows(invoice: Invoice) -> tuple[list[tuple[str, str]], str]:
    currency = invoice.currency
    if invoice.issuer is not None:
        # A reseller invoice is paid to the manager outside the platform's ledger: no balance.
        due = Decimal("0.00") if invoice.status != Invoice.Status.FINALIZED else invoice.total
        rows = [("Usage charges", format_money(invoice.charges, currency)), ("Amount due", format_money(due, currency))]
        return rows, f"Payable to {invoice.issuer.name}, which marks the invoice paid when it receives the payment."
    rows = [
        ("Opening balance", format_money(invoice.opening_balance, currency)),
        ("Credits (top-ups, transfers, adjustments)", format_money(invoice.credits, currency)),
        ("Usage charges", format_money(invoice.charges, currency)),
        ("Closing balance", format_money(invoice.closing_balance, currency)),
    ]
    return rows, "Closing balance = opening balance + credits - usage charges; it is next month's opening balance."


def section_view(section: Section, payer: Account, currency: str, priced: bool) -> InvoiceSectionView:
    if section.own:
        title, note = section.name, "Own usage" if payer.is_manager else ""
    else:
        title, note = section.name, "Roll-up managed account"
    # The rounding line (no product) is not shown: its cents are in the product lines shown, which
    # add up to the stored subtotal, what the ledger charged (lines.shown_amounts).
    lines = [line for line in section.lines if line.product_id is not None]
    rounding = sum((line.amount for line in section.lines if line.product_id is None), Decimal("0.00"))
    amounts = shown_amounts([line.amount for line in lines], rounding)
    rows = [
        InvoiceLineRow(
            description=line.description,
            quantity=quantity(line),
            amount=format_money(amount, currency) if priced else None,
        )
        for line, amount in zip(lines, amounts, strict=True)
    ]
    return InvoiceSectionView(title, note, rows, format_money(section.subtotal, currency) if priced else None)


def quantity(line: InvoiceLine) -> str:
    return f"{line.quantity.normalize():,f}"


def period_label(invoice: Invoice) -> str:
    return f"{format_date(invoice.period, 'j F Y')} – {format_date(period_end(invoice), 'j F Y')} (UTC)"


def pdf_filename(invoice: Invoice) -> str:
    """`MC-0000042.pdf`; anything but letters, digits, dot, dash and underscore becomes `_`."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", invoice.number) + ".pdf"


# --- The signed download link -------------------------------------------------------------------------

DOWNLOAD_SALT = "billing.invoice-download"
DOWNLOAD_MAX_AGE = 15 * 60  # seconds


class BadDownloadToken(Exception):
    """A download token that is malformed, tampered with or expired."""


def download_token(invoice: Invoice, account: Account) -> str:
    """A token for `invoice`'s PDF as `account` (the API key's account) sees it, valid for
    DOWNLOAD_MAX_AGE: the two public ids, timestamped and signed with SECRET_KEY."""
    return signing.TimestampSigner(salt=DOWNLOAD_SALT).sign(f"{account.public_id}.{invoice.public_id}")


def read_download_token(token: str) -> tuple[uuid.UUID, uuid.UUID]:
    """(account public id, invoice public id) of a valid token; BadDownloadToken otherwise."""
    try:
        value = signing.TimestampSigner(salt=DOWNLOAD_SALT).unsign(token, max_age=DOWNLOAD_MAX_AGE)
        account_id, invoice_id = value.split(".")
        return uuid.UUID(account_id), uuid.UUID(invoice_id)
    except (signing.BadSignature, ValueError):  # SignatureExpired is a BadSignature
        raise BadDownloadToken from None


# --- The PDF ---------------------------------------------------------------------------------------------

_STYLES = getSampleStyleSheet()
TITLE = ParagraphStyle("InvoiceTitle", parent=_STYLES["Title"], fontName=SANS_BOLD, alignment=0, fontSize=18)
H2 = ParagraphStyle("InvoiceH2", parent=_STYLES["Heading2"], fontName=SANS_BOLD, fontSize=12, keepWithNext=1)
H3 = ParagraphStyle(
    "InvoiceH3", parent=_STYLES["Heading3"], fontName=SANS_BOLD, fontSize=10, keepWithNext=1, spaceBefore=8
)
BODY = ParagraphStyle("InvoiceBody", parent=_STYLES["BodyText"], fontName=SANS, fontSize=9, leading=11)
SMALL = ParagraphStyle("InvoiceSmall", parent=BODY, fontSize=8, textColor=colors.grey)
TOTAL = ParagraphStyle("InvoiceTotal", parent=BODY, fontName=SANS_BOLD, fontSize=12, leading=15)
TOTAL_RIGHT = ParagraphStyle("InvoiceTotalRight", parent=TOTAL, alignment=TA_RIGHT)

WIDTH = A4[0] - 30 * mm  # the frame: 15 mm margins
GRID = colors.HexColor("#cccccc")
HEAD_FILL = colors.HexColor("#f0f0f0")
# A TableStyle command: its op code, the first and last cell of its range, then its arguments.
TableCommand = tuple[str, tuple[int, int], tuple[int, int], *tuple[Any, ...]]

BASE_TABLE: list[TableCommand] = [
    ("FONT", (0, 0), (-1, -1), SANS, 9),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("TOPPADDING", (0, 0), (-1, -1), 2),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
]


def _p(text: str, style: ParagraphStyle = BODY) -> Paragraph:
    """A paragraph of plain text: names and descriptions are data, never markup (fonts.markup
    escapes them, and sets the characters the style's font lacks in a face that has them)."""
    return Paragraph(fonts.markup(text, bold=style.fontName == SANS_BOLD), style)


def invoice_pdf(invoice: Invoice, *, pricing: bool) -> bytes:
    """The invoice as a PDF, as its payer sees it (`pricing` from can_see_pricing)."""
    fonts.register_base()
    view = invoice_view(invoice, pricing=pricing)
    buffer = BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=18 * mm,
        title=f"Invoice {invoice.number}",
        author="Mission Control",
        subject=f"Invoice {invoice.number} for {view.payer.name}, {period_label(invoice)}",
        creator="Mission Control",
        initialFontName=SANS,  # reportlab's default would add Helvetica to every page
    )
    footer = f"Invoice {invoice.number} · {view.payer.name}"

    def on_page(canvas: Canvas, doc: BaseDocTemplate) -> None:
        canvas.saveState()
        canvas.setFillColor(colors.grey)
        fonts.draw_string(canvas, 15 * mm, 10 * mm, footer, 7.5)
        canvas.setFont(SANS, 7.5)
        canvas.drawRightString(A4[0] - 15 * mm, 10 * mm, f"Page {doc.page}")
        canvas.restoreState()

    document.build(_story(view), onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()


def _story(view: InvoiceView) -> list[Flowable]:
    invoice = view.invoice
    return [
        *_header(view),
        _p("Statement", H2),
        _statement(view),
        _p(view.statement_note, SMALL),
        _p("Usage", H2),
        *_usage(view),
        Spacer(1, 6 * mm),
        _total(view),
        Spacer(1, 4 * mm),
        _p(f"Invoice {invoice.number}, issued by {view.issuer}.", SMALL),
    ]


def _header(view: InvoiceView) -> list[Flowable]:
    invoice, payer = view.invoice, view.payer
    issued = f"Issued by {view.issuer}"
    if invoice.finalized_at:
        issued += f" on {format_date(invoice.finalized_at, 'j F Y')}"
    facts = [
        ("Invoice number", _p(invoice.number)),
        ("Period", _p(period_label(invoice))),
        ("Issue date", _p(_day(invoice.issue_date))),
        ("Due date", _p(_day(invoice.due_date))),
        ("Status", _p(view.payment_status_label or invoice.get_status_display())),
        ("Currency", _p(invoice.currency)),
    ]
    if view.issuer_party is not None and view.bill_to_party is not None:
        facts[2:2] = [("Issued by", _party_block(view.issuer_party)), ("Bill to", _party_block(view.bill_to_party))]
    else:
        facts[2:2] = [("Issued to", _party_block(Party(payer.name, [], "", payer.email)))]
    table = Table(facts, colWidths=[35 * mm, WIDTH - 35 * mm], hAlign="LEFT")
    table.setStyle(TableStyle([*BASE_TABLE, ("FONT", (0, 0), (0, -1), SANS_BOLD, 9)]))
    return [_p(f"Invoice {invoice.number}", TITLE), _p(issued, BODY), Spacer(1, 3 * mm), table]


def _day(day: date | None) -> str:
    return format_date(day, "j F Y") if day is not None else "—"


def _party_block(party: Party) -> Paragraph:
    """Name, address, tax id and e-mail, one a line; every part is data, escaped by fonts.markup."""
    small = [*party.lines, *([f"Tax id {party.tax_id}"] if party.tax_id else []), party.email]
    rest = "".join(f"<br/><font size=8>{fonts.markup(line)}</font>" for line in small if line)
    return Paragraph(f"{fonts.markup(party.name)}{rest}", BODY)


def _statement(view: InvoiceView) -> Table:
    table = Table(view.statement, colWidths=[80 * mm, 45 * mm], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                *BASE_TABLE,
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("LINEBELOW", (0, 0), (-1, -2), 0.25, GRID),
                ("FONT", (0, -1), (-1, -1), SANS_BOLD, 9),
            ]
        )
    )
    return table


def _usage(view: InvoiceView) -> list[Flowable]:
    if not view.sections:
        return [_p(f"No usage in {format_date(view.invoice.period, 'F Y')}.")]
    flowables: list[Flowable] = []
    if not view.priced:
        flowables.append(
            _p(
                "Quantities only: the amount of each line is not shown for this account. "
                "The total below is what the invoice charges.",
                SMALL,
            )
        )
    for section in view.sections:
        heading = fonts.markup(section.title, bold=True)
        if section.note:
            heading += f'  <font name="{SANS}" size=8 color="grey">{fonts.markup(section.note)}</font>'
        flowables += [Paragraph(heading, H3), _section_table(section, view.priced)]
    return flowables


def _section_table(section: InvoiceSectionView, priced: bool) -> Table:
    rows: list[list[Paragraph | str | None]]
    if priced:
        rows = [["Product", "Quantity", "Amount"]]
        rows += [[_p(row.description), row.quantity, row.amount] for row in section.rows]
        rows.append([_p(f"Subtotal {section.title}"), "", section.subtotal])
        widths = [WIDTH - 80 * mm, 40 * mm, 40 * mm]
    else:
        rows = [["Product", "Quantity"]]
        rows += [[_p(row.description), row.quantity] for row in section.rows]
        widths = [WIDTH - 40 * mm, 40 * mm]
    style: list[TableCommand] = [
        *BASE_TABLE,
        ("FONT", (0, 0), (-1, 0), SANS_BOLD, 9),
        ("BACKGROUND", (0, 0), (-1, 0), HEAD_FILL),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, GRID),
    ]
    if priced:
        style += [
            ("FONT", (0, -1), (-1, -1), SANS_BOLD, 9),
            ("LINEABOVE", (0, -1), (-1, -1), 0.75, colors.black),
        ]
    table = Table(rows, colWidths=widths, repeatRows=1, hAlign="LEFT")  # the head repeats on every page
    table.setStyle(TableStyle(style))
    return table


def _total(view: InvoiceView) -> Table:
    table = Table([[_p("Total", TOTAL), _p(view.total, TOTAL_RIGHT)]], colWidths=[WIDTH - 60 * mm, 60 * mm])
    table.setStyle(TableStyle([*BASE_TABLE, ("LINEABOVE", (0, 0), (-1, 0), 1.5, colors.black)]))
    return table


# --- A credit note's PDF (billing.invoices.credit_notes) ----------------------------------------------


def credit_note_filename(note: CreditNote) -> str:
    """`CN-0000007.pdf`, the same characters as pdf_filename."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", note.number) + ".pdf"


def credit_note_pdf(note: CreditNote, *, pricing: bool) -> bytes:
    """The credit note as a PDF, as the invoice's payer sees it: with pricing hidden, the amount
    credited and the reason only, no per-line amount."""
    fonts.register_base()
    invoice = note.invoice
    payer = invoice.bill_to
    buffer = BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=18 * mm,
        title=f"Credit note {note.number}",
        author="Mission Control",
        subject=f"Credit note {note.number} against invoice {invoice.number} for {payer.name}",
        creator="Mission Control",
        initialFontName=SANS,
    )
    footer = f"Credit note {note.number} · {payer.name}"

    def on_page(canvas: Canvas, doc: BaseDocTemplate) -> None:
        canvas.saveState()
        canvas.setFillColor(colors.grey)
        fonts.draw_string(canvas, 15 * mm, 10 * mm, footer, 7.5)
        canvas.restoreState()

    document.build(_credit_note_story(note, pricing=pricing), onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()


def _credit_note_story(note: CreditNote, *, pricing: bool) -> list[Flowable]:
    invoice, currency = note.invoice, note.currency
    issuer = issuer_name(invoice)
    facts = [
        ("Credit note", _p(note.number)),
        ("Date", _p(format_date(note.created_at, "j F Y"))),
        ("Against invoice", _p(f"{invoice.number}, {period_label(invoice)}")),
        (
            "Issued to",
            Paragraph(
                f"{fonts.markup(invoice.bill_to.name)}<br/><font size=8>{fonts.markup(invoice.bill_to.email)}</font>",
                BODY,
            ),
        ),
        ("Currency", _p(currency)),
    ]
    head = Table(facts, colWidths=[35 * mm, WIDTH - 35 * mm], hAlign="LEFT")
    head.setStyle(TableStyle([*BASE_TABLE, ("FONT", (0, 0), (0, -1), SANS_BOLD, 9)]))
    story: list[Flowable] = [
        _p(f"Credit note {note.number}", TITLE),
        _p(f"Issued by {issuer} on {format_date(note.created_at, 'j F Y')}", BODY),
        Spacer(1, 3 * mm),
        head,
        _p("Reason", H2),
        _p(note.reason),
    ]
    lines = list(note.lines.all()) if pricing else []
    if lines:
        rows: list[list[Paragraph | str]] = [["Invoice line", "Credited"]]
        rows += [[_p(line.description), format_money(line.amount, currency)] for line in lines]
        table = Table(rows, colWidths=[WIDTH - 40 * mm, 40 * mm], repeatRows=1, hAlign="LEFT")
        table.setStyle(
            TableStyle(
                [
                    *BASE_TABLE,
                    ("FONT", (0, 0), (-1, 0), SANS_BOLD, 9),
                    ("BACKGROUND", (0, 0), (-1, 0), HEAD_FILL),
                    ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                    ("LINEBELOW", (0, 0), (-1, -1), 0.25, GRID),
                ]
            )
        )
        story += [_p("Lines credited", H2), table]
    so_far = CreditNote.objects.filter(invoice=invoice, pk__lte=note.pk).aggregate(total=Sum("amount"))["total"]
    so_far = so_far or Decimal("0.00")
    summary = [
        ("Invoice total", format_money(invoice.total, currency)),
        ("Credited so far, this note included", format_money(so_far, currency)),
        ("Left to credit", format_money(max(Decimal("0.00"), invoice.total - so_far), currency)),
    ]
    table = Table(summary, colWidths=[80 * mm, 45 * mm], hAlign="LEFT")
    table.setStyle(
        TableStyle([*BASE_TABLE, ("ALIGN", (1, 0), (1, -1), "RIGHT"), ("LINEBELOW", (0, 0), (-1, -2), 0.25, GRID)])
    )
    credited = Table(
        [[_p("Amount credited", TOTAL), _p(format_money(note.amount, currency), TOTAL_RIGHT)]],
        colWidths=[WIDTH - 60 * mm, 60 * mm],
    )
    credited.setStyle(TableStyle([*BASE_TABLE, ("LINEABOVE", (0, 0), (-1, 0), 1.5, colors.black)]))
    if invoice.issuer is None:
        where = (
            f"Credited to the balance of {invoice.bill_to.name} on {format_date(note.created_at, 'j F Y')}: it is "
            f"among the credits of the statement of {format_date(note.created_at, 'F Y')}."
        )
    else:
        where = f"A credit from {invoice.issuer.name}: it reduces what is owed to {invoice.issuer.name} on the invoice."
    return [*story, Spacer(1, 6 * mm), credited, Spacer(1, 3 * mm), table, Spacer(1, 4 * mm), _p(where, SMALL)]
