"""The audit log in words: one renderer for the audit log page, a managed account's recent activity
and the v2 API's `changes` (issue 14 item 5, issue 15 item 4).

An event becomes a sentence naming the real person ("Maya Manager (acting as Alpine Voice) renamed
the account from 'Alpine' to 'Alpine Voice'"), its fields by the names the pages give them, its
values as a person reads them (never Python's None/True/False), and its resource by what people
know it as (an e-mail, a key's name, an invoice number), linked to the resource's page where the
reader has one. It reads only the event and the accounts and users loaded with it
(`audit.events_for_account` selects them), so a page of events costs no query per event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.audit import ChangeType, FieldChange
from accounts.models import Account, AuditEvent, Role

NONE = "(none)"
CURRENCY = "USD"  # every amount the log records is in the portal's one currency (the forms say USD)


# --- Values -------------------------------------------------------------------------------------------


def _plain(value: object) -> str:
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _quoted(value: object) -> str:
    return NONE if value is None or value == "" else f"'{value}'"


def _choice(labels: dict[str, str]) -> Callable[[object], str]:
    return lambda value: labels.get(str(value), _plain(value)) if value is not None else NONE


def _flag(on: str, off: str) -> Callable[[object], str]:
    return lambda value: NONE if value is None else (on if value else off)


def _decimal(value: object) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def money(value: object) -> str:
    """`USD 1,234.50`, negatives as `-USD 13.77`; what is no amount is shown as given."""
    amount = _decimal(value) if value is not None else None
    if amount is None or not amount.is_finite():
        return _plain(value)
    sign = "-" if amount < 0 else ""
    return f"{sign}{CURRENCY} {abs(amount):,.2f}"


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else _plain(value)


def _percent(value: object) -> str:
    amount = _decimal(value) if value is not None else None
    return f"{amount:,.2f} %" if amount is not None and amount.is_finite() else _plain(value)


def when(moment: datetime) -> str:
    """An instant as the log shows it, in one line: `2025-03-01 12:00:05 UTC`."""
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _instant(value: object) -> str:
    if isinstance(value, str):
        try:
            return when(datetime.fromisoformat(value))
        except ValueError:
            return value
    return _plain(value)


STATUSES = {**dict(Account.Status.choices), "pending": "Pending", "revoked": "Revoked", "accepted": "Accepted",
            "draft": "Draft", "finalized": "Finalized", "paid": "Paid", "void": "Void"}  # fmt: skip
SOURCES = {"api": "API", "csv": "CSV upload", "simulator": "simulator"}
ROLES = dict(Role.choices)


# --- Field names --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldName:
    """One recorded field: `label` as the pages call it, `api` as the v2 API names it (Telnyx's name
    where Telnyx has the field), `shown` how the page writes a value, `api_value` how the API
    gives it (as stored unless said)."""

    label: str
    api: str
    shown: Callable[[object], str] = _plain
    api_value: Callable[[object], object] | None = None


FIELDS: dict[str, FieldName] = {
    "name": FieldName("Business name", "organization_name", _quoted),
    "email": FieldName("Owner e-mail", "email"),
    "billing_mode": FieldName(
        "Billing",
        "rollup_billing",
        _choice(dict(Account.BillingMode.choices)),
        lambda value: None if value in (None, "") else value == Account.BillingMode.ROLLUP,
    ),  # fmt: skip
    "allow_custom_pricing": FieldName(
        "Custom pricing", "managed_account_allow_custom_pricing", _flag("allowed", "not allowed")
    ),
    "pricing_hidden": FieldName("Pricing", "pricing_hidden", _flag("hidden", "visible")),
    "status": FieldName("Status", "status", _choice(STATUSES)),
    "admins_can_log_in_as": FieldName("Admins may log in as managed accounts", "admins_can_log_in_as"),
    "managed_account_limit": FieldName("Managed-account limit", "managed_account_limit", _count),
    "role": FieldName("Role", "role", _choice(ROLES)),
    "user": FieldName("Member", "email"),
    "prefix": FieldName("Key prefix", "key_prefix"),
    "revoked_at": FieldName("Revoked", "revoked_at", _instant),
    "records": FieldName("Records", "record_count", _count),
    "source": FieldName("Source", "source", _choice(SOURCES)),
    "amount": FieldName("Amount", "amount", money),
    "reason": FieldName("Reason", "reason", _quoted),
    "detail": FieldName("Detail", "detail", _quoted),
    "credit_limit": FieldName("Credit limit", "credit_limit", money),
    "product": FieldName("Product", "product"),
    "unit_price": FieldName("Rate", "rate"),
    "effective_from": FieldName("Effective from", "effective_from", _instant),
    "card": FieldName("Card", "payment_method"),
    "expiry": FieldName("Expiry", "expiry"),
    "default": FieldName("Default card", "default_payment_method"),
    "failure": FieldName("Failure", "failure_message", _quoted),
    "enabled": FieldName("Recharge automatically", "enabled"),
    "threshold": FieldName("When the balance falls below", "threshold_amount", money),
    "status_note": FieldName("Note", "note", _quoted),
    "markup_percent": FieldName("Markup", "markup_percent", _percent),
    "billing_mode_from": FieldName("Effective from", "effective_from"),
    "legal_name": FieldName("Legal name", "legal_name", _quoted),
    "address_line1": FieldName("Address", "address_line1", _quoted),
    "address_line2": FieldName("Address (line 2)", "address_line2", _quoted),
    "postal_code": FieldName("Postal code", "postal_code", _quoted),
    "tax_id": FieldName("Tax id", "tax_id", _quoted),
    "invoice_emails": FieldName(
        "Invoice recipients",
        "invoice_emails",
        lambda value: ", ".join(str(item) for item in value) if isinstance(value, list) and value else NONE,
    ),
    "payment_terms_days": FieldName("Payment terms (days)", "payment_terms_days", _count),
    "total": FieldName("Total", "total", money),
    "due_date": FieldName("Due", "due_date"),
}
# Where one recorded name means something else in one kind of event.
FIELDS_BY_TYPE: dict[tuple[str, str], FieldName] = {
    (ChangeType.AUTO_RECHARGE_CHANGED, "amount"): FieldName("Charge the default card", "recharge_amount", money),
    (ChangeType.INVITATION_CREATED, "email"): FieldName("E-mail", "email"),
    (ChangeType.ACCOUNT_CREATED, "email"): FieldName("E-mail", "email"),
    (ChangeType.API_KEY_CREATED, "name"): FieldName("Key name", "name", _quoted),
    (ChangeType.LOW_BALANCE_THRESHOLD_CHANGED, "enabled"): FieldName("Alert", "enabled", _flag("on", "off")),
    (ChangeType.LOW_BALANCE_THRESHOLD_CHANGED, "threshold"): FieldName("Threshold", "threshold_amount", money),
}


def field_name(change_type: str, field: str) -> FieldName:
    """The names of a recorded field; one this table does not know is shown in words from its name."""
    known = FIELDS_BY_TYPE.get((change_type, field)) or FIELDS.get(field)
    return known or FieldName(field.replace("_", " ").capitalize(), field)


def api_changes(event: AuditEvent) -> list[dict[str, object]]:
    """The event's `changes` as the v2 API gives them: `{field, from, to}` by the API's names."""
    answer: list[dict[str, object]] = []
    for change in event.changes:
        name = field_name(event.change_type, str(change.get("field", "")))
        convert = name.api_value or (lambda value: value)
        answer.append({"field": name.api, "from": convert(change.get("from")), "to": convert(change.get("to"))})
    return answer


def _shown(event: AuditEvent, change: FieldChange, side: str) -> str:
    return field_name(event.change_type, change["field"]).shown(change.get(side))


def _changed(event: AuditEvent, changes: list[FieldChange]) -> str:
    """`Business name from 'Alpine' to 'Alpine Voice'; Pricing from visible to hidden`."""
    parts = []
    for change in changes:
        label = field_name(event.change_type, change["field"]).label
        parts.append(f"{label} from {_shown(event, change, 'from')} to {_shown(event, change, 'to')}")
    return "; ".join(parts)


def _given(event: AuditEvent, changes: list[FieldChange]) -> str:
    """What a creation set: `Business name 'Nova', Billing Roll-up, Pricing visible`."""
    return ", ".join(f"{field_name(event.change_type, c['field']).label} {_shown(event, c, 'to')}" for c in changes)


def _value(event: AuditEvent, field: str, side: str = "to") -> object:
    return next((c.get(side) for c in event.changes if c.get("field") == field), None)


# --- Who, and the resource ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """Whose log is read (`log`: its wording, "the account") and whose pages the reader may open
    (`pages`: the links). The same account on the audit log page; a managed account's activity on
    its manager's page is the managed account's log read with the manager's pages."""

    log: Account
    pages: Account


