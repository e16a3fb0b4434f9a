"""The account switcher's search: the person's own accounts whose name matches, a page at a time.

As HTML it is a page of its own (the switcher's form without JavaScript); with `format=json` it
feeds the switcher's type-ahead (static/js/portal.js), which writes the names as text."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts.acting import SignedInRequest
from accounts.models import Membership
from portal.navigation import memberships_matching, names_held_twice

PAGE_SIZE = 20
QUERY_MAX = 100


def _as_json(membership: Membership, duplicates: set[str]) -> dict[str, object]:
    account = membership.account
    twice = account.name.lower() in duplicates
    return {
        "name": account.name,
        # the owner e-mail, where another of the person's accounts has the same name
        "owner_email": account.email if twice else None,
        "url": reverse("dashboard", args=[account.public_id]),
        "role": membership.get_role_display(),
        "status": account.status,
        "status_label": account.get_status_display(),
        "manager": account.manager.name if account.manager else None,
    }


@login_required
@require_GET
def account_switcher(request: SignedInRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:QUERY_MAX]
    page = Paginator(memberships_matching(request.user, query), PAGE_SIZE).get_page(request.GET.get("page"))
    duplicates = names_held_twice(request.user, (m.account.name for m in page))
    if request.GET.get("format") == "json":
        return JsonResponse(
            {
                "data": [_as_json(m, duplicates) for m in page],
                "meta": {
                    "page_number": page.number,
                    "total_pages": page.paginator.num_pages,
                    "total_results": page.paginator.count,
                },
            }
        )
    return render(request, "portal/account_switcher.html", {"page": page, "query": query, "duplicates": duplicates})
