"""Store-and-forward: a durable, bounded, in-order queue on disk (SQLite in WAL mode).

Every reading is written here before anything is sent. A row leaves the queue only when the
broker acknowledged its message (QoS 1 PUBACK). When the queue is full the oldest rows are
dropped to make room, and every dropped row is counted in ``dropped`` (kept in the same file,
so the count survives restarts). The same file keeps the audit trail of commands.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from indunet.errors import ConfigError

__all__ = ["AuditRecord", "BufferStats", "EdgeBuffer", "QueuedRow"]

_ROW_OVERHEAD = 48  # bytes counted per row besides key and payload (ids, ts, page slack)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    ts INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notes (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    command_id TEXT NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    device TEXT NOT NULL,
    machine TEXT NOT NULL,
    tag TEXT NOT NULL,
    old TEXT,
    new TEXT,
    result TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class QueuedRow:
    """One queued message: ``kind`` data (a device's readings) or raw (topic + bytes)."""

    id: int
    kind: str
    key: str
    ts: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class BufferStats:
    """Fill level and counters of the buffer."""

    rows: int
    bytes: int
    max_bytes: int
    dropped: int
    enqueued: int
    acked: int
    oldest_ts: int | None

    @property
    def fill(self) -> float:
        """Return the fill level, 0 to 1."""
        return self.bytes / self.max_bytes if self.max_bytes else 0.0


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Who asked to write what, the value before and after, and how it ended."""

    ts: int
    command_id: str
    user: str
    role: str
    device: str
    machine: str
    tag: str
    old: str | None
    new: str | None
    result: str  # written | rejected | failed
    detail: str


def _size(key: str, payload: bytes) -> int:
    return len(key) + len(payload) + _ROW_OVERHEAD


class EdgeBuffer:
    """The on-disk queue; safe to share between the agent's loop and the publisher thread."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        if max_bytes < 4096:
            raise ConfigError(f"edge buffer size {max_bytes} bytes is too small (min 4 KiB)")
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(
                f"edge buffer {self.path} cannot be opened: {exc}; check the path and free space"
            ) from exc
        self._lock = threading.Lock()
        self.wakeup = threading.Event()
        row = self._db.execute(
            f"SELECT count(*), coalesce(sum(length(key) + length(payload) + {_ROW_OVERHEAD}), 0) "
            "FROM queue"
        ).fetchone()
        self._rows, self._bytes = int(row[0]), int(row[1])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    # ---------------------------------------------------------------- counters
    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, name: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def next_counter(self, name: str) -> int:
        """Return a persistent counter's value and increment it (e.g. Sparkplug bdSeq)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            value = self._counter(name)
            self._bump(name, 1)
            self._db.execute("COMMIT")
            return value

    # ---------------------------------------------------------------- queue
    def notes(self) -> dict[str, bytes]:
        """Return the notes kept beside the queue (`put`'s ``notes``), by name."""
        with self._lock:
            return {n: bytes(v) for n, v in self._db.execute("SELECT name, value FROM notes")}

    def clear_notes(self) -> None:
        """Forget every note."""
        with self._lock:
            self._db.execute("DELETE FROM notes")

    def put(
        self,
        rows: Iterable[tuple[str, str, int, bytes]],
        notes: Iterable[tuple[str, bytes]] = (),
        *,
        replace_notes: bool = False,
    ) -> int:
        """Append rows (kind, key, ts, payload) in one transaction; return how many old rows
        were dropped to make room.

        ``notes`` (name, value) are kept (replacing the same name) in the same transaction: what
        a producer must remember about the rows it queued (the uplink's "sent" figures) is on
        disk exactly when the rows are; ``replace_notes`` forgets every other note first.
        """
        rows = list(rows)
        notes = list(notes)
        if not rows and not notes and not replace_notes:
            return 0
        incoming = sum(_size(k, p) for _, k, _, p in rows)
        dropped = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                need = self._bytes + incoming - self.max_bytes
                if need > 0:
                    dropped, freed = self._drop_oldest(need)
                    self._bytes -= freed
                    self._rows -= dropped
                if incoming > self.max_bytes:  # a single put larger than the whole buffer
                    keep = []
                    room = self.max_bytes
                    for row in reversed(rows):
                        size = _size(row[1], row[3])
                        if size > room:
                            break
                        keep.append(row)
                        room -= size
                    dropped += len(rows) - len(keep)
                    rows = list(reversed(keep))
                    incoming = sum(_size(k, p) for _, k, _, p in rows)
                self._db.executemany(
                    "INSERT INTO queue(kind, key, ts, payload) VALUES (?, ?, ?, ?)", rows
                )
                if replace_notes:
                    self._db.execute("DELETE FROM notes")
                self._db.executemany(
                    "INSERT INTO notes(name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    notes,
                )
                self._bump("enqueued", len(rows))
                if dropped:
                    self._bump("dropped", dropped)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._bytes += incoming
            self._rows += len(rows)
        self.wakeup.set()
        return dropped

    def _drop_oldest(self, need: int) -> tuple[int, int]:
        freed = count = 0
        last_id = None
        cursor = self._db.execute(
            f"SELECT id, length(key) + length(payload) + {_ROW_OVERHEAD} FROM queue ORDER BY id"
        )
        for row_id, size in cursor:
            freed += size
            count += 1
            last_id = row_id
            if freed >= need:
                break
        cursor.close()
        if last_id is not None:
            self._db.execute("DELETE FROM queue WHERE id <= ?", (last_id,))
        return count, freed

    def read(self, after_id: int, limit: int, upto_id: int | None = None) -> list[QueuedRow]:
        """Return up to ``limit`` rows with ``after_id < id <= upto_id``, oldest first."""
        upto = upto_id if upto_id is not None else 2**62
        with self._lock:
            cur = self._db.execute(
                "SELECT id, kind, key, ts, payload FROM queue WHERE id > ? AND id <= ? "
                "ORDER BY id LIMIT ?",
                (after_id, upto, limit),
            )
            return [QueuedRow(*r) for r in cur.fetchall()]

    def max_id(self) -> int:
        """Return the id of the newest row (0 when empty)."""
        with self._lock:
            row = self._db.execute("SELECT coalesce(max(id), 0) FROM queue").fetchone()
            return int(row[0])

    def ack(self, ids: Sequence[int]) -> int:
        """Remove rows the broker acknowledged; return how many were still there."""
        if not ids:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            removed = freed = 0
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                got = self._db.execute(
                    f"SELECT count(*), coalesce(sum(length(key) + length(payload) + "
                    f"{_ROW_OVERHEAD}), 0) FROM queue WHERE id IN ({marks})",
                    chunk,
                ).fetchone()
                self._db.execute(f"DELETE FROM queue WHERE id IN ({marks})", chunk)
                removed += int(got[0])
                freed += int(got[1])
            self._bump("acked", removed)
            self._db.execute("COMMIT")
            self._rows -= removed
            self._bytes -= freed
            return removed

    def stats(self) -> BufferStats:
        """Return the fill level and counters."""
        with self._lock:
            oldest = self._db.execute("SELECT min(ts) FROM queue").fetchone()[0]
            return BufferStats(
                rows=self._rows,
                bytes=self._bytes,
                max_bytes=self.max_bytes,
                dropped=self._counter("dropped"),
                enqueued=self._counter("enqueued"),
                acked=self._counter("acked"),
                oldest_ts=oldest,
            )

    # ---------------------------------------------------------------- audit
    def add_audit(self, record: AuditRecord) -> int:
        """Keep an audit record of a command; return its id."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO audit(ts, command_id, user, role, device, machine, tag, old, new, "
                "result, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.ts,
                    record.command_id,
                    record.user,
                    record.role,
                    record.device,
                    record.machine,
                    record.tag,
                    record.old,
                    record.new,
                    record.result,
                    record.detail,
                ),
            )
            return int(cur.lastrowid or 0)

    def audit(self, limit: int = 100) -> list[AuditRecord]:
        """Return the newest audit records, newest first."""
        with self._lock:
            cur = self._db.execute(
                "SELECT ts, command_id, user, role, device, machine, tag, old, new, result, detail "
                "FROM audit ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            return [AuditRecord(*r) for r in cur.fetchall()]


def now_ms() -> int:
    """Return the wall clock in epoch milliseconds."""
    return int(time.time() * 1000)
