"""A managed account's Usage tab (accounts.managed_hub): the manager's own usage report scoped to
that account (`scope=<its id>`), summarised by product over the report's default range, with the
way into the full report (chart, any range, records, CSV) under the same filter."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts import managed_hub
from accounts.access import managed_account_access
from accounts.acting import SignedInRequest
from accounts.permissions import VIEW_REPORTS, can_see_pricing
from billing.usage import selectors
from billing.usage.selectors import GROUP_BY_DAY, GROUP_BY_PRODUCT, UsageRow
from reporting.forms import UsageReportForm
from reporting.tables import UsageSummaryTable
from reporting.views import summary_rows


@login_required
@require_GET
def managed_usage(request: SignedInRequest, account_id: UUID, managed_id: UUID) -> HttpResponse:
    access, managed = managed_account_access(request, account_id, managed_id, VIEW_REPORTS)
    manager = access.account
    scoped = QueryDict(mutable=True)
    scoped.update({"scope": str(managed.public_id), "group_by": GROUP_BY_PRODUCT})
    form = UsageReportForm(scoped, account=manager)
    context = managed_hub.hub_context(request, access, managed, managed_hub.USAGE)
    report = reverse("usage_report", args=[manager.public_id])
    context["report_url"] = f"{report}?scope={managed.public_id}"
    if form.is_valid():  # the manager's own managed account: always, unless the form itself changes
        filters = form.filters()
        rows = summary_rows(filters)
        totals = selectors.usage_totals(rows)
        pricing = can_see_pricing(manager)
        table = UsageSummaryTable(
            rows,
            group_by=filters.group_by,
            totals=totals,
            pricing=pricing,
            link=_product_link(report, managed_id),
            orderable=False,  # a summary: the full report sorts and pages
        )
        context |= {"filters": filters, "table": table, "has_rows": bool(rows), "pricing": pricing}
    return render(request, "accounts/managed_hub/usage.html", context)


def _product_link(report: str, managed_id: UUID) -> Callable[[UsageRow], str]:
    """A product of the summary leads to the full report of this account and product, by day."""

    def link(row: UsageRow) -> str:
        query = QueryDict(mutable=True)
        query.update({"scope": str(managed_id), "product": str(row.key), "group_by": GROUP_BY_DAY})
        return f"{report}?{query.urlencode()}"

    return link
