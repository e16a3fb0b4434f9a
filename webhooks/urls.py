from django.urls import path

from webhooks import views

PREFIX = "a/<uuid:account_id>/developers/webhooks/"
ENDPOINT = PREFIX + "<uuid:endpoint_id>/"
DELIVERY = ENDPOINT + "deliveries/<uuid:delivery_id>/"

urlpatterns = [
    path(PREFIX, views.endpoints, name="webhooks_endpoints"),
    path(PREFIX + "new/", views.endpoint_create, name="webhooks_create"),
    path(ENDPOINT, views.endpoint_edit, name="webhooks_edit"),
    path(ENDPOINT + "toggle/", views.endpoint_toggle, name="webhooks_toggle"),
    path(ENDPOINT + "delete/", views.endpoint_delete, name="webhooks_delete"),
    path(ENDPOINT + "deliveries/", views.deliveries, name="webhooks_deliveries"),
    path(DELIVERY, views.delivery, name="webhooks_delivery"),
    path(DELIVERY + "send-again/", views.delivery_resend, name="webhooks_resend"),
    # Development only (a 404 elsewhere): where the demo endpoint of `./dev run` delivers.
    path("dev/webhook-receiver/", views.dev_receiver, name="webhooks_dev_receiver"),
]