def _acted_in(event: AuditEvent) -> Account | None:
    """The managed account a manager was logged in as when making the change, if it was."""
    if not event.acting_as_id or event.change_type in (ChangeType.LOG_IN_AS_STARTED, ChangeType.LOG_IN_AS_ENDED):
        return None  # logging in as it and back are not changes made inside it
    for account in (event.account, event.related_account):
        if account is not None and account.is_managed:
            return account
    return None


def person(event: AuditEvent, reader: Reader) -> str:
    """The real person, as the log names them: `Maya Manager (acting as Alpine Voice)`."""
    if event.change_made_by == AuditEvent.MadeBy.PLATFORM:
        return "Mission Control staff" if event.user_id or event.user_email else "Mission Control"
    who = event.user.display_name if event.user is not None else (event.user_email or "Someone")
    acted_in = _acted_in(event)
    if acted_in is not None:
        return f"{who} (acting as {acted_in.name})"
    # A managed account's own people read "(Acme Reseller)" beside the manager's people.
    manager = reader.log.manager if reader.log.is_managed and reader.pages == reader.log else None
    if manager is not None and (event.account_id == manager.pk or event.change_made_by == "account_manager"):
        return f"{who} ({manager.name})"  # the manager's people, changing its managed account
    return who


def _account_named(event: AuditEvent) -> Account | None:
    for account in (event.related_account, event.account):
        if account is not None and str(account.public_id) == event.resource_id:
            return account
    return None


