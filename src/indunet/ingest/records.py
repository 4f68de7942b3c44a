"""Parse JSON ingest bodies (a JSON array or NDJSON) of ``{"tag", "ts", "value"}`` records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from indunet.errors import DataError
from indunet.ingest.batch import BatchBuilder
from indunet.ingest.values import TimeParser, parse_json_value, parse_quality
from indunet.model import DeadLetter, PointBatch
from indunet.uns import TagPath

__all__ = ["ParsedBody", "parse_body", "parse_records"]


class ParsedBody:
    """A parsed body: one point batch and the records that were refused."""

    def __init__(self, batch: PointBatch, rejected: list[DeadLetter]) -> None:
        self.batch = batch
        self.rejected = rejected


def parse_records(
    items: Iterator[tuple[str, Any]],
    *,
    enterprise: str,
    times: TimeParser,
    source: str,
    payload_limit: int = 4096,
) -> ParsedBody:
    """Parse ``(ref, record)`` pairs; each bad record becomes a dead letter naming its field."""
    builder = BatchBuilder(enterprise)
    rejected: list[DeadLetter] = []
    for ref, record in items:
        try:
            if not isinstance(record, dict):
                raise DataError(f"record must be a JSON object, got {type(record).__name__}")
            unknown = set(record) - {"tag", "ts", "timestamp_ms", "value", "quality"}
            if unknown:
                names = ", ".join(repr(k) for k in sorted(unknown))
                raise DataError(f"unknown field(s) {names[:200]}")
            if "tag" not in record:
                raise DataError("field 'tag' is missing")
            try:
                tag = str(TagPath.parse(record["tag"]))
            except DataError as exc:
                raise DataError(f"field 'tag': {exc}") from exc
            if "ts" in record and "timestamp_ms" in record:
                raise DataError("give either 'ts' or 'timestamp_ms', not both")
            raw_ts = record.get("ts", record.get("timestamp_ms"))
            if raw_ts is None:
                raise DataError("field 'ts' is missing")
            try:
                ts = times.parse(raw_ts)
            except DataError as exc:
                raise DataError(f"field 'ts': {exc}") from exc
            if "value" not in record:
                raise DataError("field 'value' is missing")
            try:
                value = parse_json_value(record["value"])
            except DataError as exc:
                raise DataError(f"field 'value': {exc}") from exc
            try:
                quality = parse_quality(record.get("quality"))
            except DataError as exc:
                raise DataError(f"field 'quality': {exc}") from exc
            builder.add(tag, ts, value, ref, quality)
        except DataError as exc:
            payload = _payload(record, payload_limit)
            rejected.append(DeadLetter(source, f"{ref}: {exc}", ref, payload))
    return ParsedBody(builder.take(), rejected)


def _payload(record: Any, limit: int) -> str:
    """Return a record as JSON text for a dead letter, at most ``limit`` characters."""
    try:
        return json.dumps(record, default=str)[:limit]
    except (ValueError, RecursionError):
        return repr(record)[:limit]


def _ndjson(text: str) -> Iterator[tuple[str, Any]]:
    # only "\n" ends a line: str.splitlines() would also split at U+2028 and other characters
    # that JSON strings may hold unescaped
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            yield (
                f"line {number}",
                _Broken(line, f"not valid JSON ({exc.msg} at column {exc.colno})"),
            )
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            yield f"line {number}", _Broken(line, f"not valid JSON ({exc})")
        except RecursionError:
            yield f"line {number}", _Broken(line, "nested too deeply")


class _Broken:
    """A line that did not parse as JSON, carried along so it is dead-lettered with its reason."""

    def __init__(self, line: str, reason: str) -> None:
        self.line = line
        self.reason = reason


def parse_body(
    body: bytes,
    *,
    ndjson: bool,
    enterprise: str,
    times: TimeParser,
    source: str,
    payload_limit: int = 4096,
) -> ParsedBody:
    """Parse an ingest body; raise `DataError` when the body as a whole is unusable."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"body is not valid UTF-8 (byte {exc.start})") from exc
    if not text.strip():
        raise DataError("body is empty")
    if ndjson:
        items = list(_ndjson(text))
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            ) from exc
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            raise DataError(f"body is not valid JSON ({exc})") from exc
        except RecursionError as exc:
            raise DataError("body is nested too deeply") from exc
        if isinstance(doc, dict):
            doc = [doc]
        if not isinstance(doc, list):
            raise DataError("body must be a JSON array of records (or NDJSON)")
        items = [(f"record {i}", r) for i, r in enumerate(doc)]
    broken = [
        DeadLetter(source, f"{ref}: {r.reason}", ref, r.line[:payload_limit])
        for ref, r in items
        if isinstance(r, _Broken)
    ]
    parsed = parse_records(
        ((ref, r) for ref, r in items if not isinstance(r, _Broken)),
        enterprise=enterprise,
        times=times,
        source=source,
        payload_limit=payload_limit,
    )
    parsed.rejected[:0] = broken
    return parsed
