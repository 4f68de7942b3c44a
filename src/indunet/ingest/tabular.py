"""Read wide or long CSV / Parquet files into point batches, chunk by chunk.

Wide: one time column and one column per tag of one machine. Long: columns ``tag, ts, value``
(optional ``quality``). Unusable files raise `DataError`; bad rows and cells become dead letters
naming the file, line and column, and the rest of the file is still imported.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from indunet.errors import DataError
from indunet.ingest.batch import BatchBuilder
from indunet.ingest.values import TimeParser, parse_cell, parse_json_value, parse_quality
from indunet.model import DeadLetter, PointBatch
from indunet.uns import MachinePath, TagPath, check_segment

__all__ = ["Chunk", "TableSpec", "read_table"]

MAX_FIELD = 1 << 20  # a cell over 1 MiB is refused, the rest of the file continues
_LONG_COLUMNS = ("tag", "ts", "value")
#: undecodable bytes come through ``surrogateescape`` as lone surrogates
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How to read a table: wide for one machine, or long with full tag paths."""

    enterprise: str
    times: TimeParser
    machine: MachinePath | None = None
    time_column: str | None = None
    long: bool = False
    chunk_rows: int = 200_000
    payload_limit: int = 4096


@dataclass(slots=True)
class Chunk:
    """A batch of points and the dead letters found while reading it."""

    batch: PointBatch
    rejected: list[DeadLetter]


def read_table(path: Path, spec: TableSpec) -> Iterator[Chunk]:
    """Yield chunks of ``path`` (``.csv``, ``.csv.gz``, ``.parquet``) read per ``spec``."""
    if not path.exists():
        raise DataError(f"{path}: file does not exist")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a file")
    if not spec.long and spec.machine is None:
        raise DataError("a wide table needs --machine SITE/AREA/LINE/MACHINE (or use --long)")
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        header, rows = _parquet_rows(path)
    else:
        header, rows = _csv_rows(path)
    yield from _convert(path, header, rows, spec)


def _csv_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str] | str]]]:
    """Return the header and an iterator of (line number, fields or error text)."""
    try:
        raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    try:
        head = raw.read(4)
        raw.seek(0)
    except (gzip.BadGzipFile, EOFError) as exc:  # BadGzipFile is an OSError: catch it first
        raw.close()
        raise DataError(f"{path}: not a valid gzip file ({exc})") from exc
    except OSError as exc:
        raw.close()
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    if head.startswith(b"PAR1"):
        raw.close()
        raise DataError(f"{path}: this is a Parquet file; name it .parquet")
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, strict=True)
    csv.field_size_limit(MAX_FIELD)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: file is empty") from None
    except (csv.Error, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the header line ({exc})") from exc

    def rows() -> Iterator[tuple[int, list[str] | str]]:
        while True:
            line = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                last = reader.line_num
                swallowed = f"; lines {line}-{last} were not imported" if last > line else ""
                yield line, f"broken CSV ({exc}){swallowed}"
                continue
            except (OSError, EOFError) as exc:  # truncated gzip and the like
                yield line, f"file ends in the middle of data ({exc})"
                return
            yield line, fields

    return header, rows()


def _parquet_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[object] | str]]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    header = list(pf.schema_arrow.names)

    def rows() -> Iterator[tuple[int, list[object] | str]]:
        number = 1
        for record_batch in pf.iter_batches(batch_size=65_536):
            columns = [c.to_pylist() for c in record_batch.columns]
            for values in zip(*columns, strict=True):
                number += 1
                yield number, list(values)

    return header, rows()


def _column_index(path: Path, header: list[str], wanted: str) -> int:
    names = [h.strip() for h in header]
    if wanted not in names:
        raise DataError(f"{path}: no column {wanted!r}; columns are {', '.join(names)[:300]}")
    return names.index(wanted)


