"""Accumulate parsed points into Arrow batches, keeping each row's origin for dead letters."""

from __future__ import annotations

import pyarrow as pa

from indunet.ingest.values import Value
from indunet.model import POINT_SCHEMA, DataType, PointBatch, Quality

__all__ = ["BatchBuilder"]


class BatchBuilder:
    """Collect points column by column; `take()` returns a `PointBatch` and starts afresh."""

    def __init__(self, enterprise: str) -> None:
        self.enterprise = enterprise
        self._reset()

    def _reset(self) -> None:
        self._tag: list[str] = []
        self._ts: list[int] = []
        self._value: list[float | None] = []
        self._text: list[str | None] = []
        self._quality: list[int] = []
        self._refs: list[str] = []
        self._types: dict[str, DataType] = {}

    def __len__(self) -> int:
        return len(self._ts)

    def add(self, tag: str, ts: int, value: Value, ref: str, quality: int = Quality.GOOD) -> None:
        """Append one point; the first value seen for a tag sets its data type in this batch."""
        self._tag.append(tag)
        self._ts.append(ts)
        self._value.append(value.value)
        self._text.append(value.text)
        self._quality.append(int(quality))
        self._refs.append(ref)
        self._types.setdefault(tag, value.dtype)

    def take(self) -> PointBatch:
        """Return what was collected as a batch and empty the builder."""
        table = pa.table(
            {
                "tag": pa.array(self._tag, pa.string()),
                "ts": pa.array(self._ts, pa.int64()),
                "value": pa.array(self._value, pa.float64()),
                "text": pa.array(self._text, pa.string()),
                "quality": pa.array(self._quality, pa.uint8()),
            },
            schema=POINT_SCHEMA,
        )
        batch = PointBatch(self.enterprise, table, dict(self._types), list(self._refs))
        self._reset()
        return batch
