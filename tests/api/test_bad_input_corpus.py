"""The bad-input corpus against the v2 API (portal/api_urls.py): every POST and PATCH endpoint gets
truncated, oversized, mistyped, wrongly encoded and nested-to-death bodies, huge and negative
numbers, SQL and HTML in its text fields; every GET its list filters with the same; unknown ids and
the ids of other tenants everywhere. Each case must get a 4xx in the contract's error shape
(../shared/API.md) with a message, write nothing (row counts of every table a request could touch,
and the accounts' own fields, unchanged) and never a 500.

Text that is merely odd (SQL or HTML in a business name or an idempotency key, a filter value that
matches nothing) is valid input: it is stored or searched for as the literal text it is, and the
tests at the end check exactly that. tests/api/test_api_bad_input.py covers the contract's own
refusals (unknown fields, wrong types, paging bounds); this corpus does not repeat them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date

import pytest
from django.conf import settings
from django.test import Client

from accounts import services
from accounts.actor import Actor
from accounts.models import Account, ApiKey, AuditEvent, Invitation, Membership, User
from billing.models import (
    Balance,
    DailyUsage,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    MonthlyUsage,
    UsageBatch,
    UsageRecord,
)
from notifications.models import AlertChoice, LowBalanceThreshold
from tests.api.conftest import assert_error, owner_of
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import create_endpoint

SQL = "x'); DROP TABLE accounts_account; --"
SQL_OR = "' OR '1'='1"
HTML = "<script>alert('mc')</script>"
BIG = "\u0001big"  # stands for the JSON number 1e400 (json.dumps would write an infinite float as Infinity)
RANDOM_ID = "6f1c7a52-2d4e-4c1f-9d7e-1e2a3b4c5d6e"
GOOD_ROW = {"product": "sms.outbound", "quantity": "1", "started_at": "2025-03-03T09:15:00Z", "idempotency_key": "k-1"}


def db_state() -> tuple:
    """What no refused request may change. (ApiKey.last_used_at is bookkeeping of the key itself.)"""
    counts = tuple(
        model.objects.count()
        for model in (
            Account,
            User,
            Membership,
            Invitation,
            ApiKey,
            AuditEvent,
            UsageRecord,
            UsageBatch,
            DailyUsage,
            MonthlyUsage,
            LedgerEntry,
            Balance,
            Invoice,
            InvoiceLine,
            WebhookEndpoint,
            WebhookDelivery,
            LowBalanceThreshold,
            AlertChoice,
        )  # fmt: skip
    )
    accounts = sorted(
        Account.objects.values_list(
            "pk", "name", "email", "status", "billing_mode", "pricing_hidden", "allow_custom_pricing", "updated_at"
        )  # fmt: skip
    )
    endpoints = sorted(WebhookEndpoint.objects.values_list("pk", "url", "description", "enabled", "updated_at"))
    deliveries = sorted(WebhookDelivery.objects.values_list("pk", "status", "retry_step", "next_attempt_at"))
    return counts, accounts, endpoints, deliveries


@dataclass
class Tenants:
    """The persona world with an invoice each for the manager and the other manager, and a raw
    client per key: manager, managed (roll-up), standard, other (the other manager)."""

    ids: dict[str, str]
    clients: dict[str, Client] = field(default_factory=dict)


@pytest.fixture
def tenants(world, make_key):
    invoices = {
        name: Invoice.objects.create(
            bill_to=account, period=date(2025, 5, 1), number=f"MC-{n:07d}", status=Invoice.Status.FINALIZED
        )
        for n, (name, account) in enumerate((("invoice", world.manager), ("other_invoice", world.other_manager)), 1)
    }
    hooks = {}  # an endpoint of the manager's and of the other manager's, each with a pending delivery
    for name, manager, managed in (("", world.manager, world.managed), ("other_", world.other_manager,
                                                                          world.other_managed)):  # fmt: skip
        actor = Actor(user=owner_of(manager))
        made, _ = create_endpoint(account=manager, url="https://hooks.example.com/mc", actor=actor,
                                  event_types=["managed_account.updated"])  # fmt: skip
        services.update_managed_account(managed=managed, actor=actor, name=f"{managed.name} Renamed")
        hooks[f"{name}endpoint"] = str(made.public_id)
        hooks[f"{name}delivery"] = str(WebhookDelivery.objects.get(endpoint=made).public_id)  # not sent: no commit
    ids = {
        **hooks,
        "setting": "balance.low",
        "managed": str(world.managed.public_id),
        "sibling": str(world.sibling.public_id),
        "other_managed": str(world.other_managed.public_id),
        "manager": str(world.manager.public_id),
        "managed_owner": str(world.users["managed_owner"].public_id),
        "transfer_id": RANDOM_ID,  # no transfer exists: every id is another tenant's or none
        **{name: str(invoice.public_id) for name, invoice in invoices.items()},
    }
    keys = {
        "manager": make_key(world.manager),
        "managed": make_key(world.managed),
        "standard": make_key(world.standard),
        "other": make_key(world.other_manager),
    }
    result = Tenants(ids)
    for name, raw in keys.items():
        result.clients[name] = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {raw}")
    return result


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # formatted with Tenants.ids
    status: int
    body: object = None  # sent as JSON unless `raw` is given
    raw: bytes | None = None
    content_type: str = "application/json"
    params: dict | None = None
    key: str = "manager"
    pointer: str | None = None
    parameter: str | None = None


def send(tenants: Tenants, case: Case):
    client = tenants.clients[case.key]
    path = "/v2/" + case.path.format(**tenants.ids)
    if case.method == "GET":
        return client.get(path, case.params or {})
    data = case.raw if case.raw is not None else json.dumps(case.body).replace(json.dumps(BIG), "1e400").encode()
    return getattr(client, case.method.lower())(path, data=data, content_type=case.content_type)


# --- The write endpoints and what is wrong with their bodies ------------------------------------------------

WRITES = {
    "create": ("POST", "managed_accounts", {"business_name": "Nova Dial", "email": "owner@nova.example.com"}),
    "update": ("PATCH", "managed_accounts/{managed}", {"organization_name": "Alpine Renamed"}),
    "disable": ("POST", "managed_accounts/{managed}/actions/disable", {"reenable_all_connections": True}),
    "enable": ("POST", "managed_accounts/{managed}/actions/enable", {"reenable_all_connections": True}),
    "usage": ("POST", "usage_records", {"records": [GOOD_ROW]}),
    "transfer": ("POST", "credit_transfers", {"from": "{manager}", "to": "{sibling}", "amount": "1.00"}),
    "spend limit": ("PUT", "managed_accounts/{managed}/spend_limit", {"monthly_amount": "10.00"}),
    "own spend limit": ("PUT", "spend_limit", {"monthly_amount": "10.00"}),
    "credit limit": ("PUT", "managed_accounts/{sibling}/credit_limit", {"credit_limit": "1.00"}),
    "webhook create": (
        "POST",
        "webhook_endpoints",
        {"url": "https://hooks.example.com/", "event_types": ["balance.low"]},
    ),
    "webhook update": ("PATCH", "webhook_endpoints/{endpoint}", {"description": "Renamed"}),
    "notification setting": ("PATCH", "notification_settings/{setting}", {"status": "disabled"}),
    "low balance threshold": ("PATCH", "low_balance_threshold", {"threshold_amount": "10.00"}),
}


def _text(body: dict) -> str:
    return json.dumps(body, ensure_ascii=False)


def _body_variants(body: dict) -> dict[str, tuple[int, dict]]:
    """{variant: (status, Case keyword arguments)} of one valid body made bad."""
    text = _text(body)
    accented = _text({**body, "zz": "Café"})  # not ASCII, so its encoding matters
    oversized = text[:-1] + ', "padding": "' + "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + '"}'
    return {
        "truncated at the end": (400, {"raw": text[:-2].encode()}),
        "truncated half-way": (400, {"raw": text[: len(text) // 2].encode()}),
        "only an opening brace": (400, {"raw": b"{"}),
        "oversized": (413, {"raw": oversized.encode()}),
        "text/plain": (415, {"raw": text.encode(), "content_type": "text/plain"}),
        "XML": (415, {"raw": b"<records><record/></records>", "content_type": "application/xml"}),
        "a form": (415, {"raw": b"business_name=Nova", "content_type": "application/x-www-form-urlencoded"}),
        "multipart": (415, {"raw": text.encode(), "content_type": "multipart/form-data; boundary=xyz"}),
        "no content type": (415, {"raw": text.encode(), "content_type": ""}),
        # Django's test client re-encodes a body into the charset it is told: this one arrives as latin-1.
        "a latin-1 charset": (
            415,
            {"raw": accented.encode(), "content_type": "application/json; charset=latin-1"},
        ),  # fmt: skip
        "latin-1 bytes": (400, {"raw": accented.encode("latin-1")}),
        "UTF-16 with a BOM": (400, {"raw": accented.encode("utf-16")}),
        "UTF-16 without a BOM": (400, {"raw": accented.encode("utf-16-le")}),
        "UTF-32": (400, {"raw": accented.encode("utf-32")}),
        "a UTF-8 BOM": (400, {"raw": b"\xef\xbb\xbf" + text.encode()}),
        "a NUL byte inside a string": (400, {"raw": text.replace('"', '"\x00', 1).encode()}),
        "NUL bytes only": (400, {"raw": b"\x00" * 64}),
        "nested ten thousand deep": (400, {"raw": b'{"a": ' * 10_000 + b"1" + b"}" * 10_000}),
        "a 5,000-digit number": (400, {"raw": text[:-1].encode() + b', "n": ' + b"9" * 5000 + b"}"}),
        "an array, not an object": (422, {"raw": b"[" + text.encode() + b"]"}),
    }


BODY_CASES = {
    f"{write} / {variant}": Case(method, path, status, **kwargs)
    for write, (method, path, body) in WRITES.items()
    for variant, (status, kwargs) in _body_variants(body).items()
}


# --- Field values: huge, negative, not numbers, SQL, HTML, NUL ---------------------------------------------


def _usage(status: int, field_: str, value, *, index: int = 0) -> Case:
    return Case("POST", "usage_records", status, body={"records": [{**GOOD_ROW, field_: value}]},
                pointer=f"/records/{index}/{field_}")  # fmt: skip


def _create(field_: str, value) -> Case:
    body = {**WRITES["create"][2], field_: value}
    return Case("POST", "managed_accounts", 422, body=body, pointer=f"/{field_}")


FIELD_CASES = {
    # Usage quantities: JSON 1e400 is a float (inf); the others are refused by value.
    "quantity 1e400 (a JSON number)": _usage(422, "quantity", BIG),
    "quantity Infinity (a JSON literal)": _usage(422, "quantity", float("inf")),
    "quantity '1e400'": _usage(422, "quantity", "1e400"),
    "quantity -1": _usage(422, "quantity", -1),
    "quantity '-0.000001'": _usage(422, "quantity", "-0.000001"),
    "quantity 10**30": _usage(422, "quantity", 10**30),
    "quantity 'NaN'": _usage(422, "quantity", "NaN"),
    "quantity 'Infinity'": _usage(422, "quantity", "Infinity"),
    "quantity '-Infinity'": _usage(422, "quantity", "-Infinity"),
    "quantity 'sNaN'": _usage(422, "quantity", "sNaN"),
    "quantity SQL": _usage(422, "quantity", SQL),
    "quantity 1e-30": _usage(422, "quantity", "1e-30"),
    "quantity as a list": _usage(422, "quantity", [1]),
    "a NaN literal as quantity": Case(
        "POST",
        "usage_records",
        422,
        pointer="/records/0/quantity",
        raw=b'{"records": [{"product": "sms.outbound", "quantity": NaN, '
        b'"started_at": "2025-03-03T09:15:00Z", "idempotency_key": "k"}]}',
    ),  # fmt: skip
    "started_at 1e400": _usage(422, "started_at", BIG),
    "started_at -1": _usage(422, "started_at", -1),
    "started_at year 99999": _usage(422, "started_at", "99999-01-01T00:00:00Z"),
    "started_at SQL": _usage(422, "started_at", SQL_OR),
    "started_at HTML": _usage(422, "started_at", HTML),
    "product SQL": _usage(422, "product", SQL_OR),
    "product HTML": _usage(422, "product", HTML),
    "product with a NUL": _usage(422, "product", "sms.outbound\x00"),
    "account SQL": _usage(422, "account", SQL_OR),
    "account HTML": _usage(422, "account", HTML),
    "account unknown": _usage(422, "account", RANDOM_ID),
    "direction SQL": _usage(422, "direction", SQL),
    "country HTML": _usage(422, "country", HTML),
    "destination SQL": _usage(422, "destination", SQL_OR),
    "destination HTML": _usage(422, "destination", HTML),
    "idempotency_key of 101 characters": _usage(422, "idempotency_key", "k" * 101),
    "a record that is a string": Case("POST", "usage_records", 422, body={"records": [SQL]}, pointer="/records/0"),
    "records SQL": Case("POST", "usage_records", 422, body={"records": SQL}, pointer="/records"),
    "records 1e400": Case("POST", "usage_records", 422, body={"records": BIG}, pointer="/records"),
    # Managed accounts: e-mails are a grammar, so SQL and HTML in them are refused.
    "create: e-mail SQL": _create("email", f"a@b.example.com{SQL}"),
    "create: e-mail HTML": _create("email", f"{HTML}@example.com"),
    "create: e-mail with a NUL": _create("email", "owner\x00@nova.example.com"),
    "create: e-mail 1e400": _create("email", BIG),
    "create: e-mail of 300 characters": _create("email", "a" * 290 + "@x.example"),
    "create: name 10**30": _create("business_name", 10**30),
    "create: name -1": _create("business_name", -1),
    "create: password 1e400": _create("password", BIG),
    "create: password with a NUL": _create("password", "correct-horse\x00battery"),
    "create: rollup_billing 'NaN'": _create("rollup_billing", "NaN"),
    "create: pricing_hidden SQL": _create("pricing_hidden", SQL_OR),
    "update: name 1e400": Case(
        "PATCH", "managed_accounts/{managed}", 422, body={"organization_name": BIG}, pointer="/organization_name"
    ),  # fmt: skip
    "update: name with a NUL": Case(
        "PATCH",
        "managed_accounts/{managed}",
        422,
        body={"organization_name": "Alpine\x00"},
        pointer="/organization_name",
    ),  # fmt: skip
    "update: pricing_hidden HTML": Case(
        "PATCH", "managed_accounts/{managed}", 422, body={"pricing_hidden": HTML}, pointer="/pricing_hidden"
    ),  # fmt: skip
    "action: reenable_all_connections SQL": Case(
        "POST",
        "managed_accounts/{managed}/actions/disable",
        422,
        body={"reenable_all_connections": SQL},
        pointer="/reenable_all_connections",
    ),  # fmt: skip
}


def _hook(field_: str, value, *, key: str = "manager", write: str = "webhook create") -> Case:
    method, path, body = WRITES[write]
    return Case(method, path, 422, body={**body, field_: value}, pointer=f"/{field_}", key=key)


HOOK_CASES = {
    **{
        f"{write}: url {label}": _hook("url", value, write=write)
        for write in ("webhook create", "webhook update")
        for label, value in (
            ("SQL", SQL),
            ("HTML", HTML),
            ("javascript:", "javascript:alert(1)"),
            ("ftp://", "ftp://hooks.example.com/"),
            ("with a user and password", "https://user:secret@hooks.example.com/"),
            ("without a host", "https:///hooks"),
            ("of 2,001 characters", "https://hooks.example.com/" + "x" * 1975),
            ("with a NUL", "https://hooks.example.com/\x00"),
            ("1e400", BIG),
            ("10**30", 10**30),
            ("null", None),
            ("blank", "   "),
        )
    },
    **{
        f"{write}: event_types {label}": _hook("event_types", value, write=write)
        for write in ("webhook create", "webhook update")
        for label, value in (
            ("SQL", SQL),
            ("empty", []),
            ("unknown", ["balance.high"]),
            ("HTML", [HTML]),
            ("1e400", [BIG]),
            ("an object", {"balance.low": True}),
            ("a NUL", ["balance.low\x00"]),
        )
    },
    "webhook create: event_types missing": Case(
        "POST", "webhook_endpoints", 422, body={"url": "https://hooks.example.com/"}, pointer="/event_types"
    ),  # fmt: skip
    "webhook create: url missing": Case(
        "POST", "webhook_endpoints", 422, body={"event_types": ["balance.low"]}, pointer="/url"
    ),  # fmt: skip
    "webhook create: description of 201 characters": _hook("description", "d" * 201),
    "webhook create: description with a NUL": _hook("description", "ops\x00"),
    "webhook create: description 1e400": _hook("description", BIG),
    "webhook create: include_managed_accounts 'NaN'": _hook("include_managed_accounts", "NaN"),
    "webhook create: include_managed_accounts from a standard account": _hook(
        "include_managed_accounts", True, key="standard"
    ),  # fmt: skip
    "webhook update: enabled SQL": _hook("enabled", SQL_OR, write="webhook update"),
    "webhook update: enabled null": _hook("enabled", None, write="webhook update"),
    "webhook update: include_managed_accounts 1": _hook("include_managed_accounts", 1, write="webhook update"),
    "webhook update: description HTML of 300 characters": _hook("description", HTML * 11, write="webhook update"),
    **{
        f"notification setting: {field_} {label}": _hook(field_, value, write="notification setting")
        for field_, values in (
            (
                "status",
                (("SQL", SQL), ("HTML", HTML), ("1e400", BIG), ("true", True), ("enable-pending", "enable-pending")),
            ),
            ("managed_accounts", (("'NaN'", "NaN"), ("SQL", SQL_OR), ("1", 1))),
        )
        for label, value in values
    },
    **{
        f"low balance threshold: {field_} {label}": _hook(field_, value, write="low balance threshold")
        for field_, values in (
            (
                "threshold_amount",
                (
                    ("1e400 (a JSON number)", BIG),
                    ("SQL", SQL),
                    ("HTML", HTML),
                    ("a NUL", "1\x00"),
                    ("huge", "9" * 400),
                    ("an object", {"amount": 1}),
                    ("three decimals", "1.001"),
                    ("'NaN'", "NaN"),
                    ("past ten million", "10000000.01"),
                ),
            ),
            ("enabled", (("'NaN'", "NaN"), ("SQL", SQL_OR))),
        )
        for label, value in values
    },  # fmt: skip
    "low balance threshold: threshold_amount null, the first time": Case(
        "PATCH", "low_balance_threshold", 422, body={"threshold_amount": None}, pointer="/threshold_amount"
    ),  # fmt: skip
}

# --- Query parameters of every GET ------------------------------------------------------------------------

REPORT = {"product": "all", "dimensions": "date", "metrics": "count", "start_date": "2025-03-01",
          "end_date": "2025-03-08"}  # fmt: skip
LISTS = {
    "managed_accounts": {},
    "audit_events": {},
    "invoices": {},
    "usage_reports": REPORT,
}


def _query(path: str, status: int, name: str, value: str, *, base=None, key: str = "manager") -> Case:
    return Case("GET", path, status, params={**(base or {}), name: value}, key=key, parameter=name)


QUERY_CASES = {
    **{
        f"{path}: {name} {label}": _query(path, 422, name, value, base=base)
        for path, base in LISTS.items()
        for name in ("page[number]", "page[size]")
        for label, value in (
            ("1e400", "1e400"),
            ("-1", "-1"),
            ("10**30", str(10**30)),
            ("NaN", "NaN"),
            ("Infinity", "Infinity"),
            ("SQL", SQL_OR),
            ("HTML", HTML),
        )  # fmt: skip
    },
    **{
        f"{path}: sort {label}": _query(path, 422, "sort", value, base=base)
        for path, base in LISTS.items()
        for label, value in (("SQL", f"created_at; {SQL}"), ("HTML", HTML), ("1e400", "1e400"))
    },
    "managed_accounts: filter[status][eq] SQL": _query(
        "managed_accounts", 422, "filter[status][eq]", f"enabled{SQL_OR}"
    ),
    "managed_accounts: filter[status][eq] HTML": _query("managed_accounts", 422, "filter[status][eq]", HTML),
    "managed_accounts: include_cancelled_accounts SQL": _query(
        "managed_accounts", 422, "include_cancelled_accounts", SQL_OR
    ),  # fmt: skip
    "managed_accounts: a NUL in filter[email][eq]": _query("managed_accounts", 422, "filter[email][eq]", "a\x00b"),
    "audit_events: filter[created_after] SQL": _query(
        "audit_events", 422, "filter[created_after]", f"2025-01-01{SQL_OR}"
    ),  # fmt: skip
    "audit_events: filter[created_before] HTML": _query("audit_events", 422, "filter[created_before]", HTML),
    "audit_events: filter[created_after] 1e400": _query("audit_events", 422, "filter[created_after]", "1e400"),
    "audit_events: filter[created_after] -1": _query("audit_events", 422, "filter[created_after]", "-1"),
    "audit_events: filter[created_before] year 99999": _query(
        "audit_events", 422, "filter[created_before]", "99999-01-01"
    ),  # fmt: skip
    **{
        f"usage_reports: {name} {label}": _query("usage_reports", status, name, value, base=REPORT)
        for name, status in (
            ("product", 422),
            ("dimensions", 422),
            ("metrics", 422),
            ("start_date", 422),
            ("format", 422),
            ("managed_accounts", 422),
            ("filter[product]", 422),
        )  # fmt: skip
        for label, value in (("SQL", SQL_OR), ("HTML", HTML), ("1e400", "1e400"), ("-1", "-1"))
    },
    "usage_reports: end_date NaN": _query("usage_reports", 422, "end_date", "NaN", base=REPORT),
    "usage_reports: date_range SQL": _query(
        "usage_reports", 422, "date_range", SQL_OR, base={k: v for k, v in REPORT.items() if not k.endswith("_date")}
    ),  # fmt: skip
    "usage_reports: date_range last 10**30 days": _query(
        "usage_reports",
        422,
        "date_range",
        f"last_{10**30}_days",
        base={k: v for k, v in REPORT.items() if not k.endswith("_date")},
    ),  # fmt: skip
    "usage_reports: date_range last 999 weeks": Case(
        "GET",
        "usage_reports",
        422,
        parameter="end_date",
        params={"product": "all", "dimensions": "date", "metrics": "count", "date_range": "last_999_weeks"},
    ),  # fmt: skip
    "usage_reports: an unknown parameter SQL": _query("usage_reports", 422, SQL_OR, "1", base=REPORT),
    "usage_reports/options: product SQL": _query("usage_reports/options", 422, "product", SQL_OR),
    "usage_reports/options: product HTML": _query("usage_reports/options", 422, "product", HTML),
    "usage_reports/options: an unknown parameter HTML": _query("usage_reports/options", 422, HTML, "1"),
    **{
        f"{path}: {name} {label}": _query(path, 422, name, value)
        for path in ("webhook_endpoints", "webhook_endpoints/{endpoint}/deliveries")
        for name in ("page[number]", "page[size]")
        for label, value in (("1e400", "1e400"), ("-1", "-1"), ("SQL", SQL_OR), ("HTML", HTML))
    },
    **{
        f"deliveries: filter[status] {label}": _query(
            "webhook_endpoints/{endpoint}/deliveries", 422, "filter[status]", value
        )
        for label, value in (("SQL", SQL_OR), ("HTML", HTML), ("1e400", "1e400"), ("a NUL", "failed\x00"))
    },  # fmt: skip
    "invoice: action SQL": _query("invoices/{invoice}", 422, "action", SQL_OR),
    "invoice: action HTML": _query("invoices/{invoice}", 422, "action", HTML),
}

# --- Unknown ids and the ids of other tenants -----------------------------------------------------------------

ID_CASES = {
    **{
        f"{label}: {what}": Case(method, path.format(id=value), 404, body=body)
        for label, value in (
            ("a random uuid", RANDOM_ID),
            ("not a uuid", "12345"),
            ("SQL", "%27%20OR%20%271%27%3D%271"),
            ("HTML", "%3Cscript%3E"),
            ("a NUL", "abc%00"),
            ("10**30", str(10**30)),
            ("the manager itself", "{manager}"),
            ("another manager's account", "{other_managed}"),
        )  # fmt: skip
        for what, method, path, body in (
            ("retrieve", "GET", "managed_accounts/{id}", None),
            ("update", "PATCH", "managed_accounts/{id}", {"organization_name": "Stolen"}),
            ("disable", "POST", "managed_accounts/{id}/actions/disable", {}),
            ("enable", "POST", "managed_accounts/{id}/actions/enable", {}),
        )
    },
    **{
        f"invoice {label}": Case("GET", f"invoices/{value}", 404, key=key)
        for label, value, key in (
            ("a random uuid", RANDOM_ID, "manager"),
            ("not a uuid", "MC-0000001", "manager"),
            ("SQL", "%27%20OR%201%3D1--", "manager"),
            ("HTML", "%3Cb%3E", "manager"),
            ("of another manager", "{other_invoice}", "manager"),
            ("of the manager, asked by its roll-up account", "{invoice}", "managed"),
            ("of the manager, asked by a standard account", "{invoice}", "standard"),
            ("of the manager, asked by the other manager", "{invoice}", "other"),
        )
    },
    **{
        f"webhook endpoint {label}: {what}": Case(method, path.format(id=value), 404, body=body, key=key)
        for label, value, key in (
            ("a random uuid", RANDOM_ID, "manager"),
            ("not a uuid", "12345", "manager"),
            ("SQL", "%27%20OR%20%271%27%3D%271", "manager"),
            ("HTML", "%3Cscript%3E", "manager"),
            ("a NUL", "abc%00", "manager"),
            ("10**30", str(10**30), "manager"),
            ("of another manager", "{other_endpoint}", "manager"),
            ("of the manager, asked by its roll-up account", "{endpoint}", "managed"),
            ("of the manager, asked by the other manager", "{endpoint}", "other"),
        )  # fmt: skip
        for what, method, path, body in (
            ("retrieve", "GET", "webhook_endpoints/{id}", None),
            ("update", "PATCH", "webhook_endpoints/{id}", {"enabled": False}),
            ("delete", "DELETE", "webhook_endpoints/{id}", {}),
            ("deliveries", "GET", "webhook_endpoints/{id}/deliveries", None),
        )
    },
    **{
        f"webhook delivery {label}: {what}": Case(method, path, 404, body=body, key=key)
        for label, path_, key in (
            ("of another manager", "{endpoint}/deliveries/{other_delivery}", "manager"),
            ("of another manager, through its endpoint", "{other_endpoint}/deliveries/{other_delivery}", "manager"),
            ("asked by the other manager", "{endpoint}/deliveries/{delivery}", "other"),
            ("asked by the roll-up account", "{endpoint}/deliveries/{delivery}", "managed"),
            ("a random uuid", "{endpoint}/deliveries/" + RANDOM_ID, "manager"),
            ("not a uuid", "{endpoint}/deliveries/msg_123", "manager"),
            ("SQL", "{endpoint}/deliveries/%27%20OR%201%3D1--", "manager"),
        )
        for what, method, path, body in (
            ("retrieve", "GET", f"webhook_endpoints/{path_}", None),
            ("resend", "POST", f"webhook_endpoints/{path_}/actions/resend", {}),
        )
    },
    "resend a delivery still being sent": Case(
        "POST", "webhook_endpoints/{endpoint}/deliveries/{delivery}/actions/resend", 422, body={}
    ),  # fmt: skip
    "resend with a field": Case(
        "POST", "webhook_endpoints/{endpoint}/deliveries/{delivery}/actions/resend", 422, body={"force": SQL}
    ),  # fmt: skip
    "resend with an array": Case(
        "POST", "webhook_endpoints/{endpoint}/deliveries/{delivery}/actions/resend", 422, raw=b"[]"
    ),  # fmt: skip
    "resend with text/plain": Case(
        "POST",
        "webhook_endpoints/{endpoint}/deliveries/{delivery}/actions/resend",
        415,
        raw=b"{}",
        content_type="text/plain",
    ),  # fmt: skip
    "notification settings: a POST": Case("POST", "notification_settings", 405, body={"status": "enabled"}),
    **{
        f"notification setting {label}": Case(method, f"notification_settings/{value}", 404, body=body)
        for label, value in (
            ("unknown", "balance.high"),
            ("SQL", "%27%20OR%201%3D1--"),
            ("HTML", "%3Cb%3E"),
            ("a NUL", "balance.low%00"),
            ("upper case", "BALANCE.LOW"),
        )
        for method, body in (("GET", None), ("PATCH", {"status": "disabled"}))
    },
    "low balance threshold of a roll-up account": Case("GET", "low_balance_threshold", 404, key="managed"),
    "low balance threshold set on a roll-up account": Case(
        "PATCH", "low_balance_threshold", 404, body={"threshold_amount": "10.00"}, key="managed"
    ),  # fmt: skip
    "low balance threshold: a POST": Case("POST", "low_balance_threshold", 405, body={"threshold_amount": "1"}),
    "a managed key retrieves its sibling": Case("GET", "managed_accounts/{sibling}", 404, key="managed"),
    "a managed key disables its sibling": Case(
        "POST", "managed_accounts/{sibling}/actions/disable", 404, body={}, key="managed"
    ),  # fmt: skip
    "the other manager updates this manager's account": Case(
        "PATCH", "managed_accounts/{managed}", 404, body={"organization_name": "Mine"}, key="other"
    ),  # fmt: skip
    "usage for another manager's account": _usage(422, "account", "{other_managed}"),
    "usage from a managed key for its sibling": Case(
        "POST",
        "usage_records",
        422,
        key="managed",
        body={"records": [{**GOOD_ROW, "account": "{sibling}"}]},
        pointer="/records/0/account",
    ),  # fmt: skip
    "balance: a POST": Case("POST", "balance", 405, body={"balance": "1e400"}),
    "balance: a PATCH with SQL": Case("PATCH", "balance", 405, body={"balance": SQL}),
    "usage naming the manager from its managed key": Case(
        "POST",
        "usage_records",
        422,
        key="managed",
        body={"records": [{**GOOD_ROW, "account": "{manager}"}]},
        pointer="/records/0/account",
    ),  # fmt: skip
}


def _with_ids(case: Case, ids: dict[str, str]) -> Case:
    """Body values naming an account by placeholder ({other_managed}) get its id."""
    if case.body is None:
        return case
    text = json.dumps(case.body)
    for name, value in ids.items():
        text = text.replace("{" + name + "}", value)
    return Case(**{**case.__dict__, "body": json.loads(text)})


def _money(method: str, path: str, body: dict, field_: str, value, *, status: int = 422, key: str = "manager") -> Case:
    return Case(method, path, status, body={**body, field_: value}, pointer=f"/{field_}", key=key)


MONEY_CASES = {
    **{
        f"{write} {field_} {label}": _money(WRITES[write][0], WRITES[write][1], WRITES[write][2], field_, value)
        for write, field_ in (
            ("transfer", "amount"),
            ("spend limit", "monthly_amount"),
            ("credit limit", "credit_limit"),
        )
        for label, value in (
            ("1e400 (a JSON number)", BIG),
            ("SQL", SQL),
            ("HTML", HTML),
            ("a NUL", "1\x00"),
            ("huge", "9" * 400),
            ("an object", {"amount": 1}),
        )
    },  # fmt: skip
    # The world's managed accounts are roll-up, so values are judged only on the limits (the
    # transfer and credit-limit values: tests/api/test_credit_transfers_api.py, test_spend_limits_api.py).
    **{
        f"spend limit monthly_amount {label}": _money(*WRITES["spend limit"], "monthly_amount", value)
        for label, value in (("negative", "-1.00"), ("zero", 0), ("three decimals", "1.001"))
    },
    "transfer from SQL": _money("POST", "credit_transfers", WRITES["transfer"][2], "from", SQL),
    "transfer reference with a NUL": _money("POST", "credit_transfers", WRITES["transfer"][2], "reference", "a\x00"),
    "spend limit product SQL": _money(
        "PUT", "spend_limit", {"monthly_amount": "1.00"}, "product", SQL, key="standard"
    ),  # fmt: skip
    "transfer from a roll-up account's key": Case(
        "POST", "credit_transfers", 403, key="managed", body=WRITES["transfer"][2]
    ),  # fmt: skip
    "transfer to another manager's account": Case(
        "POST", "credit_transfers", 404, body={**WRITES["transfer"][2], "to": "{other_managed}"}
    ),  # fmt: skip
    "credit limit of a roll-up account": Case(
        "PUT", "managed_accounts/{managed}/credit_limit", 422, body={"credit_limit": "1.00"}
    ),  # fmt: skip
    "a transfer of another tenant": Case("GET", "credit_transfers/{transfer_id}", 404, key="other"),
    "credit transfers: filter[account_id] SQL": Case(
        "GET", "credit_transfers", 422, params={"filter[account_id]": SQL}, parameter="filter[account_id]"
    ),  # fmt: skip
    "credit transfers: filter[created_after] HTML": Case(
        "GET", "credit_transfers", 422, params={"filter[created_after]": HTML}, parameter="filter[created_after]"
    ),  # fmt: skip
    "spend limit: product SQL": Case(
        "GET", "managed_accounts/{managed}/spend_limit", 422, params={"product": SQL}, parameter="product"
    ),  # fmt: skip
    "spend limit of another manager's account": Case(
        "DELETE", "managed_accounts/{other_managed}/spend_limit", 404, body={}
    ),  # fmt: skip
}

USERS = "managed_accounts/{managed}/users"
USER_CASES = {
    "invite with a malformed e-mail": Case(
        "POST", USERS, 422, body={"email": "not an address", "role": "admin"}, pointer="/email"
    ),  # fmt: skip
    "invite with HTML for an e-mail": Case("POST", USERS, 422, body={"email": HTML, "role": "admin"}, pointer="/email"),
    "invite with an unknown role": Case(
        "POST", USERS, 422, body={"email": "new@example.com", "role": "superuser"}, pointer="/role"
    ),  # fmt: skip
    "invite with SQL for a role": Case(
        "POST", USERS, 422, body={"email": "new@example.com", "role": SQL}, pointer="/role"
    ),  # fmt: skip
    "invite from a managed key": Case(
        "POST", USERS, 403, body={"email": "new@example.com", "role": "admin"}, key="managed"
    ),  # fmt: skip
    "users of another manager's account": Case("GET", "managed_accounts/{other_managed}/users", 404),
    "users: page[size] SQL": Case("GET", USERS, 422, params={"page[size]": SQL}, parameter="page[size]"),
    "remove a user id that is not a UUID": Case("DELETE", USERS + "/not-a-uuid", 404, body={}),
    "remove the last owner": Case("DELETE", USERS + "/{managed_owner}", 422, body={}),
}

CASES = {**BODY_CASES, **FIELD_CASES, **HOOK_CASES, **QUERY_CASES, **ID_CASES, **MONEY_CASES, **USER_CASES}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_a_clear_4xx_and_writes_nothing(tenants, name):
    case = _with_ids(CASES[name], tenants.ids)
    before = db_state()

    response = send(tenants, case)

    assert response.status_code != 500, response.content[:500]
    first = assert_error(response, case.status, pointer=case.pointer, parameter=case.parameter)
    assert len(first["detail"]) >= 10, first  # a sentence, not a code
    assert db_state() == before


def test_the_corpus_covers_every_endpoint_of_the_api():
    """A new endpoint in portal/api_urls.py must join the corpus."""
    from portal.api_urls import urlpatterns

    covered = {case.path for case in CASES.values()}
    for pattern in urlpatterns:
        if pattern.name == "api_not_found":
            continue
        if str(pattern.pattern) == "openapi.json":
            continue  # no key, no parameters, no body: tests/api/test_openapi_document.py covers it
        route = str(pattern.pattern).replace("<str:managed_id>", "{managed}").replace("<str:invoice_id>", "{invoice}")
        route = route.replace("<str:transfer_id>", "{transfer_id}").replace("<str:user_id>", "{managed_owner}")
        route = route.replace("<str:endpoint_id>", "{endpoint}").replace("<str:delivery_id>", "{delivery}")
        route = route.replace("<str:setting_id>", "{setting}")
        assert route in covered, f"{route} is not in the corpus"


# --- Odd but valid text: stored and searched as the literal text ----------------------------------------------


@pytest.mark.parametrize("text", [SQL, SQL_OR, HTML, "Robert'); --", "50% off_\\"])
def test_sql_and_html_in_a_filter_match_nothing_and_reveal_nothing(tenants, text):
    before = db_state()
    for name in ("filter[email][contains]", "filter[email][eq]", "filter[organization_name][contains]",
                 "filter[organization_name][eq]"):  # fmt: skip
        response = tenants.clients["manager"].get("/v2/managed_accounts", {name: text})
        assert response.status_code == 200, response.content[:300]
        assert response.json()["data"] == [], (name, text)
    assert db_state() == before


def test_a_filter_with_wildcards_matches_them_literally(tenants, world):
    """`%` and `_` are LIKE wildcards: a contains filter must search for them, not with them."""
    Account.objects.filter(pk=world.managed.pk).update(name="Alpine 100% Voice")
    response = tenants.clients["manager"].get("/v2/managed_accounts", {"filter[organization_name][contains]": "100% V"})
    assert [r["organization_name"] for r in response.json()["data"]] == ["Alpine 100% Voice"]
    response = tenants.clients["manager"].get("/v2/managed_accounts", {"filter[organization_name][contains]": "%%%"})
    assert response.json()["data"] == []
    response = tenants.clients["manager"].get("/v2/managed_accounts", {"filter[email][contains]": "___"})
    assert response.json()["data"] == []


@pytest.mark.parametrize("text", [SQL, HTML])
def test_sql_and_html_in_a_name_are_stored_as_plain_text_and_echoed_as_json(tenants, world, text):
    client = tenants.clients["manager"]
    response = client.post("/v2/managed_accounts", {"business_name": text, "email": "odd@nova.example.com"},
                           content_type="application/json")  # fmt: skip

    assert response.status_code == 201, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"  # a browser never sniffs it into HTML
    created = Account.objects.get(public_id=response.json()["data"]["id"])
    assert created.name == text and Account.objects.filter(kind=Account.Kind.MANAGED).count() == 4
    renamed = client.patch(f"/v2/managed_accounts/{world.managed.public_id}", {"organization_name": text},
                           content_type="application/json")  # fmt: skip
    assert renamed.status_code == 200 and renamed.json()["data"]["organization_name"] == text
    found = client.get("/v2/managed_accounts", {"filter[organization_name][eq]": text}).json()["data"]
    assert sorted(r["id"] for r in found) == sorted([str(created.public_id), str(world.managed.public_id)])


def test_sql_and_html_in_idempotency_keys_are_keys_like_any_other(tenants):
    rows = [{**GOOD_ROW, "idempotency_key": key} for key in (SQL, HTML, SQL_OR)]
    client = tenants.clients["standard"]

    first = client.post("/v2/usage_records", {"records": rows}, content_type="application/json")
    again = client.post("/v2/usage_records", {"records": rows}, content_type="application/json")

    assert first.status_code == 201 and first.json()["data"]["accepted"] == 3
    assert again.status_code == 200 and again.json()["data"]["duplicates"] == 3
    assert sorted(UsageRecord.objects.values_list("idempotency_key", flat=True)) == sorted([SQL, HTML, SQL_OR])


def test_a_nul_in_an_idempotency_key_is_refused_and_stores_nothing(tenants):
    """A NUL would reach the database as part of the key: PostgreSQL refuses it (a 500), SQLite
    stores a key no other tool can handle. billing/usage.py refuses it with a row error."""
    before = db_state()
    response = tenants.clients["standard"].post(
        "/v2/usage_records", {"records": [{**GOOD_ROW, "idempotency_key": "k\x00-1"}]}, content_type="application/json"
    )
    assert response.status_code != 500, response.content[:300]
    assert_error(response, 422, pointer="/records/0/idempotency_key")
    assert db_state() == before


def test_a_foreign_id_gets_the_same_404_as_an_unknown_one(tenants):
    """The 404 of an id this key may not see says no more than that of an id that does not exist."""
    client = tenants.clients["manager"]
    unknown = client.get(f"/v2/managed_accounts/{RANDOM_ID}").json()
    foreign = client.get(f"/v2/managed_accounts/{tenants.ids['other_managed']}").json()
    assert unknown == foreign
    assert (
        client.get(f"/v2/invoices/{RANDOM_ID}").json()
        == client.get(f"/v2/invoices/{tenants.ids['other_invoice']}").json()
    )
