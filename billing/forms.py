from django import forms
from django.core.exceptions import ValidationError

from billing.csv_upload import MAX_UPLOAD_BYTES

MEGABYTE = 1024 * 1024


class UsageUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        error_messages={"required": "Choose a CSV file to upload.", "empty": "The file is empty."},
        widget=forms.FileInput(attrs={"accept": ".csv,text/csv", "data-max-bytes": MAX_UPLOAD_BYTES}),
    )

    def clean_file(self):
        # Refused on its size alone, before a byte of it is read as CSV.
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"The file is {upload.size / MEGABYTE:.1f} MB; the limit is {MAX_UPLOAD_BYTES // MEGABYTE} MB. "
                "Split it into smaller files."
            )
        return upload
