from django.apps import AppConfig
from django.core.signals import request_finished

from portal.request_id import forget_request_id


class PortalConfig(AppConfig):
    name = "portal"

    def ready(self) -> None:
        request_finished.connect(forget_request_id, dispatch_uid="portal.forget_request_id")
