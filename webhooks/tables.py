from __future__ import annotations

from typing import Any

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from portal.tables import QUICK_TABLE, DateTimeColumn, QuickRows
from webhooks.models import WebhookDelivery


class DeliveriesTable(QuickRows, tables.Table):
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
        template_name = QUICK_TABLE

    def __init__(self, *args: Any, account_id: str, endpoint_id: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account_id, self.endpoint_id = account_id, endpoint_id

    def render_event_type(self, value: str, record: WebhookDelivery) -> SafeString:
        url = reverse("webhooks_delivery", args=[self.account_id, self.endpoint_id, record.public_id])
        return format_html('<a href="{}">{}</a>', url, value)

    def render_status(self, value: str, record: WebhookDelivery) -> SafeString:
        return format_html('<span class="badge {}">{}</span>', record.status, record.get_status_display())
