"""Strict pydantic models of our /v2 answers, generated from OUR OpenAPI document (portal/openapi.py),
for the official telnyx SDK to validate responses with.

The SDK (Stainless-generated) validates a response when the client has
`_strict_response_validation=True`: `client.get(path, cast_to=Model)` (and post/put/patch/delete),
or `client.<resource>.with_raw_response.<method>(...).parse(to=Model)`, runs `Model.model_validate`
on the JSON body and raises `telnyx.APIResponseValidationError` when it fails. The SDK's own
models subclass `telnyx._models.BaseModel`, which allows any extra field and makes almost every
field optional; the models here subclass it too but are closed: a field the document does not
declare, a missing required field, a wrong type (strict: no "1" for 1), a value outside an enum or
const, a string off its pattern or format (date-time with an offset, date, uuid, uri) or a number
out of its bounds all fail.

`response_model(method, path, status)` is the model of an operation's JSON answer; the component
schemas are `component("ManagedAccount")` and so on. A schema construct this converter does not
know fails loudly (so the document cannot grow past what the SDK tests check)."""

from __future__ import annotations

import keyword
import re
import uuid
from datetime import date, datetime
from functools import cache
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, create_model
from telnyx._models import BaseModel

from portal.openapi import document

Schema = dict[str, Any]
IGNORED_KEYWORDS = {"description", "examples", "default", "title"}


class Strict(BaseModel):
    """The SDK's BaseModel, closed and strict."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=False)

    def _set_private_attributes(self, **_: Any) -> None:
        """The post-parser a typed list call runs on its page (`parse(to=...)` keeps it): ours are
        not pages, there is nothing to keep."""


def _instant(value: str) -> str:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} is a date-time without an offset")
    if not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    return value


def _date(value: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"{value!r} is not a full-date")
    date.fromisoformat(value)
    return value


def _uuid(value: str) -> str:
    if str(uuid.UUID(value)) != value.lower():
        raise ValueError(f"{value!r} is not a UUID in its canonical form")
    return value


def _uri(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or not (parts.netloc or parts.path):
        raise ValueError(f"{value!r} is not an absolute URI")
    return value


def _email(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


FORMATS = {"date-time": _instant, "date": _date, "uuid": _uuid, "uri": _uri, "email": _email}


class _Converter:
    def __init__(self, doc: Schema):
        self.doc = doc
        self.named: dict[str, Any] = {}

    def component(self, name: str) -> Any:
        if name not in self.named:
            self.named[name] = self.convert(self.doc["components"]["schemas"][name], name)
        return self.named[name]

    def convert(self, schema: Schema, name: str) -> Any:
        unknown = set(schema) - IGNORED_KEYWORDS - {
            "$ref", "type", "properties", "required", "additionalProperties", "items", "enum", "const",
            "oneOf", "anyOf", "pattern", "format", "minLength", "maxLength", "minimum", "maximum",
            "minItems", "maxItems",
        }  # fmt: skip
        assert not unknown, f"{name}: teach tests/api/sdk_models.py the keywords {sorted(unknown)}"
        if "$ref" in schema:
            return self.component(schema["$ref"].removeprefix("#/components/schemas/"))
        if "const" in schema:
            return Literal[schema["const"]]
        if "enum" in schema:
            return Literal[tuple(schema["enum"])]
        for combinator in ("oneOf", "anyOf"):
            if combinator in schema:
                rest = {k: v for k, v in schema.items() if k != combinator}
                options = [
                    self.convert({**rest, **option}, f"{name}{n}") for n, option in enumerate(schema[combinator])
                ]
                return Union[tuple(options)]  # noqa: UP007 - built at run time
        kind = schema.get("type")
        if kind is None:
            return Any
        if isinstance(kind, list):
            options = [self.convert({**schema, "type": one}, name) for one in kind]
            return Union[tuple(options)]  # noqa: UP007
        return getattr(self, f"_{kind}")(schema, name)

    def _null(self, schema: Schema, name: str) -> Any:
        return None

    def _boolean(self, schema: Schema, name: str) -> Any:
        return StrictBool

    def _integer(self, schema: Schema, name: str) -> Any:
        return Annotated[StrictInt, Field(ge=schema.get("minimum"), le=schema.get("maximum"))]

    def _number(self, schema: Schema, name: str) -> Any:
        return Annotated[Union[StrictInt, StrictFloat], Field(ge=schema.get("minimum"), le=schema.get("maximum"))]  # noqa: UP007

    def _string(self, schema: Schema, name: str) -> Any:
        constraints = Field(pattern=schema.get("pattern"), min_length=schema.get("minLength"),
                            max_length=schema.get("maxLength"))  # fmt: skip
        if "format" in schema:
            assert schema["format"] in FORMATS, f"{name}: teach tests/api/sdk_models.py the format {schema['format']}"
            return Annotated[StrictStr, constraints, AfterValidator(FORMATS[schema["format"]])]
        return Annotated[StrictStr, constraints]

    def _array(self, schema: Schema, name: str) -> Any:
        item = self.convert(schema.get("items", {}), f"{name}Item")
        return Annotated[list[item], Field(min_length=schema.get("minItems"), max_length=schema.get("maxItems"))]  # type: ignore[valid-type]

    def _object(self, schema: Schema, name: str) -> Any:
        properties: Schema = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if not properties:
            assert extra is not False, f"{name}: a closed object without properties"
            return dict[str, Any] if extra is True else dict[str, self.convert(extra, f"{name}Value")]  # type: ignore[misc]
        assert extra is False, f"{name}: an open object with properties (close it in portal/openapi.py)"
        required = set(schema.get("required", []))
        record_type = properties.get("record_type", {}).get("const")
        model_name = _camel(record_type) if record_type else name
        fields: dict[str, Any] = {}
        for field, field_schema in properties.items():
            annotation = self.convert(field_schema, f"{model_name}{_camel(field)}")
            default = ... if field in required else None  # absent: None; present: of the declared type
            fields[python_name(field)] = (annotation, Field(default, alias=field))
        return create_model(model_name, __base__=Strict, **fields)


def python_name(field: str) -> str:
    """The attribute a document field is read by: itself, or `from_` for a keyword (by alias it
    validates as the document names it)."""
    if keyword.iskeyword(field) or hasattr(Strict, field):
        return f"{field}_"
    assert field.isidentifier(), field
    return field


def _camel(text: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", text) if part)


@cache
def _converter() -> _Converter:
    return _Converter(document())


def component(name: str) -> Any:
    """The model of a schema in the document's components (ManagedAccount, Balance, Error, ...)."""
    return _converter().component(name)


@cache
def response_model(method: str, path: str, status: int) -> Any:
    """The model of the JSON answer `status` of the operation `method path` (a documented path:
    "/managed_accounts/{managed_id}"). Fails when the document has no such JSON answer."""
    operation = _converter().doc["paths"][path][method.lower()]
    answer = operation["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    return _converter().convert(schema, _camel(f"{method} {path} {status}"))


def documented_operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation in the document."""
    return [
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in ("get", "put", "post", "patch", "delete")
    ]


__all__ = ["Strict", "component", "documented_operations", "python_name", "response_model"]
