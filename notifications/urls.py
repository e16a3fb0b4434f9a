from django.urls import path

from notifications import views

urlpatterns = [
    path("a/<uuid:account_id>/notifications/", views.notification_settings, name="notification_settings"),
    path(
        "a/<uuid:account_id>/notifications/low-balance/",
        views.low_balance_threshold,
        name="notification_low_balance",
    ),
]
