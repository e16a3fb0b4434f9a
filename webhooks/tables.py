from __future__ import annotations

from datetime import datetime
from typing import Any

import django_tables2 as tables
from django.template.defaultfilters import date as date_filter
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from webhooks.models import WebhookDelivery


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


class DeliveriesTable(tables.Table):
    created_at = DateTimeColumn(verbose_name="Event (UTC)", format="Y-m-d H:i:s")
    event_type = tables.Column(verbose_name="Event")
    status = tables.Column(verbose_name="Status")
    response_code = tables.Column(verbose_name="Response", default="—")
    attempts = tables.Column(verbose_name="Attempts")
    last_attempt_at = DateTimeColumn(verbose_name="Last attempt (UTC)", format="Y-m-d H:i:s", default="—")

    class Meta:
        model = WebhookDelivery
        fields = ("created_at", "event_type", "status", "response_code", "attempts", "last_attempt_at")
        orderable = False
        attrs = {"class": "table", "id": "deliveries"}

    def __init__(self, *args: Any, account_id: str, endpoint_id: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account_id, self.endpoint_id = account_id, endpoint_id

    def render_event_type(self, value: str, record: WebhookDelivery) -> SafeString:
        url = reverse("webhooks_delivery", args=[self.account_id, self.endpoint_id, record.public_id])
        return format_html('<a href="{}">{}</a>', url, value)

    def render_status(self, value: str, record: WebhookDelivery) -> SafeString:
        return format_html('<span class="badge {}">{}</span>', record.status, record.get_status_display())