def _page(name: str, *args: object, anchor: str = "") -> str:
    return reverse(name, args=[str(a) for a in args]) + anchor


# The page of each kind of resource, in the account that holds it (`owner` is that account).
OWN_PAGES: dict[str, Callable[[AuditEvent, Account], str]] = {
    "invitation": lambda event, owner: _page("members", owner.public_id),
    "membership": lambda event, owner: _page("members", owner.public_id),
    "apikey": lambda event, owner: _page("api_keys", owner.public_id),
    "paymentmethod": lambda event, owner: _page("payment_methods", owner.public_id),
    "payment": lambda event, owner: _page("payment_detail", owner.public_id, event.resource_id),
    "ledgerentry": lambda event, owner: _page("balance", owner.public_id),
    "balance": lambda event, owner: _page("balance", owner.public_id),
    "autorecharge": lambda event, owner: _page("auto_recharge", owner.public_id),
    "rate": lambda event, owner: _page("rate_card", owner.public_id),
    "usagebatch": lambda event, owner: _page("usage_records", owner.public_id),
    "webhookendpoint": lambda event, owner: _page("webhooks_endpoints", owner.public_id),
}


def resource_link(event: AuditEvent, reader: Reader) -> str | None:
    """The page of the event's resource the reader may open, or None where it has none."""
    pages = reader.pages
    if event.resource_type == "account":
        named = _account_named(event)
        if named is not None and named.manager_id == pages.pk:
            return _page("managed_detail", pages.public_id, named.public_id)
        return None
    if event.resource_type == "invoice":
        if event.related_account_id and event.account_id == pages.pk:  # a reseller invoice it issued
            return _page("issued_invoice_detail", pages.public_id, event.resource_id)
        if pages.pk in (event.account_id, event.related_account_id):
            return _page("invoice_detail", pages.public_id, event.resource_id)
        return None
    owned = OWN_PAGES.get(event.resource_type)
    if owned is None:
        return None
    if event.account_id == pages.pk:
        return owned(event, pages)
    if event.resource_type == "apikey" and event.account.manager_id == pages.pk:
        return _page("managed_detail", pages.public_id, event.account.public_id, anchor="#api-keys")
    return None


