"""Bulk onboarding: a manager's CSV of managed accounts, checked row by row before anything is
created, kept as an OnboardingUpload, then created by a Celery task through
accounts.services.create_managed_account, one row at a time (each row passes every rule of single
creation: the limit under the manager's row lock, the enumeration-neutral owner handling, the audit).

The file is read as billing.usage.csv_upload reads usage: UTF-8 text with or without a BOM, a header
row naming the columns; "row N" is the Nth data line after the header. A name the manager already
uses, or one repeated in the file, is a problem here (single creation asks for a confirmation that
a file cannot give): such an account is created on its own page.

The task is defined here, not in accounts.tasks: it calls accounts.services, which imports
accounts.tasks (a cycle); AccountsConfig.ready imports this module so that workers register it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts import selectors
from accounts.actor import Actor
from accounts.errors import Refusal
from accounts.locks import lock_row
from accounts.models import Account, OnboardingUpload
from accounts.services import ServiceError, active_managed_count, create_managed_account
from accounts.validators import validate_name

MAX_ROWS = 3000
MAX_UPLOAD_BYTES = 1024 * 1024
MAX_AGE = timedelta(days=1)
REQUIRED_COLUMNS = ("name", "owner_email", "billing_mode")
OPTIONAL_COLUMNS = ("pricing_hidden", "allow_custom_pricing")
COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
TRUE_WORDS = ("yes", "true", "1")
FALSE_WORDS = ("no", "false", "0", "")
NOT_CSV = "This is not a CSV file: {reason}. Save the accounts as comma-separated UTF-8 text with a header row."
_SIGNATURES = (
    (b"%PDF", "it is a PDF document"),
    (b"\x89PNG", "it is a PNG image"),
    (b"PK\x03\x04", "it is a ZIP archive or an Excel workbook (export it as CSV)"),
    (b"\xd0\xcf\x11\xe0", "it is an Excel workbook (export it as CSV)"),
    (b"\xff\xfe", "it is UTF-16 text, not UTF-8"),
    (b"\xfe\xff", "it is UTF-16 text, not UTF-8"),
)


class OnboardingRefused(Refusal):
    """A file that cannot be read, or a confirmation that cannot start."""


# --- Reading and checking the file -----------------------------------------------------------------


def check_file(*, manager: Account, upload: UploadedFile[bytes], uploaded_by: Actor) -> OnboardingUpload:
    """Reads and checks `upload` and keeps its rows, each with its problems, for the report; creates
    no account. Refused (OnboardingRefused) when the file as a whole cannot be used."""
    if (upload.size or 0) > MAX_UPLOAD_BYTES:
        raise OnboardingRefused(
            f"The file is {(upload.size or 0) / MAX_UPLOAD_BYTES:.1f} MB; the limit is 1 MB. "
            "Split it into smaller files."
        )
    upload.seek(0)
    data = upload.read()
    for signature, reason in _SIGNATURES:
        if data.startswith(signature):
            raise OnboardingRefused(NOT_CSV.format(reason=reason))
    if b"\x00" in data:
        raise OnboardingRefused(NOT_CSV.format(reason="it is binary data (it holds NUL bytes)"))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise OnboardingRefused(NOT_CSV.format(reason="it is not UTF-8 text")) from None
    try:
        rows = _rows(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise OnboardingRefused(NOT_CSV.format(reason=f"it cannot be read as CSV ({error})")) from None
    _check_names(manager, rows)
    return OnboardingUpload.objects.create(
        manager=manager, uploaded_by=uploaded_by.user, filename=(upload.name or "")[:255], rows=rows
    )


def _rows(reader: Iterator[list[str]]) -> list[dict[str, Any]]:
    header = _header(reader)
    rows: list[dict[str, Any]] = []
    for number, record in enumerate(reader, start=1):
        if not any(cell.strip() for cell in record):
            continue  # blank line
        if len(rows) == MAX_ROWS:
            raise OnboardingRefused(f"A file holds at most {MAX_ROWS:,} accounts. Split it into smaller files.")
        if len(record) != len(header):
            rows.append(_row(number, {}, [f"It has {len(record)} fields; the header row has {len(header)}."]))
            continue
        rows.append(_checked_row(number, {c: cell.strip() for c, cell in zip(header, record, strict=True)}))
    if not rows:
        raise OnboardingRefused("The file has a header row but no accounts.")
    return rows


def _header(reader: Iterator[list[str]]) -> list[str]:
    for record in reader:
        if any(cell.strip() for cell in record):
            break
    else:
        raise OnboardingRefused("The file is empty.")
    header = [cell.strip().lower() for cell in record]
    if len(header) == 1 and ";" in header[0]:
        raise OnboardingRefused(NOT_CSV.format(reason="its columns are separated by semicolons, not commas"))
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c or f"(column {i} has no name)" for i, c in enumerate(header, start=1) if c not in COLUMNS]
    repeated = sorted({c for c in header if header.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"The header row has no {_names(missing)} column.")
    if unknown:
        problems.append(f"Unknown column {_names(unknown)}.")
    if repeated:
        problems.append(f"The column {_names(repeated)} appears more than once.")
    if problems:
        columns = f"The columns are {', '.join(REQUIRED_COLUMNS)} (required) and {', '.join(OPTIONAL_COLUMNS)}."
        raise OnboardingRefused(" ".join([*problems, columns]))
    return header


def _names(columns: list[str]) -> str:
    return ", ".join(f"'{c}'" for c in columns)


def _row(number: int, values: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    return {
        "row": number,
        "name": values.get("name", ""),
        "owner_email": values.get("owner_email", ""),
        "billing_mode": values.get("billing_mode", ""),
        "pricing_hidden": values.get("pricing_hidden", False),
        "allow_custom_pricing": values.get("allow_custom_pricing", False),
        "problems": problems,
    }


def _checked_row(number: int, cells: dict[str, str]) -> dict[str, Any]:
    problems: list[str] = []
    values: dict[str, Any] = {"name": cells["name"], "owner_email": cells["owner_email"].lower()}
    if not values["name"]:
        problems.append("The name is empty.")
    elif len(values["name"]) > 255:
        problems.append("The name is longer than 255 characters.")
    else:
        try:
            validate_name(values["name"])
        except ValidationError as error:
            problems.extend(error.messages)
    try:
        validate_email(values["owner_email"])
    except ValidationError:
        problems.append(
            f"'{cells['owner_email']}' is not a valid e-mail address."
            if cells["owner_email"]
            else "The owner e-mail is empty."
        )
    mode = cells["billing_mode"].lower()
    values["billing_mode"] = mode
    if mode not in Account.BillingMode.values:
        problems.append(f"Unknown billing mode '{cells['billing_mode']}': use rollup or separate.")
    for column in OPTIONAL_COLUMNS:
        word = cells.get(column, "").lower()
        values[column] = word in TRUE_WORDS
        if word not in TRUE_WORDS + FALSE_WORDS:
            problems.append(f"{column} is '{cells[column]}': use yes or no (true/false, 1/0), or leave it empty.")
    return _row(number, values, problems)


def _check_names(manager: Account, rows: list[dict[str, Any]]) -> None:
    """A name repeated in the file, or one of the manager's accounts already has (in any case, as
    accounts.selectors.same_named_managed_accounts counts them), in one query."""
    first_row: dict[str, int] = {}
    for row in rows:
        key = row["name"].lower()
        if not key:
            continue
        if key in first_row:
            row["problems"].append(f"The name is also in row {first_row[key]}.")
        else:
            first_row[key] = row["row"]
    taken = selectors.managed_names_in_use(manager, list(first_row))
    for row in rows:
        if row["name"].lower() in taken:
            row["problems"].append("You already have a managed account with this name.")


def room_left(manager: Account) -> int | None:
    """How many more managed accounts the manager's limit allows (None: no limit)."""
    limit = manager.managed_account_limit
    return None if limit is None else max(limit - active_managed_count(manager), 0)


