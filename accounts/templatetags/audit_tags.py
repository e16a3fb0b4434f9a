"""`{% load audit_tags %}{% audit_sentence event log=account pages=account %}`: an audit event in words in any template
(accounts.audit_text.describe); `{{ moment|audit_when }}`: its time in one line."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.safestring import SafeString

from accounts import audit_text
from accounts.models import Account, AuditEvent

register = template.Library()


@register.simple_tag
def audit_sentence(event: AuditEvent, *, log: Account, pages: Account) -> SafeString:
    return audit_text.describe(event, audit_text.Reader(log=log, pages=pages))


@register.filter
def audit_when(moment: datetime) -> str:
    return audit_text.when(moment)
