from django.contrib import admin
from django.urls import include, path

from portal import switcher, views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # admin.site is portal.admin_site.StaffAdminSite: its login sends staff to allauth's, with MFA.
    path("staff/", admin.site.urls),
    path("v2/", include("portal.api_urls")),
    path("auth/", include("allauth.urls")),
    path("switch-account/", switcher.account_switcher, name="account_switcher"),
    path("", include("accounts.urls")),
    path("", include("billing.urls")),
    path("", include("reporting.urls")),
    path("", include("controls.urls")),
    path("", include("webhooks.urls")),
    path("", include("notifications.urls")),
]