# What a resource is called when its event kept no label (events recorded before labels were).
LABEL_FIELDS = {"invitation": "email", "membership": "user", "apikey": "name", "paymentmethod": "card"}


def resource_label(event: AuditEvent) -> str:
    """What people call the event's resource: the label kept with the event, else what its
    changes name; "" when neither says."""
    if event.resource_type == "account":
        named = _account_named(event)
        if named is not None:
            return named.name
    if event.resource_label:
        return event.resource_label
    field = LABEL_FIELDS.get(event.resource_type)
    if field is None:
        return ""
    value = _value(event, field, "to") or _value(event, field, "from")
    return str(value) if value else ""


def _is_the_log(event: AuditEvent, reader: Reader) -> bool:
    """Whether the resource is the account whose log this is, or the one the manager acted in."""
    acted_in = _acted_in(event)
    ids = {str(reader.log.public_id)} | ({str(acted_in.public_id)} if acted_in else set())
    return event.resource_type == "account" and event.resource_id in ids


KINDS = {
    "account": "the account", "invitation": "the invitation", "membership": "", "apikey": "the API key",
    "paymentmethod": "the card", "payment": "a payment", "invoice": "invoice", "usagebatch": "a usage batch",
    "ledgerentry": "a balance entry", "balance": "the balance", "autorecharge": "auto-recharge", "rate": "a rate",
    "user": "the user", "webhookendpoint": "the webhook endpoint",
}  # fmt: skip


def resource(event: AuditEvent, reader: Reader) -> SafeString:
    """The resource as the sentence names it, linked to its page where the reader has one."""
    if _is_the_log(event, reader):
        return format_html("{}", "the account")
    label = resource_label(event)
    kind = KINDS.get(event.resource_type, event.resource_type)
    if event.resource_type == "account":
        text = label or "an account"
    elif event.resource_type == "apikey":
        text = f"{kind} '{label}'" if label else kind
    elif event.resource_type == "invitation":  # the invitee: "invited bea@example.com as Admin"
        text = label or "someone"
    else:
        text = " ".join(part for part in (kind, label) if part) or kind
    link = resource_link(event, reader)
    return format_html('<a href="{}">{}</a>', link, text) if link else format_html("{}", text)


# --- Sentences ----------------------------------------------------------------------------------------

Phrase = Callable[[AuditEvent, SafeString], SafeString]


def _say(template: str, *values: Any) -> SafeString:
    """A sentence: our own template with the event's values escaped into it (one without values is
    escaped whole: Django 6 refuses format_html without arguments)."""
    return format_html(template, *values) if values else format_html("{}", template)


def _settings(event: AuditEvent, what: SafeString) -> SafeString:
    if [c["field"] for c in event.changes] == ["name"]:
        return _say("renamed {} from {} to {}", what, _quoted(_value(event, "name", "from")),
                    _quoted(_value(event, "name", "to")))  # fmt: skip
    return _say("changed {}: {}", what, _changed(event, event.changes))


def _status(verb: str) -> Phrase:
    return lambda event, what: _say("{} {}", verb, what)


def _ended(event: AuditEvent, what: SafeString) -> SafeString:
    reason = str(_value(event, "reason") or "returned")
    why = {"returned": "", "expired": "the time limit was reached", "session_expired": "the session expired"}.get(
        reason, str(_value(event, "detail") or reason.replace("_", " "))
    )
    return _say("stopped acting as {} ({})", what, why) if why else _say("returned from {}", what)


