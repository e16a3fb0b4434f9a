"""CSV upload of usage: turns an uploaded file into rows for `billing.usage.ingest_usage`.

The file is checked whole before anything is stored: it must be UTF-8 text (with or without a
BOM) whose first line names the columns. Errors are reported as `UsageRejected`, like the
ingestion service's own, with "row N" meaning the Nth data line after the header.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from django.core.files.uploadedfile import UploadedFile

from accounts.actor import Actor
from accounts.models import Account
from billing.usage.services import (
    MAX_BATCH,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    IngestResult,
    RowError,
    UsageRejected,
    ingest_usage,
)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
COLUMNS = (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)
NOT_CSV = "This is not a CSV file: {reason}. Save the usage as comma-separated UTF-8 text with a header row."
# What the first bytes of common non-CSV uploads look like.
_SIGNATURES = (
    (b"%PDF", "it is a PDF document"),
    (b"\x89PNG", "it is a PNG image"),
    (b"\xff\xd8\xff", "it is a JPEG image"),
    (b"GIF8", "it is a GIF image"),
    (b"PK\x03\x04", "it is a ZIP archive or an Excel workbook (export it as CSV)"),
    (b"\xd0\xcf\x11\xe0", "it is an Excel workbook (export it as CSV)"),
    (b"\xff\xfe", "it is UTF-16 text, not UTF-8"),
    (b"\xfe\xff", "it is UTF-16 text, not UTF-8"),
)
_OTHER_SEPARATORS = ((";", "semicolons"), ("\t", "tabs"))
_OTHER_ROW = re.compile(r" in row (\d+)\.$")


@dataclass(frozen=True)
class ParsedCsv:
    rows: list[dict[str, str]]
    row_numbers: list[int]  # the CSV data-line number of each row (blank lines are skipped)


def ingest_csv(*, submitter: Account, upload: UploadedFile[bytes], actor: Actor) -> IngestResult:
    """Parse `upload` and ingest it as one atomic batch; errors name the file's own row numbers."""
    parsed = parse_usage_csv(upload)
    try:
        return ingest_usage(
            submitter=submitter, rows=parsed.rows, source="csv", actor=actor, filename=upload.name or ""
        )
    except UsageRejected as rejected:
        raise _renumbered(rejected, parsed.row_numbers) from None


def parse_usage_csv(upload: UploadedFile[bytes]) -> ParsedCsv:
    _refuse_binary(upload)
    upload.seek(0)
    if upload.file is None:  # an upload always has its file; a closed one cannot be read
        raise _file_error("The file is empty.")
    text = io.TextIOWrapper(upload.file, encoding="utf-8-sig", newline="")
    try:
        return _parse(csv.reader(text))
    except UnicodeDecodeError:
        raise _file_error(NOT_CSV.format(reason="it is not UTF-8 text")) from None
    except csv.Error as error:
        raise _file_error(NOT_CSV.format(reason=f"it cannot be read as CSV ({error})")) from None
    finally:
        text.detach()  # closing the wrapper must not close the upload


def _refuse_binary(upload: UploadedFile[bytes]) -> None:
    """Known binary formats by their first bytes, and a NUL byte anywhere in the file: text has none,
    and one that reached a record would be refused by PostgreSQL (a text column holds no NUL)."""
    upload.seek(0)
    head = upload.read(8192)
    for signature, reason in _SIGNATURES:
        if head.startswith(signature):
            raise _file_error(NOT_CSV.format(reason=reason))
    chunk = head
    while chunk:
        if b"\x00" in chunk:
            raise _file_error(NOT_CSV.format(reason="it is binary data (it holds NUL bytes)"))
        chunk = upload.read(1024 * 1024)


def _parse(reader: Iterator[list[str]]) -> ParsedCsv:
    header = _header(reader)
    rows: list[dict[str, str]] = []
    numbers: list[int] = []
    errors: list[RowError] = []
    count = 0
    for number, record in enumerate(reader, start=1):
        if not any(cell.strip() for cell in record):
            continue  # blank line
        count += 1
        if count > MAX_BATCH:
            continue  # only counted, for the message
        if len(record) != len(header):
            errors.append(RowError(number, "row", f"has {len(record)} fields; the header row has {len(header)}."))
            continue
        rows.append({column: cell.strip() for column, cell in zip(header, record, strict=True)})
        numbers.append(number)
    if count > MAX_BATCH:
        raise _file_error(
            f"A batch holds at most {MAX_BATCH:,} records; this file has {count:,}. Split it into smaller files."
        )
    if errors:
        raise UsageRejected(errors)
    if not rows:
        raise _file_error("The file has a header row but no records.")
    return ParsedCsv(rows, numbers)


def _header(reader: Iterator[list[str]]) -> list[str]:
    for record in reader:
        if any(cell.strip() for cell in record):
            break
    else:
        raise _file_error("The file is empty.")
    header = [cell.strip().lower() for cell in record]
    separator = next((name for sep, name in _OTHER_SEPARATORS if len(header) == 1 and sep in header[0]), None)
    if separator:
        raise _file_error(NOT_CSV.format(reason=f"its columns are separated by {separator}, not commas"))
    if not set(header) & set(COLUMNS):
        raise _file_error(NOT_CSV.format(reason=f"its first line does not name the columns ({', '.join(COLUMNS)})"))
    problems = []
    missing = [c for c in REQUIRED_FIELDS if c not in header]
    if missing:
        problems.append(f"The header row has no {_names(missing)} column; required: {', '.join(REQUIRED_FIELDS)}.")
    unknown = [c or f"(column {i} has no name)" for i, c in enumerate(header, start=1) if c not in COLUMNS]
    if unknown:
        problems.append(f"Unknown column {_names(unknown)}; the columns are {', '.join(COLUMNS)}.")
    repeated = sorted({c for c in header if header.count(c) > 1 and c in COLUMNS})
    if repeated:
        problems.append(f"The column {_names(repeated)} appears more than once.")
    if problems:
        raise UsageRejected([RowError(0, "header", p) for p in problems])
    return header


def _names(columns: list[str]) -> str:
    return ", ".join(f"'{c}'" for c in columns)


def _file_error(message: str) -> UsageRejected:
    return UsageRejected([RowError(0, "file", message)])


def _renumbered(rejected: UsageRejected, row_numbers: list[int]) -> UsageRejected:
    """The service numbers rows by their position in the batch; the file's numbering also counts
    the blank lines it skips. A message naming another row ("also used in row 3.") is renumbered too."""

    def number(row: int) -> int:
        return row_numbers[row - 1] if 0 < row <= len(row_numbers) else row

    errors = [
        replace(
            error,
            row=number(error.row),
            message=_OTHER_ROW.sub(lambda m: f" in row {number(int(m[1]))}.", error.message),
        )
        for error in rejected.errors
    ]
    result = UsageRejected(errors)
    result.total = rejected.total
    return result
