"""Accumulate parsed points into Arrow batches, keeping each row's origin for dead letters."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from indunet.ingest.values import Value
from indunet.model import POINT_SCHEMA, DataType, PointBatch, Quality

__all__ = ["BatchBuilder"]

_NUMBER = DataType.NUMBER


class BatchBuilder:
    """Collect points column by column; `take()` returns a `PointBatch` and starts afresh.

    The text and quality columns are only materialised once a text value or a quality other
    than good arrives: a batch of good numbers (the common case) appends to three lists only.
    """

    def __init__(self, enterprise: str) -> None:
        self.enterprise = enterprise
        self._reset()

    def _reset(self) -> None:
        self._tag: list[str] = []
        self._ts: list[int] = []
        self._value: list[float | None] = []
        self._text: list[str | None] | None = None  # None: every row so far has no text
        self._quality: list[int] | None = None  # None: every row so far is good
        self._refs: list[str] = []
        self._types: dict[str, DataType] = {}

    def __len__(self) -> int:
        return len(self._ts)

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

    def take(self) -> PointBatch:
        """Return what was collected as a batch and empty the builder."""
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
