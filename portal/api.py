"""The v2 JSON API's plumbing, shared by every app's API views: key authentication, the error
shape of the contract (`{"errors": [{code, title, detail, source}]}`), strict JSON bodies,
`page[number]`/`page[size]` paging and a per-key rate limit."""

from __future__ import annotations

import ipaddress
import json
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, Concatenate, Literal, ParamSpec, Protocol, overload

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts.actor import Actor
from accounts.api_access import MANAGED_ACCOUNT_HEADER, ApiRequest, acting_on, on_behalf
from accounts.errors import Refusal
from accounts.models import ApiKey
from accounts.services import api_key_for

MAX_PAGE_SIZE = 250
MAX_PAGE_NUMBER = 1_000_000  # keeps the row offset far inside what databases accept
DEFAULT_PAGE_SIZE = 20


class ApiError(Exception):
    def __init__(self, status: int, code: str, title: str, detail: str = "", *, pointer: str | None = None,
                 parameter: str | None = None, more: Iterable[dict[str, Any]] = ()) -> None:  # fmt: skip
        super().__init__(detail or title)
        self.status = status
        self.errors = [error(code, title, detail, pointer=pointer, parameter=parameter), *more]

    def response(self) -> JsonResponse:
        return JsonResponse({"errors": self.errors}, status=self.status)


def error(
    code: str, title: str, detail: str = "", *, pointer: str | None = None, parameter: str | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"code": code, "title": title, "detail": detail or title}
    if pointer is not None:
        item["source"] = {"pointer": pointer}
    elif parameter is not None:
        item["source"] = {"parameter": parameter}
    return item


def refusal_error(refusal: Refusal) -> ApiError:
    """A service's refusal in the contract's shape: its status, and one error per problem it names."""
    first, *rest = refusal.problems() or Refusal.problems(refusal)  # never an empty `errors` list
    more = [error(p.code, p.title, p.detail, pointer=p.pointer) for p in rest]
    return ApiError(refusal.status, first.code, first.title, first.detail, pointer=first.pointer, more=more)


def invalid(field: str, detail: str, *, query: bool = False) -> ApiError:
    """A 422 naming the invalid body field (`/field`) or query parameter."""
    if query:
        return ApiError(422, "invalid_parameter", "Invalid parameter", detail, parameter=field)
    return ApiError(422, "invalid_field", "Invalid field", detail, pointer=f"/{field}")


_P = ParamSpec("_P")
ApiView = Callable[Concatenate[ApiRequest, _P], HttpResponseBase]


def api_view(*methods: str) -> Callable[[ApiView[_P]], ApiView[_P]]:
    """Authenticates the key, enforces the method and the rate limit, and turns every refusal
    into the contract's error shape. The view gets `request.api_key`, and `request.on_behalf` when a
    manager's key names one of its managed accounts in `X-Managed-Account-Id` (checked on every
    request; `accounts.api_access.key_account` then answers that account)."""

    def decorate(view: ApiView[_P]) -> ApiView[_P]:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: ApiRequest, /, *args: _P.args, **kwargs: _P.kwargs) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    response = ApiError(405, "method_not_allowed", "Method not allowed",
                                        f"{request.method} is not allowed here.").response()  # fmt: skip
                    response["Allow"] = ", ".join(methods)
                    return response
                request.api_key = _authenticate(request)
                _rate_limit(request.api_key)
                request.on_behalf = on_behalf(request.api_key, request.headers.get(MANAGED_ACCOUNT_HEADER))
                _refuse_nul_in_query(request)
                return view(request, *args, **kwargs)
            except ApiError as refused:
                return refused.response()
            except RequestDataTooBig:  # Django's own refusal of a body over its limit, in our shape
                return too_large().response()
            except Http404:
                return ApiError(404, "not_found", "Not found", "No such resource.").response()
            except PermissionDenied as denied:
                return ApiError(403, "forbidden", "Forbidden", str(denied) or "This key may not do that.").response()
            except Refusal as refused:  # every domain refusal, mapped here once
                return refusal_error(refused).response()

        return wrapper

    return decorate