def _invited(event: AuditEvent, what: SafeString) -> SafeString:
    return _say("invited {} as {}", what, ROLES.get(str(_value(event, "role")), _plain(_value(event, "role"))))


def _role_changed(event: AuditEvent, what: SafeString) -> SafeString:
    before, after = (ROLES.get(str(_value(event, "role", side)), NONE) for side in ("from", "to"))
    return _say("changed the role of {} from {} to {}", what, before, after)


def _ingested(event: AuditEvent, what: SafeString) -> SafeString:
    source = SOURCES.get(str(_value(event, "source")), _plain(_value(event, "source")))
    return _say("added {} usage records by {} ({})", _count(_value(event, "records")), source, what)


def _with_note(verb: str) -> Phrase:
    def phrase(event: AuditEvent, what: SafeString) -> SafeString:
        note = _value(event, "status_note")
        return _say("{} {}: {}", verb, what, _quoted(note)) if note else _say("{} {}", verb, what)

    return phrase


def _card(verb: str) -> Phrase:
    def phrase(event: AuditEvent, what: SafeString) -> SafeString:
        changes = [c for c in event.changes if c["field"] not in ("card",)]
        return _say("{} {} ({})", verb, what, _given(event, changes)) if changes else _say("{} {}", verb, what)

    return phrase


def _amount(verb: str, *, extra: str = "") -> Phrase:
    def phrase(event: AuditEvent, what: SafeString) -> SafeString:
        text = _say("{} {}", verb, money(_value(event, "amount")))
        detail = _value(event, extra) if extra else None
        return _say("{}: {}", text, _quoted(detail)) if detail else text

    return phrase


def _billing_change(event: AuditEvent) -> tuple[str, str, str]:
    """(mode before, mode after, first day of the new mode) of a billing-mode event."""
    mode = FIELDS["billing_mode"].shown
    return (
        mode(_value(event, "billing_mode", "from")),
        mode(_value(event, "billing_mode")),
        _plain(_value(event, "billing_mode_from")),
    )


def _billing_change_cancelled(event: AuditEvent, what: SafeString) -> SafeString:
    _, after, start = _billing_change(event)
    text = _say("cancelled the change of {} to {} billing from {}", what, after, start)
    reason = _value(event, "reason")
    return _say("{}: {}", text, _quoted(reason)) if reason else text