def _convert(
    path: Path,
    header: list[str],
    rows: Iterable[tuple[int, list[object] | str]],
    spec: TableSpec,
) -> Iterator[Chunk]:
    names = [str(h).strip() for h in header]
    if any(_SURROGATE.search(n) for n in names):
        raise DataError(f"{path}: header line is not valid UTF-8")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)
    file_name = path.name
    source = f"import:{file_name}"
    builder = BatchBuilder(spec.enterprise)
    rejected: list[DeadLetter] = []
    limit = spec.payload_limit

    def dead(ref: str, reason: str, payload: object) -> None:
        ref = f"{file_name} {ref}"
        rejected.append(DeadLetter(source, f"{ref}: {reason}", ref, str(payload)[:limit]))

    if spec.long:
        idx = [_column_index(path, names, c) for c in _LONG_COLUMNS]
        q_idx = names.index("quality") if "quality" in names else None
    else:
        time_col = spec.time_column or names[0]
        t_idx = _column_index(path, names, time_col)
        tag_cols: list[tuple[int, str]] = []
        for i, name in enumerate(names):
            if i == t_idx:
                continue
            try:
                tag_cols.append((i, str(spec.machine.tag(check_segment(name, "tag")))))  # type: ignore[union-attr]
            except DataError as exc:
                raise DataError(f"{path}: column {name!r} cannot be a tag name: {exc}") from exc
        if not tag_cols:
            raise DataError(f"{path}: no tag columns beside the time column {time_col!r}")

    width = len(names)
    for line, fields in rows:
        ref = f"line {line}"
        if isinstance(fields, str):
            dead(ref, fields, "")
            continue
        if not any(str(f).strip() for f in fields if f is not None):
            continue  # blank line
        if len(fields) != width:
            dead(
                ref, f"has {len(fields)} fields, the header has {width}", ",".join(map(str, fields))
            )
            continue
        if any(isinstance(f, str) and _SURROGATE.search(f) for f in fields):
            raw_line = ",".join(map(str, fields)).encode("utf-8", "surrogateescape")
            dead(ref, "is not valid UTF-8", raw_line.decode("utf-8", "replace"))
            continue
        if spec.long:
            _long_row(fields, idx, q_idx, ref, f"{file_name} {ref}", spec, builder, dead)
        else:
            try:
                ts = spec.times.parse(fields[t_idx])
            except DataError as exc:
                dead(ref, f"column {names[t_idx]!r}: {exc}", ",".join(map(str, fields)))
                continue
            for i, tag in tag_cols:
                cell = fields[i]
                try:
                    value = parse_cell(cell) if isinstance(cell, str) else _typed(cell)
                except DataError as exc:
                    dead(f"{ref} column {names[i]!r}", str(exc), cell)
                    continue
                if value is not None:
                    builder.add(tag, ts, value, f"{file_name} {ref} column {names[i]!r}")
        if len(builder) >= spec.chunk_rows:
            yield Chunk(builder.take(), rejected)
            rejected = []
    yield Chunk(builder.take(), rejected)


def _typed(cell: object):
    """Parse a typed (Parquet) cell."""
    if cell is None:
        return None
    if hasattr(cell, "isoformat"):
        return parse_cell(str(cell))
    return parse_json_value(cell)


def _long_row(fields, idx, q_idx, ref, full_ref, spec, builder, dead) -> None:
    tag_raw, ts_raw, value_raw = (fields[i] for i in idx)
    try:
        try:
            tag = str(TagPath.parse(str(tag_raw).strip()))
        except DataError as exc:
            raise DataError(f"column 'tag': {exc}") from exc
        try:
            ts = spec.times.parse(ts_raw)
        except DataError as exc:
            raise DataError(f"column 'ts': {exc}") from exc
        try:
            value = parse_cell(value_raw) if isinstance(value_raw, str) else _typed(value_raw)
        except DataError as exc:
            raise DataError(f"column 'value': {exc}") from exc
        if value is None:
            raise DataError("column 'value' is empty")
        quality_raw = fields[q_idx] if q_idx is not None else None
        if isinstance(quality_raw, str):
            quality_raw = quality_raw.strip() or None
            if quality_raw is not None and quality_raw.isdecimal() and quality_raw.isascii():
                quality_raw = int(quality_raw)
        try:
            quality = parse_quality(quality_raw)
        except DataError as exc:
            raise DataError(f"column 'quality': {exc}") from exc
    except DataError as exc:
        dead(ref, str(exc), ",".join(map(str, fields)))
        return
    builder.add(tag, ts, value, full_ref, quality)