def _refuse_nul_in_query(request: HttpRequest) -> None:
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            raise invalid(name.replace("\x00", ""), "contains a NUL character.", query=True)


RATE_WINDOW_SECONDS = 60


class TooManyRequests(ApiError):
    """A 429 whose `Retry-After` gives the whole seconds left of the limit's window."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(429, "rate_limited", "Too many requests", detail)
        self.retry_after = retry_after

    def response(self) -> JsonResponse:
        response = super().response()
        response["Retry-After"] = str(self.retry_after)
        return response


def _authenticate(request: HttpRequest) -> ApiKey:
    """The request's key. Failures are counted per client address, and an address over its limit
    is refused before any key is looked up, so guessing keys costs the database nothing."""
    window, seconds_left = _rate_window()
    failures = f"api-auth-failures:{_client_address(request)}:{window}"
    if (cache.get(failures) or 0) >= settings.API_AUTH_FAILURES_PER_MINUTE:
        raise TooManyRequests(
            f"Too many failed authentications from this address; retry in {seconds_left} seconds.",
            retry_after=seconds_left,
        )
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    key = api_key_for(raw.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        _count(failures)
        raise ApiError(401, "unauthorized", "Authentication failed",
                       "Send a valid API key as 'Authorization: Bearer <key>'.")  # fmt: skip
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)  # at most one write a minute per key
    return key


def _rate_limit(key: ApiKey) -> None:
    """A fixed one-minute window per key in the shared cache (Redis in production)."""
    window, seconds_left = _rate_window()
    if _count(f"api-rate:{key.pk}:{window}") > settings.API_RATE_LIMIT_PER_MINUTE:
        raise TooManyRequests(
            f"This key may make {settings.API_RATE_LIMIT_PER_MINUTE} requests a minute.", retry_after=seconds_left
        )


def _rate_window() -> tuple[int, int]:
    """The current window's number and the whole seconds left of it (at least 1)."""
    now = time.time()
    window = int(now // RATE_WINDOW_SECONDS)
    return window, max(1, math.ceil((window + 1) * RATE_WINDOW_SECONDS - now))


def _count(slot: str) -> int:
    """Adds one to a window's counter in the cache and returns the count."""
    cache.add(slot, 0, timeout=2 * RATE_WINDOW_SECONDS)
    try:
        return cache.incr(slot)
    except ValueError:  # the slot expired between add and incr
        cache.set(slot, 1, timeout=2 * RATE_WINDOW_SECONDS)
        return 1


def _client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR, an IPv6 client by its /64 (one host often holds a whole /64). Behind a proxy,
    the proxy must set REMOTE_ADDR to the client's address, or every client counts as the proxy."""
    raw = request.META.get("REMOTE_ADDR") or ""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False).network_address)
    return str(address)


def actor(request: ApiRequest) -> Actor:
    """Changes made through a key are made by the person who created the key; through a manager's key
    naming a managed account, by that person acting as the account's owner, as in a log-in-as session
    (`change_made_by` account_manager)."""
    acting = acting_on(request)
    return Actor(
        user=request.api_key.created_by,
        acting_as=acting.acting_as if acting is not None else None,
        ip_address=request.META.get("REMOTE_ADDR"),
    )


def too_large() -> ApiError:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return ApiError(413, "payload_too_large", "Payload too large",
                    f"The body is larger than the {limit:,} bytes this server accepts; split the batch.")  # fmt: skip


