"""What webhooks does when accounts announces audit events (connected in WebhooksConfig.ready)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from accounts.models import AuditEvent
from webhooks import services


def deliveries_for_events(sender: type[AuditEvent], events: Sequence[AuditEvent], **kwargs: Any) -> None:
    """Runs inside the transaction that recorded `events`: their deliveries commit with them."""
    services.make_deliveries(events)
