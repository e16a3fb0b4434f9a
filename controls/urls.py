from django.urls import path

from controls import views

urlpatterns = [
    path("a/<uuid:account_id>/limits/", views.limits_overview, name="controls_limits"),
    path("a/<uuid:account_id>/limits/<uuid:managed_id>/", views.managed_limit, name="controls_managed_limit"),
    path(
        "a/<uuid:account_id>/limits/<uuid:managed_id>/credit/",
        views.managed_credit_limit,
        name="controls_managed_credit",
    ),
    path(
        "a/<uuid:account_id>/limits/<uuid:managed_id>/remove/<uuid:limit_id>/",
        views.managed_limit_remove,
        name="controls_managed_limit_remove",
    ),
    path("a/<uuid:account_id>/spend-limits/", views.own_limits, name="controls_own_limits"),
    path(
        "a/<uuid:account_id>/spend-limits/remove/<uuid:limit_id>/",
        views.own_limit_remove,
        name="controls_own_limit_remove",
    ),
]
