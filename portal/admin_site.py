"""The admin site at /staff/. Platform staff sign in through allauth like everyone else (its rate
limits, its MFA step), and the admin opens only in a session that passed MFA: a staff session
signed in without it (a plain Django login, or signed in before the authenticator was added) is
sent to the MFA step, and staff without an authenticator to set one up."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

from accounts.mfa import has_second_factor, session_passed_mfa


class StaffAdminSite(admin.AdminSite):
    site_header = "Mission Control platform staff"
    site_title = "Mission Control staff"
    index_title = "Platform administration"

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and session_passed_mfa(request)

    @method_decorator(never_cache)
    @login_not_required
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """No sign-in form of its own: the way to allauth's sign-in, or to the step this session lacks."""
        next_url = self._next_url(request)
        user = request.user
        if not user.is_authenticated:
            return _redirect("account_login", next_url)
        if not (user.is_active and user.is_staff):
            raise PermissionDenied("The admin site is for platform staff.")
        if not has_second_factor(user):
            messages.info(request, "Platform staff need two-factor authentication: set it up, then open the admin.")
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        if not session_passed_mfa(request):
            return _redirect("mfa_reauthenticate", next_url)
        return HttpResponseRedirect(next_url)

    def _next_url(self, request: HttpRequest) -> str:
        """`next` when it is a page of this admin on this host, else the admin's index."""
        index = reverse("admin:index", current_app=self.name)
        candidate = request.GET.get(REDIRECT_FIELD_NAME) or request.POST.get(REDIRECT_FIELD_NAME) or ""
        safe = url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        return candidate if safe and candidate.startswith(index) else index


def _redirect(url_name: str, next_url: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(f"{reverse(url_name)}?{urlencode({REDIRECT_FIELD_NAME: next_url})}")