PHRASES: dict[str, Phrase] = {
    ChangeType.ACCOUNT_CREATED: lambda event, what: _say("created {}", what),
    ChangeType.ACCOUNT_UPDATED: _settings,
    ChangeType.ACCOUNT_LIMIT_CHANGED: lambda event, what: _say("changed {}", _changed(event, event.changes)),
    ChangeType.USER_SIGNED_IN: lambda event, what: _say("signed in"),
    ChangeType.INVITATION_CREATED: _invited,
    ChangeType.INVITATION_REVOKED: lambda event, what: _say("revoked the invitation of {}", what),
    ChangeType.MEMBERSHIP_CREATED: lambda event, what: _say(
        "joined the account as {} ({})", ROLES.get(str(_value(event, "role")), NONE), what
    ),
    ChangeType.MEMBERSHIP_ROLE_CHANGED: _role_changed,
    ChangeType.MEMBERSHIP_REMOVED: lambda event, what: _say(
        "removed {} ({}) from the account", what, ROLES.get(str(_value(event, "role", "from")), NONE)
    ),
    ChangeType.MANAGED_ACCOUNT_CREATED: lambda event, what: _say(
        "created the managed account {} ({})", what, _given(event, [c for c in event.changes if c["field"] != "name"])
    ),
    ChangeType.MANAGED_ACCOUNT_UPDATED: _settings,
    ChangeType.MANAGED_ACCOUNT_DISABLED: _status("disabled"),
    ChangeType.MANAGED_ACCOUNT_ENABLED: _status("enabled"),
    ChangeType.MANAGED_ACCOUNT_CANCELLED: _status("cancelled"),
    ChangeType.LOG_IN_AS_STARTED: lambda event, what: _say("logged in as {}", what),
    ChangeType.LOG_IN_AS_ENDED: _ended,
    ChangeType.USAGE_INGESTED: _ingested,
    ChangeType.API_KEY_CREATED: _status("created"),
    ChangeType.API_KEY_REVOKED: _status("revoked"),
    ChangeType.BALANCE_TRANSFERRED: lambda event, what: _say(
        "took back {} of credit from {}"
        if _value(event, "direction") == "to_manager"
        else "transferred {} of credit to {}",
        money(_value(event, "amount")),
        _transfer_target(event),
    ),
    ChangeType.BALANCE_ADJUSTED: _amount("adjusted the balance by", extra="reason"),
    ChangeType.BALANCE_CREDIT_LIMIT_CHANGED: lambda event, what: _say("changed {}", _changed(event, event.changes)),
    ChangeType.RATE_CHANGED: lambda event, what: _say(
        "set the rate of {} to {} from {}",
        _plain(_value(event, "product")),
        _plain(_value(event, "unit_price")),
        _instant(_value(event, "effective_from")),
    ),  # fmt: skip
    ChangeType.PAYMENT_METHOD_ADDED: _card("added"),
    ChangeType.PAYMENT_METHOD_REMOVED: _card("removed"),
    ChangeType.PAYMENT_METHOD_MADE_DEFAULT: lambda event, what: _say("made {} the default card", what),
    ChangeType.TOP_UP_SUCCEEDED: _amount("topped up the balance by"),
    ChangeType.TOP_UP_FAILED: _amount("tried to top up the balance by", extra="failure"),
    ChangeType.AUTO_RECHARGE_CHANGED: lambda event, what: _say(
        "changed auto-recharge: {}", _changed(event, event.changes)
    ),
    ChangeType.AUTO_RECHARGE_CHARGED: _amount("recharged the balance automatically by"),
    ChangeType.AUTO_RECHARGE_FAILED: _amount("could not recharge the balance automatically by", extra="failure"),
    ChangeType.INVOICE_MARKED_PAID: _with_note("marked paid"),
    ChangeType.INVOICE_VOIDED: _with_note("voided"),
    ChangeType.RESALE_MARKUP_CHANGED: lambda event, what: _say("changed the resale {}", _changed(event, event.changes)),
    ChangeType.RESALE_RATE_SET: lambda event, what: _say(
        "set the resale rate of {} to {} from {}",
        _plain(_value(event, "product")),
        _plain(_value(event, "unit_price")),
        _plain(_value(event, "effective_from")),
    ),  # fmt: skip
    ChangeType.RESALE_RATE_REMOVED: lambda event, what: _say(
        "removed the resale rate of {} ({}) from {}: the markup applies",
        _plain(_value(event, "product")),
        _plain(_value(event, "unit_price", "from")),
        _plain(_value(event, "effective_from")),
    ),  # fmt: skip
    ChangeType.BILLING_MODE_CHANGE_SCHEDULED: lambda event, what: _say(
        "scheduled the billing of {} to change from {} to {} on {}", what, *_billing_change(event)
    ),
    ChangeType.BILLING_MODE_CHANGED: lambda event, what: _say(
        "changed the billing of {} from {} to {} on {}", what, *_billing_change(event)
    ),
    ChangeType.BILLING_MODE_CHANGE_CANCELLED: _billing_change_cancelled,
    ChangeType.BALANCE_LOW: lambda event, what: _say(
        "noted {} fell to {}, below its alert threshold of {}",
        what,
        money(_value(event, "balance")),
        money(_value(event, "threshold")),
    ),  # fmt: skip
    ChangeType.BALANCE_RECOVERED: lambda event, what: _say(
        "noted {} is back at {}, at or above its alert threshold of {}",
        what,
        money(_value(event, "balance")),
        money(_value(event, "threshold")),
    ),  # fmt: skip
    ChangeType.LOW_BALANCE_THRESHOLD_CHANGED: lambda event, what: _say(
        "changed the low-balance alert: {}", _changed(event, event.changes)
    ),
    ChangeType.NOTIFICATION_SETTINGS_CHANGED: lambda event, what: _say(
        "changed their alert e-mails: {}",
        "; ".join(f"{c['field']} from {_plain(c.get('from'))} to {_plain(c.get('to'))}" for c in event.changes),
    ),
    ChangeType.SPEND_LIMIT_NEARED: lambda event, what: _say(
        "noted 80 % of a spend limit used: {} ({})", _plain(_value(event, "rule")), _plain(_value(event, "period"))
    ),
    ChangeType.BILLING_PROFILE_CHANGED: lambda event, what: _say(
        "changed the billing profile of {}: {}", what, _changed(event, event.changes)
    ),
    ChangeType.INVOICE_FINALIZED: lambda event, what: _say(
        "issued {} for {}: {}, due {}",
        what,
        _plain(_value(event, "period")),
        money(_value(event, "total")),
        _plain(_value(event, "due_date")),
    ),  # fmt: skip
    ChangeType.WEBHOOK_ENDPOINT_CREATED: lambda event, what: _say("added {}", what),
    ChangeType.WEBHOOK_ENDPOINT_UPDATED: lambda event, what: _say(
        "changed {}: {}", what, _changed(event, event.changes)
    ),
    ChangeType.WEBHOOK_ENDPOINT_DELETED: lambda event, what: _say("deleted {}", what),
    ChangeType.WEBHOOK_DELIVERY_RESENT: lambda event, what: _say(
        "sent {} to {} again (webhook-id {})",
        _plain(_value(event, "event_type")),
        what,
        _plain(_value(event, "webhook_id")),
    ),  # fmt: skip
    ChangeType.CREDIT_NOTE_ISSUED: lambda event, what: _say(
        "issued credit note {} of {} against {}: {}",
        _plain(_value(event, "credit_note")),
        money(_value(event, "amount")),
        what,
        _quoted(_value(event, "reason")),
    ),
}


