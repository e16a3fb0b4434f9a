"""Security headers on every page of the portal (issue 11, hole 8 and its "security headers test").

The pages are the rows of tests/test_authorization_matrix.py's MATRIX (which that module keeps
complete: every portal URL has a row), each asked by a persona the row lets in, plus the
third-party pages (sign-in, sign-up, MFA, the admin site). Every answer carries the
Content-Security-Policy, X-Frame-Options DENY, the Referrer-Policy and nosniff; every answer to a
signed-in person (HTML, JSON, CSV, PDF) is never cached, and neither is a public page; static
files keep their caching.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.actor import Actor
from portal.security import build_content_security_policy, content_security_policy
from tests.test_authorization_matrix import MATRIX, Row
from tests.test_settings import PRODUCTION_ENV, _manage

# The persona that shows a row's page, in order of preference: the owner of world.manager, the
# owner of world.managed, then the manager acting as it, then whoever else the row lets in.
PREFERRED = ("owner", "managed_owner", "manager_acting", "admin", "billing", "reporting", "standard_owner")


def _signed_in_cases():
    for name, rows in MATRIX.items():
        for row in rows:
            persona = next((p for p in PREFERRED if row.expect[p].status == 200), None)
            if persona is not None:
                yield pytest.param(name, row, persona, id=f"{name}@{row.target.label}-{row.method}-{persona}")


def _public_cases():
    for name, rows in MATRIX.items():
        for row in rows:
            if row.method == "GET" and row.expect["anonymous"].status == 200:
                yield pytest.param(name, row, id=f"{name}@{row.target.label}")


SIGNED_IN = list(_signed_in_cases())
PUBLIC = list(_public_cases())
# Pages of django-allauth and the admin site, which the matrix leaves out; any status will do.
THIRD_PARTY_PUBLIC = ["account_login", "account_signup", "account_reset_password", "admin:login"]
THIRD_PARTY_SIGNED_IN = ["mfa_index", "account_change_password", "account_email"]


def _ask(client: Client, world, name: str, row: Row):
    url = reverse(name, kwargs=row.target.kwargs(world))
    return client.get(url) if row.method == "GET" else client.post(url, row.data)


def _directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in parsed, f"{name} twice in {header!r}"
        parsed[name] = sources
    return parsed


def assert_security_headers(response, where: str) -> None:
    assert response["Content-Security-Policy"] == content_security_policy(), where
    assert "Content-Security-Policy-Report-Only" not in response, where
    assert response["X-Frame-Options"] == "DENY", where
    assert response["Referrer-Policy"] == "same-origin", where
    assert response["X-Content-Type-Options"] == "nosniff", where


def assert_not_cached(response, where: str) -> None:
    cache_control = {part.strip() for part in response.get("Cache-Control", "").split(",")}
    assert {"no-store", "private"} <= cache_control, f"{where}: Cache-Control {response.get('Cache-Control')!r}"
    assert "public" not in cache_control, where


# --- The policy ------------------------------------------------------------------------------------------


def test_the_policy_is_strict():
    policy = _directives(content_security_policy())
    stripe = "http://127.0.0.1:" + str(urlsplit(settings.STRIPE_JS_URL).port)  # a closed port, or localstripe's
    assert policy == {
        "default-src": ["'self'"],
        "script-src": ["'self'", stripe],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'", stripe],
        "frame-src": [stripe],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    everything = [source for sources in policy.values() for source in sources]
    assert not {"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "http:", "https:"} & set(everything)
    assert not any("*" in source for source in policy["script-src"] + policy["style-src"])


def test_in_production_the_policy_lets_in_stripe_and_nothing_else():
    policy = _directives(build_content_security_policy(stripe_js_url="https://js.stripe.com/v3/", stripe_api_base=""))
    assert policy["script-src"] == ["'self'", "https://js.stripe.com"]
    assert policy["frame-src"] == ["https://js.stripe.com", "https://hooks.stripe.com"]  # 3-D Secure
    assert policy["connect-src"] == ["'self'", "https://api.stripe.com"]
    assert policy["style-src"] == ["'self'"]


def test_production_refuses_a_stripe_js_url_that_is_not_https():
    result = _manage("check", env={**PRODUCTION_ENV, "STRIPE_JS_URL": "http://js.stripe.example.com/v3/"})
    assert result.returncode != 0
    assert "STRIPE_JS_URL must be an https:// URL in production" in result.stderr


def test_the_policy_follows_stripe_to_wherever_the_settings_point(settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:4242"
    settings.STRIPE_JS_URL = "http://127.0.0.1:4242/js.stripe.com/v3/"
    policy = _directives(content_security_policy())
    assert policy["script-src"] == ["'self'", "http://127.0.0.1:4242"]
    assert policy["frame-src"] == ["http://127.0.0.1:4242"]


# --- Every page ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url_name", "row", "persona_name"), SIGNED_IN)
def test_every_signed_in_page_has_the_security_headers(world, persona, url_name, row, persona_name):
    response = _ask(persona(persona_name), world, url_name, row)
    where = f"{row.method} {url_name} as {persona_name}"
    assert response.status_code == 200, where
    assert_security_headers(response, where)


@pytest.mark.parametrize(("url_name", "row", "persona_name"), SIGNED_IN)
def test_hole_8_signed_in_pages_are_not_cached(world, persona, url_name, row, persona_name):
    response = _ask(persona(persona_name), world, url_name, row)
    where = f"{row.method} {url_name} as {persona_name} ({response.get('Content-Type')})"
    assert response.status_code == 200, where
    assert_not_cached(response, where)


def test_the_signed_in_pages_include_html_json_csv_and_pdf():
    names = {case.values[0] for case in SIGNED_IN}
    assert {"dashboard", "healthz", "usage_report_csv", "invoice_pdf", "api_key_create"} <= names


@pytest.mark.parametrize(("url_name", "row"), PUBLIC)
def test_every_public_page_has_the_security_headers_and_is_not_cached(world, url_name, row):
    response = _ask(Client(), world, url_name, row)
    assert response.status_code == 200, url_name
    assert_security_headers(response, url_name)
    assert_not_cached(response, url_name)


@pytest.mark.parametrize("url_name", THIRD_PARTY_PUBLIC)
def test_third_party_public_pages_have_the_security_headers(db, client, url_name):
    response = client.get(reverse(url_name))
    assert_security_headers(response, url_name)
    assert_not_cached(response, url_name)


@pytest.mark.parametrize("url_name", THIRD_PARTY_SIGNED_IN)
def test_third_party_signed_in_pages_have_the_security_headers(owner_client, url_name):
    response = owner_client.get(reverse(url_name))
    assert_security_headers(response, url_name)
    assert_not_cached(response, url_name)


def test_hole_8_api_answers_are_not_cached(world):
    _, raw_key = services.create_api_key(account=world.manager, name="Headers", actor=Actor(user=world.users["owner"]))
    response = Client().get(reverse("api_balance"), HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    assert_not_cached(response, "GET /v2/balance with an API key")


def test_a_missing_page_has_the_security_headers(owner_client):
    response = owner_client.get("/no/such/page/")
    assert response.status_code == 404
    assert_security_headers(response, "404")
    assert_not_cached(response, "404")


def test_static_files_keep_their_caching(owner_client):
    response = owner_client.get(f"/{settings.STATIC_URL.strip('/')}/css/portal.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
    assert "max-age" in response.get("Cache-Control", "")


# --- The templates -----------------------------------------------------------------------------------------

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# What the policy refuses: scripts and styles belong in static/js and static/css.
INLINE = {
    "inline <script>": re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE),
    "<style> block": re.compile(r"<style\b", re.IGNORECASE),
    "style attribute": re.compile(r"\sstyle\s*=", re.IGNORECASE),
    "event handler attribute": re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}


def test_templates_have_no_inline_script_style_or_event_handler():
    found = [
        f"{path.relative_to(TEMPLATES)}:{number}: {what}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for what, pattern in INLINE.items()
        if pattern.search(line)
    ]
    assert found == [], "the Content-Security-Policy blocks these; move them to static files:\n" + "\n".join(found)
