"""An account's overview page, the first page of its portal. Here rather than in accounts.views: it
reads billing (balances, usage totals, invoices), and accounts never imports billing."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.access import account_access
from accounts.permissions import VIEW_ACCOUNT
from reporting import dashboard


@login_required
@require_GET
def overview(request: HttpRequest, account_id: UUID) -> HttpResponse:
    """A manager's overview, or a managed or standard account's. While a manager is logged in as a
    managed account, the request's user is that account's owner: it sees the managed account's."""
    access = account_access(request, account_id, VIEW_ACCOUNT)
    account = access.account
    context: dict[str, object] = {"access": access, "account": account, "service": dashboard.service_alert(account)}
    if account.is_manager:
        context["manager"] = dashboard.manager_overview(manager=account, can=access.can)
        context["low_balance"] = dashboard.LOW_BALANCE
    else:
        context["overview"] = dashboard.account_overview(account=account, can=access.can)
    return render(request, "accounts/dashboard.html", context)
