# Partial stubs: django-tables2 ships no types and no stubs package exists. Only what the portal
# uses is typed; the rest of the module is Incomplete.
from collections.abc import Callable, Iterable
from typing import Any, Self

from _typeshed import Incomplete
from django.core.paginator import Page, Paginator
from django.http import HttpRequest

def __getattr__(name: str) -> Incomplete: ...

class Column:
    def __init__(
        self,
        verbose_name: str | None = None,
        accessor: str | Callable[..., Any] | None = None,
        default: Any = None,
        visible: bool = True,
        orderable: bool | None = None,
        attrs: dict[str, Any] | None = None,
        order_by: str | Iterable[str] | None = None,
        empty_values: Iterable[Any] | None = None,
        localize: bool | None = None,
        footer: str | Callable[..., Any] | None = None,
        exclude_from_export: bool = False,
        linkify: bool | str | dict[str, Any] | Callable[..., Any] = False,
        initial_sort_descending: bool = False,
    ) -> None: ...

class BooleanColumn(Column):
    def __init__(self, null: bool = False, yesno: str | Iterable[str] = "✔,✘", **kwargs: Any) -> None: ...

class DateColumn(Column):
    def __init__(self, format: str | None = None, short: bool = True, *args: Any, **kwargs: Any) -> None: ...

class DateTimeColumn(Column):
    def __init__(self, format: str | None = None, short: bool = True, *args: Any, **kwargs: Any) -> None: ...

class Table:
    def __init__(
        self,
        data: Any = None,
        order_by: str | Iterable[str] | None = None,
        orderable: bool | None = None,
        empty_text: str | None = None,
        exclude: Iterable[str] | None = None,
        attrs: dict[str, Any] | None = None,
        row_attrs: dict[str, Any] | None = None,
        pinned_row_attrs: dict[str, Any] | None = None,
        sequence: Iterable[str] | None = None,
        prefix: str | None = None,
        order_by_field: str | None = None,
        page_field: str | None = None,
        per_page_field: str | None = None,
        template_name: str | None = None,
        default: Any = None,
        request: HttpRequest | None = None,
        show_header: bool | None = None,
        show_footer: bool = True,
        extra_columns: Iterable[tuple[str, Column]] | None = None,
    ) -> None: ...
    request: HttpRequest | None
    paginator: Paginator[Any]
    page: Page[Any]
    base_columns: dict[str, Incomplete]  # the declared columns, by name
    columns: Incomplete  # BoundColumns: iterable of the visible columns, indexable by name
    @property
    def prefixed_order_by_field(self) -> str: ...
    @property
    def prefixed_page_field(self) -> str: ...
    @property
    def prefixed_per_page_field(self) -> str: ...
    def paginate(
        self,
        paginator_class: type[Paginator[Any]] = ...,
        per_page: int | None = None,
        page: int | str = 1,
        *args: Any,
        **kwargs: Any,
    ) -> Self: ...

class RequestConfig:
    request: HttpRequest
    paginate: bool | dict[str, Any]
    def __init__(self, request: HttpRequest, paginate: bool | dict[str, Any] = True) -> None: ...
    def configure(self, table: Table) -> Table: ...
