from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from accounts import acting


class ActingMiddleware:
    """Exposes `request.acting` while a manager is logged in as a managed account, and ends that
    session as soon as it may not go on (`acting.lapse`): its time is up, the log-in-as rule no
    longer holds (back to the real person, as Return does), or the real person's password changed
    (signed out). A session past the end its first log-in-as pinned is signed out too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: acting.ActingRequest) -> HttpResponse:
        request.acting = acting.current(request) if request.user.is_authenticated else None
        if request.user.is_authenticated and acting.session_outlived(request):
            return self._sign_out(request, reason="session_expired", message="Your session has expired. Sign in again.")
        if request.acting is not None:
            ending = acting.lapse(request, request.acting)
            if ending is not None:
                return self._end(request, ending)
        return self.get_response(request)

    def _end(self, request: acting.ActingRequest, ending: acting.Ending) -> HttpResponse:
        if ending.sign_out:
            return self._sign_out(request, reason=ending.reason, message=ending.message)
        state = acting.end(request, reason=ending.reason, detail=ending.detail)
        request.acting = None
        messages.info(request, ending.message)
        if ending.reason == "expired":
            managed = state.managed_account
            return redirect(reverse("managed_detail", args=[managed.managed_by.public_id, managed.public_id]))
        return redirect("home")  # the rule no longer holds: the managed account may be out of reach

    def _sign_out(self, request: acting.ActingRequest, *, reason: str, message: str) -> HttpResponse:
        if request.acting is not None:
            acting.sign_out(request, reason=reason)
        else:
            logout(request)
        request.acting = None
        messages.info(request, message)
        return redirect(settings.LOGIN_URL)

    def process_view(
        self,
        request: acting.ActingRequest,
        view_func: Callable[..., HttpResponse],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        # The person acting must not change the impersonated owner's password, e-mail, two-factor
        # settings or sessions: allauth's pages are closed while acting (Return is the way out).
        if request.acting is not None and view_func.__module__.startswith("allauth."):
            raise PermissionDenied(
                "Sign-in and security settings are not available while logged in as a managed account. "
                "Return to your own account first."
            )
        return None
