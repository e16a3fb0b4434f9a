"""django-tables2 tables whose page rows are drawn without its per-cell machinery.

django-tables2 draws every cell by inspecting its render method's signature
(`utils.call_with_appropriate`), computing the column's attributes again and resolving the
accessor through `Accessor.penultimate`: in profiles of the delivery log, most of a 50-row page's
time.
`QuickRows` does the same work once per column and page, then per cell only what depends on the
record: the value (a choice field's display text, as django-tables2 gives it), the default for an
empty value, and the render method called with the arguments it takes. The HTML is the same as
django-tables2's own (`tests/test_quick_rows.py` compares the two for every table that uses it).

A table opts in with `QuickRows` first among its bases and `template_name = QUICK_TABLE`. Columns
with a link (`linkify`), `localize`, or attributes computed per cell are not supported: the
table is refused when it is drawn rather than drawn differently."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import django_tables2 as tables
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.template.defaultfilters import date as date_filter
from django.utils import timezone
from django_tables2.utils import Accessor

QUICK_TABLE = "portal/quick_table.html"

_CELL_ARGUMENTS = ("value", "record", "column", "bound_column", "bound_row", "table")


class QuickRow(NamedTuple):
    attrs: str  # the <tr>'s attributes, as django-tables2's row.attrs.as_html
    cells: list[tuple[str, object]]  # (the <td>'s attributes, the cell, escaped by the template)


class _Cell:
    """One column's cell, prepared once per page."""

    def __init__(self, table: Any, bound: Any, model: type[models.Model] | None) -> None:
        column = bound.column
        if bound.link or bound.localize is not None:
            raise ValueError(f"QuickRows draws no linked or localized column ({bound.name}).")
        declared = {**dict(table.attrs), **dict(column.attrs)}
        td = declared.get("td", declared.get("cell", {}))
        if any(callable(value) for value in td.values()):
            raise ValueError(f"QuickRows draws no per-cell attributes ({bound.name}).")
        self.td = bound.attrs["td"].as_html()
        self.column, self.bound = column, bound
        self.default = bound.default
        self.empty_values = column.empty_values
        self.render: Callable[..., Any] = bound.render
        parameters = inspect.signature(self.render).parameters.values()
        if any(p.kind == p.VAR_KEYWORD for p in parameters):
            self.arguments: tuple[str, ...] = _CELL_ARGUMENTS
        else:
            self.arguments = tuple(p.name for p in parameters if p.kind != p.VAR_POSITIONAL)
        self.call = all(name in _CELL_ARGUMENTS for name in self.arguments)  # else django-tables2 gives None
        self.accessor = Accessor(bound.accessor)
        self.display = self._display_name(model)
        self.table = table

    def _display_name(self, model: type[models.Model] | None) -> str | None:
        """`get_<field>_display` where django-tables2 would use it: a field with choices of the record."""
        if model is None or self.accessor.SEPARATOR in str(self.accessor) or "." in str(self.accessor):
            return None
        try:
            field = model._meta.get_field(str(self.accessor))
        except FieldDoesNotExist:
            return None
        return f"get_{self.accessor}_display" if getattr(field, "choices", None) else None

    def __call__(self, record: object, row: Any) -> object:
        if self.display is not None:
            value = getattr(record, self.display)()
        else:
            try:
                value = self.accessor.resolve(record)
            except Exception:
                value = None  # a column that is no field of the record, as django-tables2 allows
        if value in self.empty_values:
            return self.default
        if not self.call:
            return None
        given = {
            "value": value,
            "record": record,
            "column": self.column,
            "bound_column": self.bound,
            "bound_row": row,
            "table": self.table,
        }
        return self.render(**{name: given[name] for name in self.arguments})


class QuickRows:
    """Mixin for a django_tables2.Table (see the module's docstring)."""

    def quick_rows(self) -> list[QuickRow]:
        table: Any = self
        model = getattr(table._meta, "model", None)
        cells = [_Cell(table, bound, model) for bound in table.columns]
        return [
            QuickRow(row.attrs.as_html(), [(cell.td, cell(row.record, row)) for cell in cells])
            for row in table.paginated_rows  # the page's rows, or every row of a table not paged
        ]


class DateTimeColumn(tables.Column):
    """django-tables2's DateTimeColumn without its cost: that one is a TemplateColumn that compiles
    a template for every cell (half the delivery log's time). The same text: the `date` filter of
    the value in the current time zone (UTC), the column's default when there is none."""

    def __init__(self, *, format: str, **kwargs: Any) -> None:  # noqa: A002 (django-tables2's name)
        super().__init__(**kwargs)
        self.format = format

    def render(self, value: datetime) -> str:
        return date_filter(timezone.localtime(value), self.format)

    def value(self, value: datetime) -> str:  # exports: as django-tables2's DateTimeColumn
        return value.isoformat(sep=" ")
