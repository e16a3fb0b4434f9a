"""The OpenAPI 3.1 document of the whole v2 API, served at `GET /v2/openapi.json` (no key needed).

Built here, in one place, from the constants the views themselves use (page size bounds, sorts,
status filters, metrics, dimensions and Telnyx's product families), so that the document cannot
drift from them. Two tests keep it true: tests/api/test_openapi_document.py compares its paths and
methods with the URL patterns of portal/api_urls.py, and tests/api/test_schemathesis.py fuzzes the
live server against it (no 5xx, every answer in the documented shape, no undocumented status).

A new endpoint is documented by adding its operations to `_paths()`, reusing the shared components
(`Error`, `PageMeta`, the resources) and the shared responses (`_errors`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts import api as accounts_api
from accounts.api_access import MANAGED_ACCOUNT_HEADER
from accounts.models import Account, AuditEvent, Role
from billing import api as billing_api
from billing.models import CreditTransfer, Invoice, UsageRecord
from billing.usage import services as usage_services
from controls.models import SpendLimit
from notifications import api as notifications_api
from notifications.alerts import Alert
from portal.api import DEFAULT_PAGE_SIZE, MAX_PAGE_NUMBER, MAX_PAGE_SIZE, RATE_WINDOW_SECONDS, ApiError
from portal.request_id import HEADER as REQUEST_ID_HEADER
from reporting import api as reporting_api
from reporting import telnyx_names
from reporting.selectors import RECORD_DIMENSIONS
from webhooks import api as webhooks_api
from webhooks.events import EventType
from webhooks.models import WebhookDelivery

Schema = dict[str, Any]

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
MONEY: Schema = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "examples": ["123.45"]}
DECIMAL: Schema = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "examples": ["12.5"]}
UUID: Schema = {"type": "string", "format": "uuid"}
TIME: Schema = {"type": "string", "format": "date-time"}
NULLABLE_TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
DIMENSION_NAMES = [name for ours in RECORD_DIMENSIONS for name in telnyx_names.names_of(ours)]
# What a usage report row may carry: `product` always, the fields of the dimensions asked for (named
# as asked: `country_code` when asked so), `unit`, the metrics and `currency` with `cost`.
REPORT_ROW_FIELDS: dict[str, Schema] = {
    "product": {"type": "string"},
    "product_name": {"type": "string"},
    "unit": {"type": "string"},
    "date": {"type": "string", "format": "date"},
    "month": {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}$"},
    "account_id": UUID,
    "account_name": {"type": "string"},
    "direction": {"type": "string", "enum": ["", *UsageRecord.Direction.values]},
    **{name: {"type": "string"} for name in telnyx_names.names_of("country")},
    "destination_type": {"type": "string", "enum": ["", "toll_free", "short_code", "long_code"]},
    "count": {"type": "integer", "minimum": 0},
    "quantity": DECIMAL,
    "cost": DECIMAL,
    "currency": {"type": "string", "const": reporting_api.CURRENCY},
}


PAGE_META: dict[str, Schema] = {
    "page_number": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_NUMBER},
    "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    "total_pages": {"type": "integer", "minimum": 1},
    "total_results": {"type": "integer", "minimum": 0},
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Schema], *, required: list[str] | None = None, closed: bool = True) -> Schema:
    """An object schema; `required` defaults to every property; `closed`: no other property."""
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def _record(record_type: str, properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    fields = {"record_type": {"type": "string", "const": record_type}, **properties}
    return _obj(fields, required=[name for name in fields if name not in optional])


def _one(schema: Schema, *, meta: Schema | None = None) -> Schema:
    """`{"data": {...}}` (and an optional `meta`)."""
    return _obj({"data": schema, **({"meta": meta} if meta else {})}, required=["data"])


def _list(item: Schema, *, meta: Schema | None = None) -> Schema:
    """`{"data": [...], "meta": {paging}}`."""
    return _obj({"data": {"type": "array", "items": item}, "meta": meta or ref("PageMeta")})


def _components() -> Schema:
    error_item = _obj(
        {
            "code": {"type": "string", "minLength": 1},
            "title": {"type": "string", "minLength": 1},
            "detail": {"type": "string", "minLength": 1},
            "source": {
                "oneOf": [
                    _obj({"pointer": {"type": "string"}}),
                    _obj({"parameter": {"type": "string"}}),
                ]
            },
            "meta": {"type": "object"},
        },
        required=["code", "title", "detail"],
    )
    balance: dict[str, Schema] = {
        "balance": MONEY,
        "credit_limit": MONEY,
        "available_credit": MONEY,
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    }
    billing_mode_change: Schema = {
        "description": "Ours: the pending change of rollup_billing, from the start of a UTC month, or null.",
        "oneOf": [
            {"type": "null"},
            _obj({"rollup_billing": {"type": "boolean"}, "effective_from": {"type": "string", "format": "date"}}),
        ],
    }
    managed_account = _record(
        "managed_account",
        {
            "id": UUID,
            "email": {"type": "string", "description": 'The owner\'s e-mail; "" for an account created without one.'},
            "organization_name": {"type": "string"},
            "manager_account_id": UUID,
            "api_user": {"type": "string", "description": "The manager's e-mail."},
            "api_key": {"type": "string", "description": "In clear in the create response only; later its prefix."},
            "api_token": {"type": "string", "description": "The same as api_key."},
            "rollup_billing": {"type": "boolean", "description": "The billing mode in force this month."},
            "billing_mode_change": billing_mode_change,
            "managed_account_allow_custom_pricing": {"type": "boolean"},
            "pricing_hidden": {"type": "boolean"},
            "status": {"type": "string", "enum": Account.Status.values},
            "service_status": {"type": "string", "enum": ["active", "blocked"]},
            "service_blocked_reason": {"type": ["string", "null"]},
            "created_at": TIME,
            "updated_at": TIME,
            "balance": _record("balance", balance),
        },
        optional=("balance",),
    )
    made_by = sorted({accounts_api.API_MADE_BY.get(v, v) for v in AuditEvent.MadeBy.values})
    audit_event = _record(
        "audit_event",
        {
            "id": UUID,
            "resource_id": {"type": "string"},
            "alternate_resource_id": {"type": ["string", "null"]},
            "change_type": {"type": "string"},
            "changes": {"type": "array", "items": _obj({"field": {"type": "string"}, "from": {}, "to": {}})},
            "change_made_by": {"type": "string", "enum": made_by},
            "user_id": {"type": ["string", "null"], "format": "uuid"},
            "organization_id": UUID,
            "created_at": TIME,
        },
    )
    invoice = _record(
        "invoice",
        {
            "invoice_id": UUID,
            "file_id": {"type": "null"},
            "paid": {"type": "boolean"},
            "period_start": {"type": "string", "format": "date"},
            "period_end": {"type": "string", "format": "date"},
            "url": {"type": "string", "format": "uri"},
            "number": {"type": "string"},
            "status": {"type": "string", "enum": Invoice.Status.values},
            "currency": {"type": "string"},
            "total": MONEY,
            "issued_by": {"type": "string", "description": 'The issuing manager\'s id, or "platform".'},
            "payment_status": {
                "type": "string",
                "enum": Invoice.PaymentStatus.values,
                "description": "Due, overdue (the due date has passed), paid or void.",
            },
            "issue_date": {"type": ["string", "null"], "format": "date"},
            "due_date": {"type": ["string", "null"], "format": "date", "description": "Issue date + payment terms."},
            "download_url": {"type": "string", "format": "uri", "description": "With action=link only."},
        },
        optional=("download_url",),
    )
    metrics_list = {"type": "array", "items": {"type": "string", "enum": list(reporting_api.METRICS)}}
    dimensions_list = {"type": "array", "items": {"type": "string", "enum": DIMENSION_NAMES}}
    option = _obj(
        {
            "product": {"type": "string"},
            "product_dimensions": dimensions_list,
            "product_metrics": metrics_list,
            "record_types": {
                "type": ["array", "null"],
                "items": _obj(
                    {
                        "record_type": {"type": "string"},
                        "product_dimensions": dimensions_list,
                        "product_metrics": metrics_list,
                    }  # fmt: skip
                ),
            },
        }
    )
    window = _obj(
        {
            "start": TIME,
            "end": TIME,
            "given": {"type": "object", "additionalProperties": {"type": "string"}},
            "source": {"type": "string", "enum": ["daily_totals", "usage_records"]},
            "read_as": {"type": "string"},
        }
    )
    return {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key of ours."}},
        "headers": {
            "RequestId": {
                "description": "The request's id, also written on every log line of the request.",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
            },
            "RetryAfter": {
                "description": f"Whole seconds until the rate limit's {RATE_WINDOW_SECONDS}-second window ends.",
                "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": RATE_WINDOW_SECONDS},
            },
        },
        "schemas": {
            "Error": _obj({"errors": {"type": "array", "minItems": 1, "items": ref("ErrorItem")}}),
            "ErrorItem": error_item,
            "PageMeta": _obj(PAGE_META),
            "ManagedAccount": managed_account,
            "Balance": _record("balance", {**balance, "pending": MONEY}),
            "Invoice": invoice,
            "AuditEvent": audit_event,
            "UsageReportRow": _obj(
                {"record_type": {"type": "string", "const": "usage_report"}, **REPORT_ROW_FIELDS},
                required=["record_type", "product"],
            ),
            "UsageReportOption": option,
            "UsageReportMeta": _obj({**PAGE_META, "window": window}),
            "UsageBatch": _record(
                "usage_batch",
                {
                    "id": {
                        "type": ["string", "null"],
                        "format": "uuid",
                        "description": "null when every record was a duplicate.",
                    },  # fmt: skip
                    "accepted": {"type": "integer", "minimum": 0},
                    "duplicates": {"type": "integer", "minimum": 0},
                },
            ),
        },
    }


# --- Responses ----------------------------------------------------------------------------------------

_ERROR_MEANINGS = {
    400: "The body is not valid UTF-8 JSON.",
    401: "No valid API key (or the key's account is disabled or cancelled).",
    403: "The key may not do this; or X-Managed-Account-Id was refused (managed_account_header_not_allowed "
    "for a managed account's key; the log-in-as rule's code, such as account_not_enabled, for an account "
    "the manager may not act on).",
    404: "No such resource for this key (another tenant's never shows), or X-Managed-Account-Id names "
    "none of the manager's managed accounts.",
    409: "Conflicts with the current state.",
    413: "The body is larger than the server accepts.",
    415: "The body is not application/json in UTF-8.",
    422: "Invalid input: a field (source.pointer), a query parameter (source.parameter), or "
    "X-Managed-Account-Id that is not a UUID (invalid_header).",
    429: "Rate-limited (per key, or failed authentications per address); Retry-After says when to retry.",
}
# Every operation behind a key can answer these: the key, the rate limit, the on-behalf header and
# the query's characters (a NUL is a 422) are checked before the view runs.
_KEYED = (401, 403, 404, 422, 429)
_WITH_BODY = (400, 413, 415, 422)


def _headers(*extra: str) -> Schema:
    headers = {REQUEST_ID_HEADER: {"$ref": "#/components/headers/RequestId"}}
    for name in extra:
        headers[name] = {"$ref": f"#/components/headers/{name.replace('-', '')}"}
    return headers


def _error(status: int) -> Schema:
    headers = _headers("Retry-After") if status == 429 else _headers()
    return {"description": _ERROR_MEANINGS[status], "headers": headers, "content": {JSON: {"schema": ref("Error")}}}


def _responses(ok: dict[int, Schema], *, keyed: bool = True, body: bool = False, more: tuple[int, ...] = ()) -> Schema:
    answers: Schema = {}
    for status, schema in ok.items():
        content = schema.get("content", {JSON: {"schema": schema}})
        answers[str(status)] = {"description": "Success.", "headers": _headers(), "content": content}
    errors = set(more) | (set(_KEYED) if keyed else set()) | (set(_WITH_BODY) if body else set())
    for status in sorted(errors):
        answers[str(status)] = _error(status)
    return answers


# --- Parameters ---------------------------------------------------------------------------------------


def _query(name: str, schema: Schema, description: str = "", *, required: bool = False, **more: Any) -> Schema:
    parameter: Schema = {"name": name, "in": "query", "required": required, "schema": schema, **more}
    if description:
        parameter["description"] = description
    return parameter


def _path(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


ON_BEHALF = {
    "name": MANAGED_ACCOUNT_HEADER,
    "in": "header",
    "required": False,
    "description": "A manager's key acts on the managed account it names (as Stripe's Stripe-Account), under the "
    "log-in-as rule: hidden pricing applies, a disabled account is refused, changes are audited as "
    "account_manager with the key's creator. 403 managed_account_header_not_allowed from a managed "
    "account's key; 422 invalid_header when not a UUID; 404 for an id that is none of the manager's.",
    "schema": UUID,
}
PAGING = [
    _query("page[number]", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_NUMBER, "default": 1}),
    _query("page[size]", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE}),
]
BOOLEAN_TEXT: Schema = {"type": "string", "enum": ["true", "false"], "description": "true or false (any letter case)."}


def _operation(
    summary: str, responses: Schema, *, parameters: Sequence[Schema] = (), body: Schema | None = None,
    body_required: bool = True, keyed: bool = True, description: str = "",
) -> Schema:  # fmt: skip
    operation: Schema = {"summary": summary, "responses": responses}
    if description:
        operation["description"] = description
    operation["parameters"] = [*parameters, ON_BEHALF] if keyed else list(parameters)
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": {JSON: {"schema": body}}}
    if not keyed:
        operation["security"] = []
    return operation


def _paths() -> Schema:
    status_filters = list(accounts_api.STATUS_FILTERS)
    contains = {"type": "string", "minLength": accounts_api.CONTAINS_MIN}
    account_fields = {
        "managed_account_allow_custom_pricing": {"type": "boolean"},
        "pricing_hidden": {"type": "boolean", "description": "Ours: the managed account sees no prices."},
    }
    name = {"type": "string", "minLength": 1, "maxLength": 255}
    create_body = _obj(
        {
            "business_name": name,
            "email": {
                "type": "string",
                "maxLength": 254,
                "description": "Optional, as in Telnyx: without it the "
                "account has no owner (its key works, nobody signs in).",
            },  # fmt: skip
            "password": {"type": "string", "maxLength": 128, "description": "The owner's; needs email."},
            "rollup_billing": {"type": "boolean", "default": False},
            **account_fields,
        },
        required=["business_name"],
    )
    rollup_change: Schema = {"type": "boolean", "description": "Takes effect at the start of the next UTC month; "
                     "the mode in force now cancels a pending change."}  # fmt: skip
    patch_body = _obj({**account_fields, "organization_name": name, "rollup_billing": rollup_change}, required=[])
    action_body = _obj(
        {
            "reenable_all_connections": {
                "type": "boolean",
                "description": "Accepted for Telnyx clients and ignored: there are no connections here. When "
                "given, the answer's meta.notes says so (code ignored_field).",
            }
        },
        required=[],
    )
    action_meta = _obj({"notes": {"type": "array", "items": ref("ErrorItem")}})
    usage_row: dict[str, Schema] = {
        **{field: {"type": "string"} for field in usage_services.REQUIRED_FIELDS},
        **{field: {"type": "string"} for field in usage_services.OPTIONAL_FIELDS},
        "quantity": {"type": ["string", "integer"], "description": "A decimal number, as a string or an integer."},
        "started_at": TIME,
        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 100},
        "account": {"type": "string", "description": "This account's or one of its managed accounts' id."},
        "direction": {"type": "string", "enum": ["", *UsageRecord.Direction.values]},
        "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
    }
    usage_body = _obj(
        {
            "records": {
                "type": "array",
                "minItems": 1,
                "maxItems": usage_services.MAX_BATCH,
                "items": _obj(usage_row, required=list(usage_services.REQUIRED_FIELDS)),
            }
        }
    )
    # A batch any key may send as is (the key's own account, a product of the catalogue, a past
    # month): 201 the first time, 200 (all duplicates) after. Schemathesis sends it (examples).
    usage_body["examples"] = [
        {
            "records": [
                {
                    "product": "sms.outbound",
                    "quantity": "2",
                    "started_at": "2025-01-15T10:00:00Z",
                    "idempotency_key": "example-sms-1",
                    "direction": "outbound",
                    "country": "US",
                    "destination": "+15551230001",
                },
                {
                    "product": "voice.outbound",
                    "quantity": 3,
                    "started_at": "2025-01-15T11:00:00+01:00",
                    "idempotency_key": "example-voice-1",
                    "direction": "outbound",
                    "country": "GB",
                },
            ]  # fmt: skip
        }
    ]
    products = {
        "anyOf": [
            {"type": "string", "enum": [reporting_api.ALL_PRODUCTS, *telnyx_names.FAMILIES]},
            {"type": "string", "pattern": r"^[a-z]+(\.[a-z]+)+$", "description": "A product sku."},
        ]
    }
    csv_list: Schema = {"style": "form", "explode": False}
    usage_parameters = [
        _query(
            "product",
            products,
            f"A Telnyx product family ({', '.join(telnyx_names.FAMILIES)}), a sku "
            f"(see /usage_reports/options) or {reporting_api.ALL_PRODUCTS}.",
            required=True,
            example="messaging",
        ),  # fmt: skip
        _query(
            "dimensions",
            {"type": "array", "minItems": 1, "items": {"type": "string", "enum": DIMENSION_NAMES}},
            "Ours and Telnyx's (country_code, country_iso: country).",
            required=True,
            example=["direction", "country_code"],
            **csv_list,
        ),  # fmt: skip
        _query(
            "metrics",
            {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(reporting_api.METRICS)}},
            "cost only where the account may see pricing (else 403 pricing_hidden).",
            required=True,
            example=["count", "quantity"],
            **csv_list,
        ),  # fmt: skip
        _query(
            "start_date",
            {"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}]},
            "Inclusive: any ISO 8601 instant with an offset (2022-12-24T19:20:30-05:00), a time without one "
            "(UTC), or a date (its 00:00 UTC). With end_date.",
            example="2022-12-24T19:20:30-05:00",  # Telnyx's documentation's
        ),  # fmt: skip
        _query(
            "end_date",
            {"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}]},
            f"Exclusive; the window is at most {reporting_api.MAX_RANGE_DAYS} days.",
            example="2022-12-25T19:20:30-05:00",
        ),  # fmt: skip
        _query(
            "date_range",
            {
                "type": "string",
                "pattern": r"^(today|yesterday|this_month|last_month|"
                r"last_[0-9]{1,3}_(days|weeks))$",
            },
            "Instead of start_date and end_date.",
        ),  # fmt: skip
        _query("format", {"type": "string", "enum": ["json", "csv"], "default": "json"}),
        _query("managed_accounts", BOOLEAN_TEXT, "Manager keys only: the aggregate of its managed accounts."),
        _query(
            "sort",
            {"type": "array", "items": {"type": "string", "pattern": "^-?[a-z_]+$"}},
            "Requested dimensions or metrics, - for descending.",
            **csv_list,
        ),  # fmt: skip
        *PAGING,
    ]
    report_ok = {
        "content": {
            JSON: {"schema": _list(ref("UsageReportRow"), meta=ref("UsageReportMeta"))},
            "text/csv": {"schema": {"type": "string"}},
        }
    }
    invoice_path = [_path("invoice_id")]
    managed_path = [_path("managed_id")]
    return {
        "/openapi.json": {
            "get": _operation("This document", _responses({200: {"type": "object"}}, keyed=False), keyed=False)
        },
        "/managed_accounts": {
            "get": _operation(
                "List the manager's managed accounts",
                _responses({200: _list(ref("ManagedAccount"))}),
                parameters=[
                    *(
                        _query(
                            f"filter[{field}][{op}]",
                            contains if op == "contains" else {"type": "string"},
                            "Case-insensitive.",
                        )  # fmt: skip
                        for field in ("email", "organization_name")
                        for op in ("contains", "eq")
                    ),
                    _query(
                        "filter[status][eq]",
                        {"type": "string", "enum": status_filters},
                        "Overrides include_cancelled_accounts. blocked: disabled accounts and those whose "
                        "service_status is blocked (a spend limit, exhausted credit, the manager's block).",
                    ),  # fmt: skip
                    _query("include_cancelled_accounts", BOOLEAN_TEXT),
                    _query("sort", {"type": "string", "enum": list(accounts_api.SORTS), "default": "-created_at"}),
                    *PAGING,
                ],
            ),
            "post": _operation(
                "Create a managed account",
                _responses({201: _one(ref("ManagedAccount"))}, body=True),
                body=create_body,
                description="The answer carries the new account's API key in clear, once.",
            ),
        },
        "/managed_accounts/{managed_id}": {
            "get": _operation(
                "Retrieve a managed account (with its balance unless roll-up)",
                _responses({200: _one(ref("ManagedAccount"))}),
                parameters=managed_path,
            ),
            "patch": _operation(
                "Update a managed account",
                _responses({200: _one(ref("ManagedAccount"))}, body=True),
                parameters=managed_path,
                body=patch_body,
            ),
        },
        **{
            f"/managed_accounts/{{managed_id}}/actions/{action}": {
                "post": _operation(
                    f"{action.capitalize()} a managed account",
                    _responses({200: _one(ref("ManagedAccount"), meta=action_meta)}, body=True),
                    parameters=managed_path,
                    body=action_body,
                    body_required=False,
                )
            }
            for action in ("disable", "enable")
        },
        "/audit_events": {
            "get": _operation(
                "The key's account's audit log",
                _responses({200: _list(ref("AuditEvent"))}),
                parameters=[
                    _query("filter[created_after]", TIME),
                    _query("filter[created_before]", TIME),
                    _query("sort", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}),
                    *PAGING,
                ],
            )
        },
        "/usage_reports": {
            "get": _operation(
                "A usage report",
                _responses({200: report_ok}),
                parameters=usage_parameters,
                description="Any other parameter (filter[...] included) is a 422.",
            )
        },
        "/usage_reports/options": {
            "get": _operation(
                "What product, dimensions and metrics may be",
                _responses({200: _obj({"data": {"type": "array", "items": ref("UsageReportOption")}})}),
                parameters=[_query("product", products)],
            )
        },
        "/usage_records": {
            "post": _operation(
                "Ingest a batch of usage records (our extension)",
                _responses({200: _one(ref("UsageBatch")), 201: _one(ref("UsageBatch"))}, body=True),
                body=usage_body,
                description="Atomic per batch, idempotent per record; 201 when any record was new, 200 when "
                "all were duplicates; on 422 one error per bad row and field (/records/<index>/<field>).",
            )
        },
        "/balance": {
            "get": _operation(
                "The key's account's balance",
                _responses({200: _one(ref("Balance"))}),
                description="403 billed_to_manager for a roll-up managed account, which has none of its own.",
            )
        },
        "/invoices": {
            "get": _operation(
                "The key's account's invoices",
                _responses({200: _list(ref("Invoice"))}),
                parameters=[
                    _query(
                        "sort", {"type": "string", "enum": list(billing_api.INVOICE_SORTS), "default": "-period_start"}
                    ),  # fmt: skip
                    *PAGING,
                ],
            )
        },
        "/invoices/{invoice_id}": {
            "get": _operation(
                "One invoice",
                _responses({200: _one(ref("Invoice"))}),
                parameters=[
                    *invoice_path,
                    _query(
                        "action",
                        {"type": "string", "enum": list(billing_api.INVOICE_ACTIONS), "default": "json"},
                        "link adds download_url, a signed link to the PDF valid 15 minutes.",
                    ),  # fmt: skip
                ],
            )
        },
    }


# --- Credit transfers, spend limits, credit limits (billing.api, controls.api) ---------------------------

NULLABLE_MONEY = {"type": ["string", "null"], "pattern": MONEY["pattern"]}
AMOUNT_IN = {"anyOf": [{"type": "string", "examples": ["10.00"]}, {"type": "number"}],
             "description": "A decimal string (or a JSON number) in USD; whole cents."}  # fmt: skip


def _money_paths() -> Schema:
    """Credit transfers (Vonage's credit-transfers shape), spend limits (Telnyx's SpendLimit fields
    where they fit: `spend_usd`, `period_start`/`period_end`, `limit` null when none is set) and
    the credit limit a manager gives a separately billed managed account."""
    transfer = _record("credit_transfer", {
        "id": UUID, "amount": MONEY, "currency": {"type": "string"}, "from": UUID, "to": UUID,
        "direction": {"type": "string", "enum": list(CreditTransfer.Direction.values)},
        "reference": {"type": "string"}, "created_at": TIME,
    })  # fmt: skip
    transfer_body = _obj({
        "from": {**UUID, "description": "The sender: the manager, or one of its separately billed managed accounts."},
        "to": {**UUID, "description": "The receiver: the other one."},
        "amount": AMOUNT_IN,
        "reference": {"type": "string", "maxLength": 255},
    }, required=["from", "to", "amount"])  # fmt: skip
    idempotency = {
        "name": billing_api.IDEMPOTENCY_HEADER, "in": "header", "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": billing_api.MAX_IDEMPOTENCY_KEY},
        "description": "The same key and body return the first transfer (200, Idempotent-Replayed: true) and "
        "move nothing twice; the same key with another body is a 409 idempotency_key_reused.",
    }  # fmt: skip
    one_limit = _obj({
        "id": UUID, "monthly_amount": MONEY, "daily_amount": NULLABLE_MONEY,
        "action": {"type": "string", "enum": list(SpendLimit.Action.values)},
        "monthly_reached": {"type": "boolean"}, "daily_reached": {"type": "boolean"},
        "created_at": TIME, "updated_at": TIME,
    })  # fmt: skip
    nullable_limit = {"anyOf": [one_limit, {"type": "null"}]}
    spend_limit = _record("spend_limit", {
        "account_id": UUID, "set_by": {"type": "string", "enum": list(SpendLimit.SetBy.values)},
        "product": {"type": ["string", "null"]}, "product_name": {"type": "string"}, "limit": nullable_limit,
        "currency": {"type": "string"}, "period_start": {"type": "string", "format": "date"},
        "period_end": {"type": "string", "format": "date"},
        "monthly_spend_usd": {**NULLABLE_MONEY, "description": "null where the key's account may not see pricing."},
        "daily_spend_usd": NULLABLE_MONEY,
        "service_status": {"type": "string", "enum": ["active", "blocked"]},
        "service_blocked_reason": {"type": ["string", "null"]},
        "manager_limit": {**nullable_limit, "description": "On /spend_limit only: the manager's limit on it."},
    }, optional=("manager_limit",))  # fmt: skip
    limit_body = _obj({
        "product": {"type": ["string", "null"], "description": "A product's SKU; absent or null: every product."},
        "monthly_amount": AMOUNT_IN,
        "daily_amount": {"anyOf": [*AMOUNT_IN["anyOf"], {"type": "null"}]},
        "action": {"type": "string", "enum": list(SpendLimit.Action.values), "default": "block"},
    }, required=["monthly_amount"])  # fmt: skip
    credit = _record("credit_limit", {"account_id": UUID, "credit_limit": MONEY, "balance": MONEY,
                                      "available_credit": MONEY, "currency": {"type": "string"}})  # fmt: skip
    product = [_query("product", {"type": "string"}, "A product's SKU; absent: the limit on every product.")]
    managed = [_path("managed_id")]

    def limit_item(where: str, parameters: list[Schema]) -> Schema:
        return {
            "get": _operation(f"The spend limit {where}", _responses({200: _one(spend_limit)}),
                              parameters=[*parameters, *product]),
            "put": _operation(f"Set the spend limit {where}", _responses({200: _one(spend_limit)}, body=True),
                              parameters=parameters, body=limit_body,
                              description="controls' rules: positive whole cents, daily within monthly, an "
                              "account's own never above its manager's, a roll-up account's set by its manager."),
            "delete": _operation(f"Remove the spend limit {where}", _responses({200: _one(spend_limit)}),
                                 parameters=[*parameters, *product], description="404 when none is set."),
        }  # fmt: skip

    return {
        "/credit_transfers": {
            "get": _operation(
                "The transfers the key's account is a party to, newest first",
                _responses({200: _list(transfer)}),
                parameters=[_query("filter[account_id]", UUID, "Either party."),
                            _query("filter[created_after]", TIME), _query("filter[created_before]", TIME),
                            *PAGING],
                description="403 billed_to_manager for a roll-up managed account.",
            ),
            "post": _operation(
                "Transfer credit between a manager and one of its separately billed managed accounts",
                _responses({200: _one(transfer), 201: _one(transfer)}, body=True, more=(409,)),
                parameters=[idempotency], body=transfer_body,
                description="A manager's key only; refused (422 at /amount) beyond the sender's available "
                "credit (a managed account gives back at most what it holds).",
            ),
        },
        "/credit_transfers/{transfer_id}": {
            "get": _operation("One transfer", _responses({200: _one(transfer)}), parameters=[_path("transfer_id")])
        },
        "/spend_limit": limit_item("of the key's account (its own)", []),
        "/managed_accounts/{managed_id}/spend_limit": limit_item("a manager set on a managed account", managed),
        "/managed_accounts/{managed_id}/credit_limit": {
            "get": _operation("A separately billed managed account's credit limit", _responses({200: _one(credit)}),
                              parameters=managed),
            "put": _operation("Set it, within what the manager guarantees (its own credit limit)",
                              _responses({200: _one(credit)}, body=True), parameters=managed,
                              body=_obj({"credit_limit": AMOUNT_IN})),
        },
    }  # fmt: skip


# --- A managed account's users (accounts.api) ---------------------------------------------------------


def _user_paths() -> Schema:
    """Telnyx's OrganizationUser fields, with the role and a pending invitation in the same shape."""
    user = _record(accounts_api.USER_RECORD_TYPE, {
        "id": {**UUID, "description": "A member's user id, or a pending invitation's id (user_status invited)."},
        "email": {"type": "string"}, "role": {"type": "string", "enum": list(Role.values)},
        "user_status": {"type": "string", "enum": list(accounts_api.USER_STATUSES)},
        "created_at": TIME, "last_sign_in_at": NULLABLE_TIME, "invitation_expires_at": NULLABLE_TIME,
    })  # fmt: skip
    managed = [_path("managed_id")]
    rule = ("A manager's key only (403 for any other, and under X-Managed-Account-Id); changes follow the "
            "log-in-as rule with the key's creator (403 with its code), audited as account_manager.")  # fmt: skip
    return {
        "/managed_accounts/{managed_id}/users": {
            "get": _operation("A managed account's members, then its pending invitations",
                              _responses({200: _list(user)}), parameters=[*managed, *PAGING], description=rule),
            "post": _operation(
                "Invite someone by e-mail with a role", _responses({201: _one(user)}, body=True),
                parameters=managed, description=rule + " The answer is the same whether or not the address has "
                "a user already.",
                body=_obj({"email": {"type": "string", "format": "email", "maxLength": 254},
                           "role": {"type": "string", "enum": list(Role.values)}}),
            ),
        },
        "/managed_accounts/{managed_id}/users/{user_id}": {
            "delete": _operation(
                "Remove a member, or revoke a pending invitation given its id", _responses({200: _one(user)}),
                parameters=[*managed, _path("user_id")],
                description=rule + " Answers the record as it was; 422 for the last owner; 404 for an unknown "
                "or malformed id.",
            )
        },
    }  # fmt: skip


