"""Links that leave the request they were made in (e-mails, PDFs, tasks) start with SITE_URL, one
setting, never with whatever Host header a request carried."""

from urllib.parse import urlsplit, urlunsplit

from django.conf import settings


def absolute_url(location: str) -> str:
    """`location` (a path, or an absolute URL whose origin is replaced) on the portal's SITE_URL."""
    parts = urlsplit(location)
    path = urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))
    return f"{settings.SITE_URL}{path}"
