from django.urls import path

from reporting import views

# All under the account whose portal this is; every view asks account_access(..., VIEW_REPORTS).
urlpatterns = [
    path("a/<uuid:account_id>/reports/usage/", views.usage_report, name="usage_report"),
    path("a/<uuid:account_id>/reports/usage.csv", views.usage_report_csv, name="usage_report_csv"),
    path("a/<uuid:account_id>/reports/records/", views.usage_records, name="usage_records"),
    path("a/<uuid:account_id>/reports/records.csv", views.usage_records_csv, name="usage_records_csv"),
]
