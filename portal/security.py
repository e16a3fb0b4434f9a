"""Response headers that make the portal hard to break by default (issue 11, holes 1 and 8).

- Content-Security-Policy on every response: scripts, styles, images, fonts and requests from this
  site only, plus Stripe.js (its script and card frames, and the API it talks to). No inline script,
  no inline style (style="" or <style>), no eval: a name that slips into the page as markup stays
  inert. Templates load every script and style from static files; JavaScript sets styles through
  the CSSOM (element.style.left = ...), which the policy allows.
- Cache-Control that forbids storing any signed-in answer (HTML, JSON, CSV, PDF), or any other
  page whose view chose no caching of its own. Static files are served by WhiteNoise before this
  middleware runs and keep their caching.

X-Frame-Options, Referrer-Policy and nosniff come from Django's own middleware and settings.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers

STRIPE_JS_ORIGIN = "https://js.stripe.com"
STRIPE_API_ORIGIN = "https://api.stripe.com"
# Stripe's 3-D Secure step opens a frame from here; localstripe asks in a dialog of its own.
STRIPE_HOOKS_ORIGIN = "https://hooks.stripe.com"


def _origin(url: str, setting: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImproperlyConfigured(f"{setting} must be an http(s):// URL, not {url!r}.")
    return f"{parts.scheme}://{parts.netloc}"


@cache
def build_content_security_policy(*, stripe_js_url: str, stripe_api_base: str) -> str:
    """The policy, for Stripe.js at `stripe_js_url` and its API at `stripe_api_base` (empty: Stripe).
    No 'unsafe-eval' and no 'unsafe-inline': the portal's own scripts are static files, its charts SVG."""
    stripe_js = _origin(stripe_js_url, "STRIPE_JS_URL")
    stripe_api = _origin(stripe_api_base, "STRIPE_API_BASE") if stripe_api_base else STRIPE_API_ORIGIN
    stripe_frames = [stripe_js, STRIPE_HOOKS_ORIGIN] if stripe_js == STRIPE_JS_ORIGIN else [stripe_js]
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", stripe_js],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],  # data: for allauth's TOTP QR code
        "connect-src": ["'self'", stripe_api],
        "frame-src": stripe_frames,
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(" ".join([name, *dict.fromkeys(sources)]) for name, sources in directives.items())


def content_security_policy() -> str:
    """The policy for the current settings (built once per Stripe configuration)."""
    return build_content_security_policy(stripe_js_url=settings.STRIPE_JS_URL, stripe_api_base=settings.STRIPE_API_BASE)


def _signed_in(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated) or "HTTP_AUTHORIZATION" in request.META


class SecurityHeadersMiddleware:
    """Sets the Content-Security-Policy and the Cache-Control of every response but static files."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        response["Content-Security-Policy"] = content_security_policy()
        if _signed_in(request) or not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response
