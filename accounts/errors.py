"""The one family of refused changes. Every service raises a `Refusal` (or a subclass) for what the
person asked that the rules do not allow, so the API maps it once (`portal.api.api_view`) and forms
show it once (`accounts.forms.apply_refusal`). It lives in accounts, the bottom app, so that billing
and reporting can derive from it without accounts importing them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One error item of a refusal as the API reports it; `pointer` is the JSON pointer of the body
    field it concerns (RFC 6901), None when it concerns no field."""

    detail: str
    pointer: str | None
    code: str = "invalid_field"
    title: str = "Invalid field"


class Refusal(Exception):
    """A change a service refused. `message` is fit to show to the person who asked for it; `field`
    names the form field or API body field it concerns, when one does. The API answers `status`, with
    `code` and `title` on its error item: a subclass whose refusal is no invalid input (a conflict
    with the current state, say) says so there."""

    status: int = 422
    code: str = "invalid_field"
    title: str = "Invalid field"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def problems(self) -> list[Problem]:
        """The API's error items: one, at the field's pointer (`/data` when no field applies)."""
        pointer = f"/{self.field or 'data'}"
        return [Problem(detail=self.message, pointer=pointer, code=self.code, title=self.title)]
