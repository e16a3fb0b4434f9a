from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import reverse

from accounts import acting


class ActingMiddleware:
    """Exposes `request.acting` while a manager is logged in as a managed account, and ends that
    session once its time is up."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.acting = acting.current(request) if request.user.is_authenticated else None
        if request.acting is not None and request.acting.expired:
            state = acting.end(request, reason="expired")
            request.acting = None
            messages.info(
                request,
                f"Your session as {state.managed_account.name} reached its time limit; "
                "you are back in your own account.",
            )
            return redirect(
                reverse(
                    "managed_detail", args=[state.managed_account.manager.public_id, state.managed_account.public_id]
                )
            )
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        # The person acting must not change the impersonated owner's password, e-mail, two-factor
        # settings or sessions: allauth's pages are closed while acting (Return is the way out).
        if request.acting is not None and view_func.__module__.startswith("allauth."):
            raise PermissionDenied(
                "Sign-in and security settings are not available while logged in as a managed account. "
                "Return to your own account first."
            )
        return None
