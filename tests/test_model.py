"""Value types."""

from __future__ import annotations

import pyarrow as pa

from indunet.model import POINT_SCHEMA, DeadLetter, PointBatch, Quality, WriteResult


def test_write_results_add_up():
    a = WriteResult(2, [DeadLetter("s", "r1")])
    b = WriteResult(3, [DeadLetter("s", "r2")])
    assert a.merge(b) is a
    assert a.stored == 5 and [d.reason for d in a.rejected] == ["r1", "r2"]


def test_point_batch_length_and_schema():
    table = pa.table(
        {"tag": ["s/a/l/m/t"], "ts": [1], "value": [1.0], "text": [None], "quality": [0]},
        schema=POINT_SCHEMA,
    )
    assert len(PointBatch("e", table)) == 1
    assert [q.name for q in Quality] == ["GOOD", "UNCERTAIN", "BAD", "STALE"]