def limit_problem(upload: OnboardingUpload) -> str | None:
    """Why the valid rows cannot all be created under the manager's limit, or None."""
    room = room_left(upload.manager)
    if room is None or upload.total <= room:
        return None
    return (
        f"Your limit of {upload.manager.managed_account_limit:,} managed accounts leaves room for {room:,} more; "
        f"this file has {upload.total:,} valid account{'' if upload.total == 1 else 's'}. Nothing can be created: "
        "remove rows, cancel accounts you no longer need, or ask support to raise the limit."
    )


def start_refusal(upload: OnboardingUpload) -> str | None:
    """Why the upload cannot be started, or None."""
    if upload.status != OnboardingUpload.Status.CHECKED:
        return "This file was already confirmed: its accounts are being created, or were."
    if timezone.now() - upload.created_at > MAX_AGE:
        return "This upload is more than a day old. Upload the file again to check it against your accounts now."
    if not upload.total:
        return "No row of this file can be created: correct the file and upload it again."
    return limit_problem(upload)


# --- Starting and running ----------------------------------------------------------------------------


@transaction.atomic
def start_upload(*, upload: OnboardingUpload, actor: Actor) -> OnboardingUpload:
    """Confirms `upload`: once only, within a day, and when its valid rows fit the limit; the
    task creating them is queued after the commit."""
    lock_row(Account.objects, pk=upload.manager_id)  # the limit's lock: no creation counts meanwhile
    upload = lock_row(OnboardingUpload.objects.select_related("manager"), pk=upload.pk)
    refusal = start_refusal(upload)
    if refusal:
        raise OnboardingRefused(refusal)
    upload.status = OnboardingUpload.Status.RUNNING
    upload.started_by = actor.user
    upload.started_ip = actor.ip_address
    upload.started_at = timezone.now()
    upload.save(update_fields=["status", "started_by", "started_ip", "started_at"])
    transaction.on_commit(lambda: run_upload.delay(upload.pk))
    return upload


@shared_task(name="accounts.onboarding.run_upload", ignore_result=True)
def run_upload(upload_pk: int) -> None:
    """Creates the valid rows of a started upload, each in its own transaction with its counter, so
    a task run again (a worker lost) goes on from the first row not yet counted."""
    upload = OnboardingUpload.objects.select_related("manager", "started_by").filter(pk=upload_pk).first()
    if upload is None or upload.status != OnboardingUpload.Status.RUNNING:
        return
    actor = Actor(user=upload.started_by, ip_address=upload.started_ip)
    for row in upload.valid_rows[upload.done + upload.failed :]:
        try:
            with transaction.atomic():
                create_managed_account(
                    manager=upload.manager,
                    name=row["name"],
                    owner_email=row["owner_email"],
                    owner_password=None,
                    billing_mode=row["billing_mode"],
                    allow_custom_pricing=row["allow_custom_pricing"],
                    pricing_hidden=row["pricing_hidden"],
                    actor=actor,
                )
                OnboardingUpload.objects.filter(pk=upload.pk).update(done=F("done") + 1)
        except ServiceError as error:
            with transaction.atomic():
                failed = lock_row(OnboardingUpload.objects, pk=upload.pk)
                failed.failed += 1
                failed.failures = [*failed.failures, {"row": row["row"], "name": row["name"], "message": error.message}]
                failed.save(update_fields=["failed", "failures"])
    OnboardingUpload.objects.filter(pk=upload.pk).update(
        status=OnboardingUpload.Status.DONE, finished_at=timezone.now()
    )