# --- Notification settings, the low-balance threshold (notifications.api) --------------------------------


def _notification_paths() -> Schema:
    """The key creator's alert choices, as Telnyx's notification settings (one per event condition,
    on the e-mail channel, for the account), and the account's low-balance threshold."""
    condition = {"type": "string", "enum": [str(a) for a in Alert]}
    setting = _record("notification_setting", {
        "id": condition, "notification_event_condition_id": condition, "name": {"type": "string"},
        "notification_channel_id": {"type": "string", "const": "email"},
        "channel_type_id": {"type": "string", "const": "email"}, "channel_destination": {"type": "string"},
        "associated_record_type": {"type": "string", "const": "account"}, "associated_record_type_value": UUID,
        "status": {"type": "string", "enum": list(notifications_api.STATUSES)},
        "managed_accounts": {"type": "boolean", "description": "Also about the manager's managed accounts."},
        "user_id": UUID,
    })  # fmt: skip
    threshold = _record("low_balance_threshold", {
        "account_id": UUID, "enabled": {"type": "boolean"}, "threshold_amount": NULLABLE_MONEY,
        "currency": {"type": "string"}, "balance": MONEY, "below": {"type": "boolean"},
        "below_since": NULLABLE_TIME, "updated_at": NULLABLE_TIME,
    })  # fmt: skip
    whose = ("The key creator's own choices in the key's account (X-Managed-Account-Id does not change whose); "
             "404 when the creator is no longer a member.")  # fmt: skip
    return {
        "/notification_settings": {
            "get": _operation("Every alert with the key creator's choice", _responses({200: _list(setting)}),
                              description=whose),
        },
        "/notification_settings/{setting_id}": {
            "get": _operation("One alert's choice", _responses({200: _one(setting)}),
                              parameters=[_path("setting_id")], description=whose),
            "patch": _operation(
                "E-mail the alert or not (and, on a manager, about its managed accounts)",
                _responses({200: _one(setting)}, body=True), parameters=[_path("setting_id")], description=whose,
                body=_obj({"status": {"type": "string", "enum": list(notifications_api.STATUSES)},
                           "managed_accounts": {"type": "boolean"}}, required=[]),
            ),
        },
        "/low_balance_threshold": {
            "get": _operation("The account's low-balance alert", _responses({200: _one(threshold)}),
                              description="404 for a roll-up managed account (no balance of its own)."),
            "patch": _operation(
                "Set it: an alert (e-mail, balance.low webhook, banner) when the balance falls below",
                _responses({200: _one(threshold)}, body=True),
                body=_obj({"threshold_amount": AMOUNT_IN, "enabled": {"type": "boolean"}}, required=[]),
                description="Whole cents, at most USD 10,000,000.00 either side of zero; threshold_amount is "
                "required the first time.",
            ),
        },
    }  # fmt: skip


