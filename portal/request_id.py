"""The request id: one per request, sent back on every answer as `X-Request-Id` (the header
Telnyx's API answers with and its clients log) and written on every log line of the request.

A well-formed id from the client or a proxy in front of us is kept, so one id follows the request
through every hop; anything else is replaced by a fresh UUID, so no header can put arbitrary text
into a log line or an answer."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest
from django.http.response import HttpResponseBase

HEADER = "X-Request-Id"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request this thread (or task) is answering, None outside a request."""
    return _current.get()


def _incoming_or_new(request: HttpRequest) -> str:
    given = request.headers.get(HEADER, "")
    return given if _WELL_FORMED.fullmatch(given) else str(uuid.uuid4())


class RequestIdMiddleware:
    """Outermost, so that every answer, a redirect or a static file too, carries the id. The id
    stays current until Django signals the request finished (`forget_request_id`), because Django
    logs a 4xx/5xx answer ("Not Found: ...") after the middleware has returned it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = _incoming_or_new(request)
        _current.set(request_id)
        response = self.get_response(request)
        response[HEADER] = request_id
        return response


def forget_request_id(**kwargs: Any) -> None:
    """`request_finished` receiver: lines logged between requests carry no id."""
    _current.set(None)


class RequestIdFilter(logging.Filter):
    """Puts `request_id` on every record ("-" outside a request), for the formatters to print."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _current.get() or "-"
        return True
