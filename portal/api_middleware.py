"""Under /v2/ every answer is JSON in the contract's shape (API.md, Conventions), the ones no API
view writes included: Django's site-wide handler500 and handler400 pages, its CSRF failure page,
a 404 raised outside an API view. API views answer in the shape themselves; this rewrites only
error answers that are not JSON, after Django has logged the failure (and the test client has
seen the exception) as for any page. The pages keep Django's HTML handlers."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase

from portal.api import error, too_large

API_PREFIX = "/v2/"
_CODES = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
_DETAILS = {
    400: "The request is malformed or was refused before it reached the API.",
    403: "This request is refused.",
    404: "No such resource.",
    405: "This method is not allowed here.",
    500: "The server failed to answer. The failure is logged under this answer's x-request-id; quote it to support.",
}
_NOT_COPIED = {"content-type", "content-length"}


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


class ApiErrorsMiddleware:
    """Second outermost, after the request id, so that it sees every refusal the other
    middleware writes (a disallowed host, a CSRF failure) and every 500 Django renders."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if _is_api(request) and response.status_code >= 400 and not _is_json(response):
            return _in_contract_shape(response)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        """Django answers a body over DATA_UPLOAD_MAX_MEMORY_SIZE with a 400; the contract says 413."""
        if _is_api(request) and isinstance(exception, RequestDataTooBig):
            return too_large().response()
        return None


def _is_json(response: HttpResponseBase) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


def _in_contract_shape(answer: HttpResponseBase) -> JsonResponse:
    """The same status and headers (Allow, Retry-After, the security headers), a JSON body."""
    status = answer.status_code
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    code = _CODES.get(status, "internal_error" if status >= 500 else "client_error")
    detail = _DETAILS.get(status, _DETAILS[500] if status >= 500 else title)
    response = JsonResponse({"errors": [error(code, title, detail)]}, status=status)
    for name, value in answer.items():
        if name.lower() not in _NOT_COPIED:
            response[name] = value
    response.cookies = answer.cookies
    return response