def json_body(request: HttpRequest, *, allowed: Iterable[str]) -> dict[str, Any]:
    """The request's JSON object; 415, 400, 413 or 422 when it is not one, or names an unknown field.
    JSON on the wire is UTF-8 without a byte-order mark (RFC 8259): any other encoding is refused
    rather than guessed at, as Python's json.loads would do for bytes."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Unsupported media type", "Send a JSON body (application/json).")
    charset = (request.content_params or {}).get("charset", "utf-8").strip().lower()
    if charset not in ("utf-8", "utf8"):
        raise ApiError(415, "unsupported_media_type", "Unsupported media type",
                       f"Send the JSON body in UTF-8, not {charset[:40]}.")  # fmt: skip
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_large() from None
    if raw.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        raise _malformed("The request body starts with a byte-order mark; send UTF-8 JSON without one.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise _malformed(f"The request body is not UTF-8 text (byte {bad.start + 1}).") from None
    try:
        body = json.loads(text or "{}")
    except RecursionError:
        raise _malformed("The request body is nested too deeply.") from None
    except ValueError:
        raise _malformed("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", "Invalid body", "The request body must be a JSON object.", pointer="")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(
            422, "unknown_field", "Unknown field", f"'{unknown[0]}' is not a field of this request.",
            pointer=f"/{unknown[0]}",
            more=[error("unknown_field", "Unknown field", f"'{f}' is not a field of this request.", pointer=f"/{f}")
                  for f in unknown[1:]],
        )  # fmt: skip
    return body


def _malformed(detail: str) -> ApiError:
    return ApiError(400, "malformed_json", "Malformed JSON", detail)


@overload
def string_field(body: dict[str, Any], name: str, *, required: Literal[True], max_length: int = 255) -> str: ...
@overload
def string_field(body: dict[str, Any], name: str, *, required: bool = False, max_length: int = 255) -> str | None: ...
def string_field(body: dict[str, Any], name: str, *, required: bool = False, max_length: int = 255) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(name, f"{name} is required.")
        return None
    if not isinstance(value, str):
        raise invalid(name, f"{name} must be a string.")
    if "\x00" in value:
        raise invalid(name, f"{name} contains a NUL character.")
    value = value.strip()
    if required and not value:
        raise invalid(name, f"{name} cannot be blank.")
    if len(value) > max_length:
        raise invalid(name, f"{name} is longer than {max_length} characters.")
    return value


@overload
def bool_field(body: dict[str, Any], name: str, default: bool) -> bool: ...
@overload
def bool_field(body: dict[str, Any], name: str, default: None = None) -> bool | None: ...
def bool_field(body: dict[str, Any], name: str, default: bool | None = None) -> bool | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise invalid(name, f"{name} must be true or false.")
    return value


def query_bool(request: HttpRequest, name: str) -> bool:
    value = request.GET.get(name, "false").lower()
    if value not in ("true", "false"):
        raise invalid(name, f"{name} must be true or false.", query=True)
    return value == "true"


class Pageable(Protocol):
    """What `page` pages: a queryset, or rows that count and slice like one."""

    def count(self) -> int: ...
    def __getitem__(self, index: slice, /) -> Iterable[Any]: ...


def page(request: HttpRequest, queryset: Pageable, serialize: Callable[[Any], dict[str, Any]]) -> JsonResponse:
    number = _page_param(request, "page[number]", default=1, maximum=MAX_PAGE_NUMBER)
    size = _page_param(request, "page[size]", default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    total = queryset.count()
    rows = queryset[(number - 1) * size : number * size]
    return JsonResponse(
        {
            "data": [serialize(row) for row in rows],
            "meta": {
                "page_number": number,
                "page_size": size,
                "total_pages": max(1, -(-total // size)),
                "total_results": total,
            },
        }
    )


def _page_param(request: HttpRequest, name: str, *, default: int, maximum: int | None) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, f"{name} must be a whole number.", query=True) from None
    if value < 1 or (maximum is not None and value > maximum):
        bounds = f"from 1 to {maximum}" if maximum else "1 or more"
        raise invalid(name, f"{name} must be {bounds}.", query=True)
    return value


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def query_time(request: HttpRequest, name: str) -> datetime | None:
    raw = request.GET.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid(name, f"{name} must be an ISO 8601 time between years 1 and 9999.", query=True) from None