# --- Webhook endpoints and their deliveries (webhooks.api) -------------------------------------------------


def _webhook_paths() -> Schema:
    """An account's endpoints (the secret in clear in the create answer only) and their delivery log."""
    event_type = {"type": "string", "enum": [str(t) for t in EventType]}
    url = {"type": "string", "minLength": 1, "maxLength": webhooks_api.MAX_URL,
           "description": "An http:// or https:// URL with a host, no user or password; in production not "
           "to a loopback, private or link-local address (422 at /url)."}  # fmt: skip
    fields: dict[str, dict[str, Any]] = {
        "url": url,
        "description": {"type": "string", "maxLength": webhooks_api.MAX_DESCRIPTION},
        "event_types": {"type": "array", "minItems": 1, "items": event_type},
        "include_managed_accounts": {"type": "boolean", "description": "A manager's endpoint only: also the events "
                                     "of all its managed accounts (422 on any other)."},
    }  # fmt: skip
    endpoint = _record("webhook_endpoint", {
        "id": UUID, "account_id": UUID, "url": {"type": "string"}, "description": {"type": "string"},
        "event_types": {"type": "array", "items": event_type}, "include_managed_accounts": {"type": "boolean"},
        "enabled": {"type": "boolean"}, "created_at": TIME, "updated_at": TIME,
        "secret": {"type": "string", "pattern": "^whsec_", "description": "In the create answer only."},
    }, optional=("secret",))  # fmt: skip
    delivery = _record("webhook_delivery", {
        "id": UUID, "webhook_endpoint_id": UUID,
        "webhook_id": {"type": "string", "description": "The webhook-id header of every attempt."},
        "event_id": {"type": "string"}, "event_type": event_type,
        "status": {"type": "string", "enum": list(WebhookDelivery.Status.values)},
        "attempts": {"type": "integer", "minimum": 0}, "response_code": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]}, "last_attempt_at": NULLABLE_TIME,
        "next_attempt_at": NULLABLE_TIME, "created_at": TIME,
        "data": {"type": "object", "description": "The envelope's data as sent (Telnyx's: record_type, id, "
                 "event_type, occurred_at, payload)."},
    })  # fmt: skip
    one_endpoint = [_path("endpoint_id")]
    one_delivery = [*one_endpoint, _path("delivery_id")]
    status = _query(webhooks_api.STATUS_FILTER, {"type": "string", "enum": list(WebhookDelivery.Status.values)})
    return {
        "/webhook_endpoints": {
            "get": _operation("The key's account's webhook endpoints, oldest first",
                              _responses({200: _list(endpoint)}), parameters=PAGING),
            "post": _operation("Add an endpoint; the answer carries its signing secret, shown this once",
                               _responses({201: _one(endpoint)}, body=True),
                               body=_obj(fields, required=["url", "event_types"])),
        },
        "/webhook_endpoints/{endpoint_id}": {
            "get": _operation("One endpoint", _responses({200: _one(endpoint)}), parameters=one_endpoint),
            "patch": _operation("Change an endpoint, or enable or disable it",
                                _responses({200: _one(endpoint)}, body=True), parameters=one_endpoint,
                                body=_obj({**fields, "enabled": {"type": "boolean"}}, required=[])),
            "delete": _operation("Delete an endpoint and its delivery log; answers the record as it was",
                                 _responses({200: _one(endpoint)}), parameters=one_endpoint),
        },
        "/webhook_endpoints/{endpoint_id}/deliveries": {
            "get": _operation("The endpoint's deliveries, newest first", _responses({200: _list(delivery)}),
                              parameters=[*one_endpoint, status, *PAGING]),
        },
        "/webhook_endpoints/{endpoint_id}/deliveries/{delivery_id}": {
            "get": _operation("One delivery", _responses({200: _one(delivery)}), parameters=one_delivery),
        },
        "/webhook_endpoints/{endpoint_id}/deliveries/{delivery_id}/actions/resend": {
            "post": _operation("Send a delivered or failed delivery again, with the same webhook-id",
                               _responses({200: _one(delivery)}, body=True), parameters=one_delivery,
                               body=_obj({}), body_required=False,
                               description="422 while it is still being sent, or when the endpoint is disabled."),
        },
    }  # fmt: skip


def document() -> Schema:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Mission Control v2 API",
            "version": "2",
            "description": "Telnyx's v2 shapes for managed accounts, balance, invoices, audit events and usage "
            "reports. Every answer is JSON (errors in the Error shape) and carries X-Request-Id.",
        },
        "servers": [{"url": "/v2"}],
        "security": [{"bearer": []}],
        "paths": {**_paths(), **_money_paths(), **_user_paths(), **_webhook_paths(), **_notification_paths()},
        "components": _components(),
    }


@csrf_exempt  # no key, no cookie: nothing to forge
def openapi_json(request: HttpRequest) -> JsonResponse:
    if request.method not in ("GET", "HEAD"):
        response = ApiError(405, "method_not_allowed", "Method not allowed", f"{request.method} is not allowed here.")
        answer = response.response()
        answer["Allow"] = "GET, HEAD"
        return answer
    return JsonResponse(document())
