"""Accumulate parsed points into Arrow batches, keeping each row's origin for dead letters."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from indunet.ingest.values import Value
from indunet.model import POINT_SCHEMA, DataType, PointBatch, Quality

__all__ = ["BatchBuilder", "ChunkTags"]

_NUMBER = DataType.NUMBER


class ChunkTags:
    """The tags of a run of points that recurs (a machine payload's keys), in row order.

    `BatchBuilder.extend_chunk` numbers them once per batch and remembers the numbers here,
    so a recurring run costs no per-point work until `BatchBuilder.take`.
    """

    __slots__ = ("_codes", "_owner", "tags")

    def __init__(self, tags: list[str]) -> None:
        self.tags = tags
        self._owner: object = None  # the builder generation ``_codes`` belong to
        self._codes: np.ndarray | None = None


class BatchBuilder:
    """Collect points column by column; `take()` returns a `PointBatch` and starts afresh.

    The text and quality columns are only materialised once a text value or a quality other
    than good arrives: a batch of good numbers (the common case) appends to three lists only.
    """

    def __init__(self, enterprise: str) -> None:
        self.enterprise = enterprise
        self._reset()

    def _reset(self) -> None:
        self._generation = object()  # chunk tags numbered for an older batch are renumbered
        self._code: dict[str, int] = {}  # tag -> its number in this batch (chunks only)
        self._chunks: list[tuple[int, np.ndarray, int, np.ndarray, str]] = []
        self._chunk_rows = 0
        self._tag: list[str] = []
        self._ts: list[int] = []
        self._value: list[float | None] = []
        self._text: list[str | None] | None = None  # None: every row so far has no text
        self._quality: list[int] | None = None  # None: every row so far is good
        self._refs: list[str] = []
        self._types: dict[str, DataType] = {}

    def __len__(self) -> int:
        return len(self._ts) + self._chunk_rows

    def add(self, tag: str, ts: int, value: Value, ref: str, quality: int = Quality.GOOD) -> None:
        """Append one point; the first value seen for a tag sets its data type in this batch."""
        n = len(self._ts)
        if tag not in self._types:
            self._types[tag] = value.dtype
        self._tag.append(tag)
        self._ts.append(ts)
        self._value.append(value.value)
        if value.text is not None or self._text is not None:
            if self._text is None:
                self._text = [None] * n
            self._text.append(value.text)
        if quality or self._quality is not None:
            if self._quality is None:
                self._quality = [0] * n
            self._quality.append(int(quality))
        self._refs.append(ref)

    def add_number(self, tag: str, ts: int, value: float, ref: str) -> None:
        """Append one good numeric point (``value`` a finite float)."""
        if tag not in self._types:
            self._types[tag] = _NUMBER
        self._tag.append(tag)
        self._ts.append(ts)
        self._value.append(value)
        if self._text is not None:
            self._text.append(None)
        if self._quality is not None:
            self._quality.append(0)
        self._refs.append(ref)

    def extend_numbers(
        self, tags: list[str], ts: int | list[int], values: list[float], ref: str
    ) -> None:
        """Append good numeric points: one tag, time (or one time for all) and finite float each."""
        k = len(tags)
        if not k:
            return
        types = self._types
        for tag in tags:
            if tag not in types:
                types[tag] = _NUMBER
        self._tag.extend(tags)
        self._ts.extend([ts] * k if isinstance(ts, int) else ts)
        self._value.extend(values)
        if self._text is not None:
            self._text.extend([None] * k)
        if self._quality is not None:
            self._quality.extend([0] * k)
        self._refs.extend([ref] * k)

    def extend_chunk(self, tags: ChunkTags, ts: int, values: np.ndarray, ref: str) -> None:
        """Append good numeric points of one time: ``tags.tags`` with ``values`` (finite float64,
        one per tag), as `extend_numbers` would, without per-point work."""
        if tags._owner is not self._generation:
            code = self._code
            types = self._types
            codes = np.empty(len(tags.tags), np.int32)
            for i, tag in enumerate(tags.tags):
                c = code.get(tag)
                if c is None:
                    c = code[tag] = len(code)
                codes[i] = c
                if tag not in types:
                    types[tag] = _NUMBER
            tags._codes, tags._owner = codes, self._generation
        if tags._codes is None or len(values) != len(tags._codes):
            raise ValueError(f"{len(values)} values for {len(tags.tags)} tags")
        self._chunks.append((len(self._ts), tags._codes, ts, values, ref))
        self._chunk_rows += len(values)

    def take(self) -> PointBatch:
        """Return what was collected as a batch and empty the builder."""
        if self._chunks:
            batch = self._take_chunks()
            self._reset()
            return batch
        n = len(self._ts)
        text = pa.nulls(n, pa.string()) if self._text is None else pa.array(self._text, pa.string())
        quality = (
            pa.array(np.zeros(n, np.uint8))
            if self._quality is None
            else pa.array(self._quality, pa.uint8())
        )
        table = pa.table(
            {
                "tag": pa.array(self._tag, pa.string()),
                "ts": pa.array(self._ts, pa.int64()),
                "value": pa.array(self._value, pa.float64()),
                "text": text,
                "quality": quality,
            },
            schema=POINT_SCHEMA,
        )
        batch = PointBatch(self.enterprise, table, self._types, self._refs)
        self._reset()
        return batch

    def _take_chunks(self) -> PointBatch:
        """`take` when chunks were added: rows in the order they came, tags numbered."""
        chunks = self._chunks
        code = self._code
        n_list = len(self._ts)
        list_codes = np.empty(n_list, np.int32)
        for i, tag in enumerate(self._tag):
            c = code.get(tag)
            if c is None:
                c = code[tag] = len(code)
            list_codes[i] = c
        sizes = np.fromiter((len(c[3]) for c in chunks), np.int64, len(chunks))
        idx = np.concatenate([list_codes, *(c[1] for c in chunks)])
        ts = np.concatenate(
            [
                np.array(self._ts, np.int64),
                np.repeat(np.fromiter((c[2] for c in chunks), np.int64, len(chunks)), sizes),
            ]
        )
        value = pa.array(np.concatenate([c[3] for c in chunks]), pa.float64())
        if n_list:  # list values may be None (text rows): Arrow's nulls
            value = pa.concat_arrays([pa.array(self._value, pa.float64()), value])
        n = len(idx)
        refs = list(self._refs)
        for c in chunks:
            refs.extend([c[4]] * len(c[3]))
        text = (
            pa.nulls(n, pa.string())
            if self._text is None
            else pa.array(self._text + [None] * self._chunk_rows, pa.string())
        )
        quality = (
            pa.array(np.zeros(n, np.uint8))
            if self._quality is None
            else pa.array(self._quality + [0] * self._chunk_rows, pa.uint8())
        )
        if n_list:  # list rows and chunks interleaved: back into the order they came in
            # list row i sorts at 2i + 1, a chunk added before list row p at 2p
            keys = np.concatenate(
                [np.arange(n_list) * 2 + 1, np.repeat([2 * c[0] for c in chunks], sizes)]
            )
            order = np.argsort(keys, kind="stable")
            idx, ts = idx[order], ts[order]
            taken = pa.array(order)
            value, text, quality = value.take(taken), text.take(taken), quality.take(taken)
            refs = [refs[i] for i in order.tolist()]
        paths = list(code)
        table = pa.table(
            {
                "tag": pa.array(paths, pa.string()).take(pa.array(idx)),
                "ts": pa.array(ts, pa.int64()),
                "value": value,
                "text": text,
                "quality": quality,
            },
            schema=POINT_SCHEMA,
        )
        return PointBatch(self.enterprise, table, self._types, refs, (idx, paths))
