"""A managed account's hub tabs that read billing: its invoices, and its balance with the manager's
transfers to it. They open to the manager's owners, admins and billing members (RESELL, which
exists only on managers), through the same access helper as the other tabs.

What the manager sees of a managed account's money is what the manager's own pages already show
(billing.invoices.selectors): the reseller invoices it issued to the account, the account's balance
(also on the managed-accounts list), and the transfers the manager made to it. A separately billed
account's platform invoices, payments and ledger are the account's own: its manager reads them
only by logging in as it, under that rule and the account's pricing visibility.
"""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts import managed_hub
from accounts.access import managed_account_access
from accounts.acting import SignedInRequest
from accounts.permissions import RESELL
from billing.invoices.selectors import issued_invoices_of
from billing.ledger import selectors as ledger_selectors
from billing.models import LedgerEntry
from billing.money import format_money
from billing.tables import IssuedInvoiceTable, LedgerEntryTable
from billing.views import ENTRIES_PER_PAGE, INVOICES_PER_PAGE
from portal.pagination import paginate_table


@login_required
@require_GET
def managed_invoices(request: SignedInRequest, account_id: UUID, managed_id: UUID) -> HttpResponse:
    """The reseller invoices the manager issued to this account (any month it was billed by roll-up),
    with the same table and filter as the manager's Reseller invoices page."""
    access, managed = managed_account_access(request, account_id, managed_id, RESELL)
    table = IssuedInvoiceTable(issued_invoices_of(access.account).filter(bill_to=managed), account=access.account)
    paginate_table(request, table, per_page=INVOICES_PER_PAGE)
    context = managed_hub.hub_context(request, access, managed, managed_hub.INVOICES) | {
        "table": table,
        "billed_separately": managed.has_own_balance,
    }
    return render(request, "accounts/managed_hub/invoices.html", context)


@login_required
@require_GET
def managed_balance(request: SignedInRequest, account_id: UUID, managed_id: UUID) -> HttpResponse:
    """Separately billed: the account's balance, credit limit and available credit, and the manager's
    transfers to it, newest first. Roll-up: it has no balance; its usage is billed to the manager."""
    access, managed = managed_account_access(request, account_id, managed_id, RESELL)
    context = managed_hub.hub_context(request, access, managed, managed_hub.BALANCE)
    if ledger_selectors.has_own_balance(managed):
        balance = ledger_selectors.current_balance(managed)
        transfers = LedgerEntry.objects.filter(
            account=access.account, kind=LedgerEntry.Kind.TRANSFER_OUT, related_account=managed
        ).order_by("-created_at", "-id")
        table = LedgerEntryTable(transfers, empty_text=f"You have not transferred credit to {managed.name} yet.")
        paginate_table(request, table, per_page=ENTRIES_PER_PAGE)
        context |= {
            "balance": {
                "amount": format_money(balance.amount, balance.currency),
                "credit_limit": format_money(balance.credit_limit, balance.currency),
                "available": format_money(balance.available_credit, balance.currency),
                "negative": balance.amount < 0,
            },
            "transfers": table,
            "transfer_refusal": ledger_selectors.transfer_refusal(managed),
        }
    return render(request, "accounts/managed_hub/balance.html", context)
