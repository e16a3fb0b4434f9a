from django.urls import path

from reporting import dashboard_views, managed_views, views

# All under the account whose portal this is; every view asks account_access(..., VIEW_REPORTS).
urlpatterns = [
    path("a/<uuid:account_id>/", dashboard_views.overview, name="dashboard"),  # asks VIEW_ACCOUNT
    path("a/<uuid:account_id>/reports/usage/", views.usage_report, name="usage_report"),
    path("a/<uuid:account_id>/reports/usage.csv", views.usage_report_csv, name="usage_report_csv"),
    path("a/<uuid:account_id>/reports/records/", views.usage_records, name="usage_records"),
    path("a/<uuid:account_id>/reports/records.csv", views.usage_records_csv, name="usage_records_csv"),
    # A managed account's Usage tab (accounts.managed_hub), the manager's report scoped to it.
    path("a/<uuid:account_id>/managed/<uuid:managed_id>/usage/", managed_views.managed_usage, name="managed_usage"),
]
