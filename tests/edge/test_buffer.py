"""Store-and-forward buffer: order, acknowledgement, bounded size with counted drops, restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from indunet.edge.buffer import EdgeBuffer
from indunet.errors import ConfigError


def _rows(n: int, start: int = 0):
    return [("data", "dev", start + i, b'{"v": %d}' % (start + i)) for i in range(n)]


def test_rows_leave_only_when_acked_and_survive_a_restart(tmp_path: Path) -> None:
    buf = EdgeBuffer(tmp_path / "b.sqlite", 1 << 20)
    buf.put(_rows(10))
    first = buf.read(0, 4)
    assert [r.ts for r in first] == [0, 1, 2, 3]
    assert buf.ack([first[1].id, first[3].id]) == 2
    assert buf.ack([first[1].id]) == 0  # acking twice is harmless
    buf.close()
    again = EdgeBuffer(tmp_path / "b.sqlite", 1 << 20)  # e.g. after kill -9
    assert [r.ts for r in again.read(0, 100)] == [0, 2, 4, 5, 6, 7, 8, 9]
    stats = again.stats()
    assert (stats.rows, stats.enqueued, stats.acked, stats.dropped) == (8, 10, 2, 0)
    assert again.next_counter("bdSeq") == 0 and again.next_counter("bdSeq") == 1
    again.close()


def test_full_buffer_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    buf = EdgeBuffer(tmp_path / "b.sqlite", 8192)
    dropped = sum(buf.put(_rows(1, i)) for i in range(500))
    stats = buf.stats()
    assert dropped == stats.dropped > 0
    assert stats.bytes <= 8192 and stats.rows + stats.dropped == 500
    kept = [r.ts for r in buf.read(0, 1000)]
    assert kept == list(range(500 - stats.rows, 500))  # the newest stay, in order
    buf.close()
    assert EdgeBuffer(tmp_path / "b.sqlite", 8192).stats().dropped == dropped


def test_a_tiny_buffer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="too small"):
        EdgeBuffer(tmp_path / "b.sqlite", 100)
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(ConfigError, match="cannot be opened"):
        EdgeBuffer(tmp_path / "dir.sqlite", 1 << 20)


def test_notes_are_kept_with_the_rows_and_survive_a_restart(tmp_path: Path) -> None:
    buf = EdgeBuffer(tmp_path / "b.sqlite", 1 << 20)
    buf.put([("raw", "t/a", 1, b"x")], [("a", b"1"), ("b", b"2")])
    buf.put([], [("a", b"3")])
    buf.close()
    buf = EdgeBuffer(tmp_path / "b.sqlite", 1 << 20)
    assert buf.notes() == {"a": b"3", "b": b"2"} and buf.stats().rows == 1
    buf.put([("raw", "t/c", 2, b"y")], [("c", b"4")], replace_notes=True)
    assert buf.notes() == {"c": b"4"}
    # a put that fails leaves neither its rows nor its notes
    with pytest.raises(sqlite3.ProgrammingError):
        buf.put([("raw", "t/d", 3, b"z")], [("d", object())])  # type: ignore[list-item]
    assert buf.notes() == {"c": b"4"} and buf.stats().rows == 2
    buf.clear_notes()
    assert buf.notes() == {}
    buf.close()
