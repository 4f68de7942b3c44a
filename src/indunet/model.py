"""Value types shared across contexts: qualities, data types and the columnar point batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "POINT_SCHEMA",
    "DataType",
    "DeadLetter",
    "PointBatch",
    "Quality",
    "WriteResult",
]


class Quality(IntEnum):
    """Quality of a stored value (OPC UA's three classes plus stale)."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2
    STALE = 3


class DataType(StrEnum):
    """Data type of a tag, fixed when the tag is first seen or declared."""

    NUMBER = "number"
    BOOLEAN = "boolean"
    STRING = "string"


#: One row per point; ``value`` holds numbers and booleans (0/1), ``text`` holds strings.
POINT_SCHEMA = pa.schema(
    [
        pa.field("tag", pa.string(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("text", pa.string()),
        pa.field("quality", pa.uint8(), nullable=False),
    ]
)


@dataclass(slots=True)
class DeadLetter:
    """An input that could not be stored, with where it came from and why."""

    source: str
    reason: str
    ref: str = ""
    payload: str = ""


@dataclass(slots=True)
class PointBatch:
    """Points of one enterprise in columns (`POINT_SCHEMA`) plus the data type of each tag."""

    enterprise: str
    table: pa.Table
    types: dict[str, DataType] = field(default_factory=dict)
    #: where each row came from (file:line), used in dead letters; optional
    refs: list[str] | None = None
    #: the tag column dictionary-encoded, when the builder had it: (row -> number, number ->
    #: path, each path once); spares the historian hashing every row's tag
    tag_index: tuple[np.ndarray, list[str]] | None = None

    def __len__(self) -> int:
        return self.table.num_rows


@dataclass(slots=True)
class WriteResult:
    """What a write did: rows stored and rows rejected (already in the dead-letter store)."""

    stored: int = 0
    rejected: list[DeadLetter] = field(default_factory=list)

    def merge(self, other: WriteResult) -> WriteResult:
        """Add another result to this one and return self."""
        self.stored += other.stored
        self.rejected.extend(other.rejected)
        return self