def _transfer_target(event: AuditEvent) -> str:
    return event.related_account.name if event.related_account is not None else "a managed account"


CHANGE_TYPE_LABELS: dict[str, str] = {
    ChangeType.ACCOUNT_CREATED: "Account created",
    ChangeType.ACCOUNT_UPDATED: "Account settings changed",
    ChangeType.ACCOUNT_LIMIT_CHANGED: "Managed-account limit changed",
    ChangeType.USER_SIGNED_IN: "Signed in",
    ChangeType.INVITATION_CREATED: "Invitation sent",
    ChangeType.INVITATION_REVOKED: "Invitation revoked",
    ChangeType.MEMBERSHIP_CREATED: "Member joined",
    ChangeType.MEMBERSHIP_ROLE_CHANGED: "Member's role changed",
    ChangeType.MEMBERSHIP_REMOVED: "Member removed",
    ChangeType.MANAGED_ACCOUNT_CREATED: "Managed account created",
    ChangeType.MANAGED_ACCOUNT_UPDATED: "Managed account changed",
    ChangeType.MANAGED_ACCOUNT_DISABLED: "Managed account disabled",
    ChangeType.MANAGED_ACCOUNT_ENABLED: "Managed account enabled",
    ChangeType.MANAGED_ACCOUNT_CANCELLED: "Managed account cancelled",
    ChangeType.LOG_IN_AS_STARTED: "Logged in as a managed account",
    ChangeType.LOG_IN_AS_ENDED: "Returned from a managed account",
    ChangeType.USAGE_INGESTED: "Usage added",
    ChangeType.API_KEY_CREATED: "API key created",
    ChangeType.API_KEY_REVOKED: "API key revoked",
    ChangeType.BALANCE_TRANSFERRED: "Credit transferred",
    ChangeType.BALANCE_ADJUSTED: "Balance adjusted",
    ChangeType.BALANCE_CREDIT_LIMIT_CHANGED: "Credit limit changed",
    ChangeType.RATE_CHANGED: "Rate set",
    ChangeType.PAYMENT_METHOD_ADDED: "Card added",
    ChangeType.PAYMENT_METHOD_REMOVED: "Card removed",
    ChangeType.PAYMENT_METHOD_MADE_DEFAULT: "Default card changed",
    ChangeType.TOP_UP_SUCCEEDED: "Top-up",
    ChangeType.TOP_UP_FAILED: "Top-up failed",
    ChangeType.AUTO_RECHARGE_CHANGED: "Auto-recharge changed",
    ChangeType.AUTO_RECHARGE_CHARGED: "Auto-recharge",
    ChangeType.AUTO_RECHARGE_FAILED: "Auto-recharge failed",
    ChangeType.INVOICE_MARKED_PAID: "Invoice marked paid",
    ChangeType.INVOICE_VOIDED: "Invoice voided",
    ChangeType.RESALE_MARKUP_CHANGED: "Resale markup changed",
    ChangeType.SPEND_LIMIT_SET: "Spend limit set",
    ChangeType.SPEND_LIMIT_REMOVED: "Spend limit removed",
    ChangeType.SPEND_LIMIT_REACHED: "Spend limit reached",
    ChangeType.SPEND_LIMIT_NEARED: "Spend limit 80 % used",
    ChangeType.SERVICE_BLOCKED: "Service blocked",
    ChangeType.SERVICE_UNBLOCKED: "Service restored",
    ChangeType.BILLING_MODE_CHANGE_SCHEDULED: "Billing-mode change scheduled",
    ChangeType.BILLING_MODE_CHANGED: "Billing mode changed",
    ChangeType.BILLING_MODE_CHANGE_CANCELLED: "Billing-mode change cancelled",
    ChangeType.WEBHOOK_ENDPOINT_DELETED: "Webhook endpoint deleted",
    ChangeType.WEBHOOK_ENDPOINT_CREATED: "Webhook endpoint added",
    ChangeType.WEBHOOK_ENDPOINT_UPDATED: "Webhook endpoint changed",
    ChangeType.WEBHOOK_DELIVERY_RESENT: "Webhook sent again",
    ChangeType.INVOICE_FINALIZED: "Invoice issued",
    ChangeType.CREDIT_NOTE_ISSUED: "Credit note issued",
    ChangeType.BILLING_PROFILE_CHANGED: "Billing profile changed",
    ChangeType.RESALE_RATE_SET: "Resale rate set",
    ChangeType.RESALE_RATE_REMOVED: "Resale rate removed",
    ChangeType.BALANCE_LOW: "Balance below its alert threshold",
    ChangeType.BALANCE_RECOVERED: "Balance back above its alert threshold",
    ChangeType.LOW_BALANCE_THRESHOLD_CHANGED: "Low-balance alert changed",
    ChangeType.NOTIFICATION_SETTINGS_CHANGED: "Notification settings changed",
}


def change_type_label(change_type: str) -> str:
    """A change type in words; one added without a label here reads from its code."""
    return CHANGE_TYPE_LABELS.get(change_type) or change_type.replace(".", " ").replace("_", " ").capitalize()


# The audit page's type filter: each change type by its label.
CHANGE_TYPE_CHOICES = [(str(change_type), change_type_label(change_type)) for change_type in ChangeType]


def describe(event: AuditEvent, reader: Reader) -> SafeString:
    """The event as one sentence, escaped, its resource linked where the reader has its page."""
    phrase = PHRASES.get(event.change_type)
    what = resource(event, reader)
    if phrase is None:  # a change type without its own phrase yet: its label, resource and changes
        return _say("{}: {} ({}){}", person(event, reader), change_type_label(event.change_type), what,
                    _details(event))  # fmt: skip
    return _say("{} {}", person(event, reader), phrase(event, what))


def _details(event: AuditEvent) -> str:
    if not event.changes:
        return ""
    if all(change.get("from") is None for change in event.changes):
        return f", {_given(event, event.changes)}"
    return f": {_changed(event, event.changes)}"
