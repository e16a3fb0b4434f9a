"""The audit log page's table: each event as one sentence (accounts.audit_text) and its time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import django_tables2 as tables
from django.utils.safestring import SafeString

from accounts.audit_text import Reader, describe, when
from accounts.models import AuditEvent


class AuditLogTable(tables.Table):
    created_at = tables.Column(verbose_name="When (UTC)", orderable=False, attrs={"td": {"class": "audit-when"}})
    sentence = tables.Column(verbose_name="What happened", accessor="pk", orderable=False)

    class Meta:
        model = AuditEvent
        fields = ("created_at", "sentence")
        attrs = {"class": "table audit-log"}
        empty_text = "No events match these filters."

    def __init__(self, *args: Any, reader: Reader, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reader = reader

    def render_created_at(self, value: datetime) -> str:
        return when(value)

    def render_sentence(self, record: AuditEvent) -> SafeString:
        return describe(record, self.reader)
