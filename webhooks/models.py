"""Webhook endpoints of an account and the deliveries of events to them."""

from __future__ import annotations

import uuid

from django.db import models

from accounts.models import Account, AuditEvent


class WebhookEndpoint(models.Model):
    """A URL of an account's that receives the events it subscribes to, signed with its secret
    (Standard Webhooks). A manager's endpoint may take the events of all its managed accounts too."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True, default="")
    event_types = models.JSONField(default=list)  # webhooks.events.EventType values
    include_managed_accounts = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # The `whsec_...` secret, Fernet-encrypted (accounts.mfa); shown in clear once, when created.
    secret = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint. Made in the transaction of the audit event it comes from, so no
    committed event is without it; every attempt and a "send again" reuse its `webhook_id`."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(AuditEvent, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=64)
    data = models.JSONField()  # the envelope's `data`, as every attempt sends it
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    retry_step = models.PositiveIntegerField(default=0)  # the next delay of the schedule; "send again" restarts it
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)  # a worker is sending it until then
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once")]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.endpoint_id}"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.public_id.hex}"
