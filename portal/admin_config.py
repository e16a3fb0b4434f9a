"""The admin app with our site as `admin.site` (portal/admin_site.py). Its own module, because
portal/apps.py may hold one AppConfig only and the site's module imports models."""

from django.contrib.admin.apps import AdminConfig


class StaffAdminConfig(AdminConfig):
    default_site = "portal.admin_site.StaffAdminSite"
