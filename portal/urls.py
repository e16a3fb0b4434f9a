from django.contrib import admin
from django.urls import include, path

from portal import views

admin.site.site_header = "Mission Control platform staff"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("staff/", admin.site.urls),
    path("v2/", include("portal.api_urls")),
    path("auth/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("", include("billing.urls")),
    path("", include("reporting.urls")),
]
