"""Read business exports (CSV, Excel, JSON, NDJSON) into raw rows, refusing unusable files whole."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

from indunet.business.records import BusinessKind, required_columns
from indunet.errors import DataError

__all__ = ["MAX_FILE_BYTES", "read_rows"]

MAX_FILE_BYTES = 512 * 1024 * 1024


def _norm(name: object) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def _csv_rows(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name}: not UTF-8 text at byte {exc.start}") from exc
    except (OSError, EOFError) as exc:
        raise DataError(f"{path.name}: cannot be read: {exc}") from exc
    first_line = text.split("\n", 1)[0]
    # the header's most frequent candidate is the delimiter (ERP exports in many locales use ;)
    delimiter = max(",;\t|", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path.name}: the file is empty") from None
    except csv.Error as exc:
        raise DataError(f"{path.name} line 1: {exc}") from exc
    names = [_norm(h) for h in header]
    rows: list[dict[str, Any]] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                rows.append({})  # keep numbering; an empty line is reported, not skipped
                continue
            if len(cells) != len(names):
                rows.append({"__error__": f"{len(cells)} cells for {len(names)} columns"})
                continue
            rows.append(dict(zip(names, cells, strict=True)))
    except csv.Error as exc:
        raise DataError(f"{path.name} line {reader.line_num}: {exc}") from exc
    return names, rows


def _excel_rows(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken file
        raise DataError(f"{path.name}: not a readable .xlsx workbook: {exc}") from exc
    try:
        sheet = book.worksheets[0]
        it = sheet.iter_rows(values_only=True)
        header = next(it, None)
        if header is None:
            raise DataError(f"{path.name}: the first sheet is empty")
        names = [_norm(h) if h is not None else "" for h in header]
        rows = []
        for cells in it:
            if all(c is None for c in cells):
                continue
            rows.append({n: c for n, c in zip(names, cells, strict=False) if n})
        return names, rows
    finally:
        book.close()


def _json_rows(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name}: not UTF-8 text at byte {exc.start}") from exc
    if path.suffix.lower() in {".ndjson", ".jsonl"}:
        rows: list[Any] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                rows.append({"__error__": f"line {number} is not valid JSON: {exc.msg}"})
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path.name}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from exc
        if isinstance(doc, dict) and isinstance(doc.get("records"), list):
            doc = doc["records"]
        if not isinstance(doc, list):
            raise DataError(
                f"{path.name}: expected a JSON array of records or {{'records': [...]}}"
            )
        rows = doc
    names: set[str] = set()
    for row in rows:
        if isinstance(row, dict):
            names.update(_norm(k) for k in row)
    return sorted(names), rows


def read_rows(path: Path, kind: BusinessKind) -> tuple[list[dict[str, Any]], list[str], int]:
    """Return the raw rows of an export, warnings, and the file row number of the first row.

    The file is refused whole when required columns lack. Rows are numbered as a spreadsheet
    shows them (the header is row 1) and JSON records from 1.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"{path.name}: larger than {MAX_FILE_BYTES // 2**20} MiB; split it")
    suffix = "".join(path.suffixes[-2:]).lower() if path.name.endswith(".gz") else path.suffix
    suffix = suffix.lower()
    if suffix in {".csv", ".csv.gz", ".txt", ".tsv"}:
        names, rows = _csv_rows(path)
    elif suffix in {".xlsx", ".xlsm"}:
        names, rows = _excel_rows(path)
    elif suffix in {".json", ".ndjson", ".jsonl"}:
        names, rows = _json_rows(path)
    else:
        raise DataError(f"{path.name}: unknown file type; use .csv, .csv.gz, .xlsx, .json, .ndjson")
    missing = [c for c in required_columns(kind) if c not in names]
    if missing and rows:
        raise DataError(
            f"{path.name}: missing column(s) {', '.join(missing)} for {kind.value} "
            f"(has: {', '.join(n for n in names if n) or 'none'})"
        )
    known = set(_known_columns(kind))
    extra = [n for n in names if n and n not in known]
    warnings = (
        [f"{path.name}: column(s) {', '.join(extra)} not used for {kind.value}"] if extra else []
    )
    first_row = 1 if suffix in {".json", ".ndjson", ".jsonl"} else 2
    return rows, warnings, first_row


def _known_columns(kind: BusinessKind) -> list[str]:
    from indunet.business.records import KINDS

    return list(KINDS[kind].model.model_fields)
