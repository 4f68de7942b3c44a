"""Decode workers: MQTT JSON ingest on several cores, one writer, commit before acknowledgement.

`DecodeWorkers` starts N processes. Each holds its own persistent MQTT session on the shared
subscription ``$share/<group>/indunet/v1/#`` (the broker spreads the messages over them) and runs
an ordinary `MqttIngest` that decodes and builds Arrow batches. Its "historian" is a
`WriterLink`: every write, dead-letter list and tag declaration goes down a pipe (the points as
Arrow IPC) to this process, where the one `Historian` commits it and answers. Only then does the
worker's batch writer send its PUBACKs, so commit-before-ack holds across the process boundary,
and every write still passes this process's historian (change and write listeners see it all).

Sparkplug (ordered per-node state) and the host STATE stay with the serve process's own
`MqttIngest` (``json_topics=False``). A worker that dies is started again with the same client
id: its persistent session gets back what it had not acknowledged (Mosquitto keeps a shared
subscriber's in-flight messages in its session rather than handing them to the other members).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pyarrow as pa

from indunet.errors import DataError, TemporaryError
from indunet.model import POINT_SCHEMA, DeadLetter, PointBatch, WriteResult

__all__ = ["DecodeWorkers", "DecodeWorkersStats", "WriterLink"]

log = logging.getLogger(__name__)
_STATUS_S = 0.25  # how often a worker reports its counters
_RESTART_S = 1.0  # how long a dead worker's slot waits before it starts again


@dataclass(slots=True)
class DecodeWorkersStats:
    """Counters of all workers: the workers' own (received, acked) and the writer's."""

    received: int = 0
    acked: int = 0
    stored_points: int = 0
    dead_letters: int = 0
    batches: int = 0
    write_failures: int = 0
    restarts: int = 0
    connected: bool = False
    subscribed: bool = False
    last_error: str | None = None


class WriterLink:
    """The serve process's historian as a worker's `MqttIngest` sees it: each call a round trip.

    Only the worker's batch writer calls it (one request at a time); the worker's status
    reports share the pipe under a lock and get no answer.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def _call(self, request: tuple) -> Any:
        try:
            with self._lock:
                self._conn.send(request)
            kind, answer = self._conn.recv()
        except (OSError, EOFError) as exc:
            raise TemporaryError("the serve process's writer is gone", detail=str(exc)) from exc
        if kind == "ok":
            return answer
        if kind == "data":
            raise DataError(answer)
        raise TemporaryError(f"the serve process could not write: {answer}")

    def report(self, status: dict) -> None:
        """Send the worker's counters (no answer)."""
        with self._lock:
            self._conn.send(("status", status))

    def write(self, batch: PointBatch, *, source: str = "api") -> WriteResult:
        """Commit a batch in the serve process; return what it stored and dead-lettered."""
        table = batch.table
        if batch.tag_index is not None:  # the tags numbered: sent once each, not per row
            idx, paths = batch.tag_index
            tags = pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), pa.array(paths))
            table = table.set_column(0, pa.field("tag", tags.type, nullable=False), tags)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as ipc:
            ipc.write_table(table)
        stored, rejected = self._call(
            (
                "write",
                batch.enterprise,
                sink.getvalue().to_pybytes(),
                batch.types,
                batch.refs,
                source,
            )
        )
        return WriteResult(stored, rejected)

    def add_dead_letters(self, letters: list[DeadLetter], enterprise: str | None = None) -> None:
        """Store dead letters in the serve process."""
        self._call(("letters", enterprise, letters))

    def declare_tags(self, enterprise: str, specs: list) -> int:
        """Declare tags (metadata) in the serve process."""
        return self._call(("declare", enterprise, specs))


class GroupWriter:
    """One writer thread for all workers: batches that wait together are committed together.

    Each worker waits for its commit before it acknowledges, so while one batch is written the
    others' next batches queue up; writing them as one transaction halves the commits (DuckDB
    pays per commit) without delaying anyone's acknowledgement.
    """

    def __init__(self, historian: Any) -> None:
        self.historian = historian
        self._jobs: list[dict] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="decode-writer", daemon=True)
        self._thread.start()

    def write(self, batch: PointBatch, source: str) -> WriteResult:
        """Commit ``batch`` (with whatever else waits); raise what the write raised."""
        job: dict = {"batch": batch, "source": source, "done": threading.Event()}
        with self._cond:
            if self._closed:
                raise TemporaryError("the decode workers' writer is stopping")
            self._jobs.append(job)
            self._cond.notify()
        job["done"].wait()
        if "error" in job:
            raise job["error"]
        return job["result"]

    def close(self) -> None:
        """Finish what is queued and end the writer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                jobs, self._jobs = self._jobs, []
                if not jobs and self._closed:
                    return
            groups: dict[tuple[str, str], list[dict]] = {}
            for job in jobs:
                groups.setdefault((job["batch"].enterprise, job["source"]), []).append(job)
            for (enterprise, source), group in groups.items():
                try:
                    result = self.historian.write(_joined(enterprise, group), source=source)
                except BaseException as exc:  # every job of the group gets the failure
                    for job in group:
                        job["error"] = exc
                else:  # the whole result to the first; the writer's counters hold the truth
                    group[0]["result"] = result
                    for job in group[1:]:
                        job["result"] = WriteResult()
                for job in group:
                    job["done"].set()


def _joined(enterprise: str, jobs: list[dict]) -> PointBatch:
    """Return the batches of ``jobs`` as one (the first data type seen for a tag wins)."""
    if len(jobs) == 1:
        return jobs[0]["batch"]
    batches = [job["batch"] for job in jobs]
    types: dict = {}
    refs: list[str] | None = []
    for b in batches:
        for tag, kind in b.types.items():
            types.setdefault(tag, kind)
        if refs is not None and b.refs is not None:
            refs.extend(b.refs)
        else:
            refs = None
    table = pa.concat_tables([b.table for b in batches])
    index: tuple[np.ndarray, list[str]] | None = None
    if all(b.tag_index is not None for b in batches):  # one numbering for the joined rows
        code: dict[str, int] = {}
        parts = []
        for b in batches:
            idx, paths = b.tag_index  # type: ignore[misc]
            renumber = np.fromiter(
                (code.setdefault(p, len(code)) for p in paths), np.int32, len(paths)
            )
            parts.append(renumber[idx])
        index = (np.concatenate(parts), list(code))
    return PointBatch(enterprise, table, types, refs, index)


def _received(enterprise: str, ipc: bytes, types: dict, refs: list[str] | None) -> PointBatch:
    """Return the batch a worker sent: a dictionary-encoded tag column becomes the numbering."""
    table = pa.ipc.open_stream(ipc).read_all().combine_chunks()
    tags = table.column("tag")
    index = None
    if pa.types.is_dictionary(tags.type):
        encoded = tags.chunk(0) if tags.num_chunks else pa.array([], tags.type)
        index = (
            encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False),
            encoded.dictionary.to_pylist(),
        )
        plain = encoded.dictionary.take(encoded.indices)
        table = table.set_column(0, POINT_SCHEMA.field("tag"), plain)
    return PointBatch(enterprise, table, types, refs, index)


def serve_requests(conn: Connection, writer: Any, stats: DecodeWorkersStats, slot: dict) -> None:
    """Answer one worker's requests with ``writer`` (a `GroupWriter`) until its pipe closes."""
    historian = writer.historian
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        op = request[0]
        if op == "status":
            slot["status"] = request[1]
            continue
        try:
            if op == "write":
                _, enterprise, ipc, types, refs, source = request
                batch = _received(enterprise, ipc, types, refs)
                result = writer.write(batch, source)
                stats.stored_points += result.stored
                stats.dead_letters += len(result.rejected)
                stats.batches += 1
                answer: tuple = ("ok", (result.stored, result.rejected))
            elif op == "letters":
                historian.add_dead_letters(request[2], request[1])
                stats.dead_letters += len(request[2])
                answer = ("ok", None)
            elif op == "declare":
                answer = ("ok", historian.declare_tags(request[1], request[2]))
            else:
                answer = ("error", f"unknown request {op!r}")
        except DataError as exc:
            answer = ("data", str(exc))
        except Exception as exc:  # a failed write: the worker keeps its batch and retries
            stats.write_failures += 1
            stats.last_error = str(exc)
            if not isinstance(exc, TemporaryError):
                log.exception("a decode worker's write failed")
            answer = ("temporary", str(exc))
        try:
            conn.send(answer)
        except OSError:
            return  # the worker died: its unacknowledged messages come back to its session


def _worker_main(conn: Connection, url: str, options: dict, parent: int) -> None:
    """A decode worker's process: an `MqttIngest` on the JSON tree writing through the pipe.

    SIGTERM stops it cleanly (a `multiprocessing.Event` would not do: setting one waits for
    every process that waits on it, and a worker killed while waiting never wakes).
    """
    import signal

    from indunet.connect.mqtt import MqttIngest

    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the serve process stops its workers itself
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    link = WriterLink(conn)
    ingest = MqttIngest(link, url, sparkplug_host=False, command_results=False, **options)
    ingest.start(wait=True)
    orphan = False
    while not stop.wait(_STATUS_S):
        if os.getppid() != parent:  # the serve process died: leave the rest to the broker
            orphan = True
            break
        s = ingest.stats
        with contextlib.suppress(OSError):
            link.report(
                {
                    "received": s.received,
                    "acked": s.acked,
                    "connected": s.connected,
                    "subscribed": s.subscribed,
                    "last_error": s.last_error,
                }
            )
    if orphan:
        ingest.abort()
    else:
        ingest.stop()  # write and acknowledge what is pending, then DISCONNECT
    s = ingest.stats
    with contextlib.suppress(OSError):
        link.report(
            {"received": s.received, "acked": s.acked, "connected": False, "subscribed": False}
        )
    conn.close()


class DecodeWorkers:
    """Run ``count`` decode worker processes on a shared subscription writing into ``historian``."""

    def __init__(
        self,
        historian: Any,
        url: str,
        *,
        count: int,
        client_id: str = "indunet-ingest",
        shared_group: str | None = None,
        **options: Any,
    ) -> None:
        if count < 1:
            raise ValueError("decode workers need a count of at least 1")
        self.historian = historian
        self.url = url
        self.count = count
        self.client_id = client_id
        self.group = shared_group or f"{client_id}-decode"
        self.options = options
        self.stats = DecodeWorkersStats()
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self._slots: list[dict] = []
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._writer: GroupWriter | None = None
        self.topic = f"$share/{self.group}/indunet/v1/#"

    def client_ids(self) -> list[str]:
        """Return the workers' client ids (one persistent session each)."""
        return [f"{self.client_id}-w{i}" for i in range(self.count)]

    def start(self) -> None:
        """Start the workers and the watcher that restarts a dead one."""
        self._writer = GroupWriter(self.historian)
        for i, cid in enumerate(self.client_ids()):
            slot: dict = {"client_id": cid, "index": i, "status": {}}
            self._slots.append(slot)
            self._launch(slot)
        self._watcher = threading.Thread(target=self._watch, name="decode-workers", daemon=True)
        self._watcher.start()

    def _launch(self, slot: dict) -> None:
        here, there = self._ctx.Pipe()
        options = dict(self.options, client_id=slot["client_id"], shared_group=self.group)
        proc = self._ctx.Process(
            target=_worker_main,
            args=(there, self.url, options, os.getpid()),
            name=f"indunet-decode-{slot['index']}",
            daemon=True,
        )
        proc.start()
        there.close()  # the worker holds the other end: its death closes the pipe
        server = threading.Thread(
            target=serve_requests,
            args=(here, self._writer, self.stats, slot),
            name=f"decode-writer-{slot['index']}",
            daemon=True,
        )
        server.start()
        slot.update(proc=proc, conn=here, server=server, status={})

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            for slot in self._slots:
                proc = slot["proc"]
                if proc.is_alive() or self._stopping.is_set():
                    continue
                log.warning(
                    "decode worker %s ended (exit code %s); starting it again",
                    slot["client_id"],
                    proc.exitcode,
                )
                slot["server"].join(timeout=30)
                self.stats.restarts += 1
                self.stats.last_error = f"decode worker {slot['client_id']} ended"
                if self._stopping.wait(_RESTART_S):
                    return
                self._launch(slot)
            self._sum()

    def _sum(self) -> None:
        statuses = [slot["status"] for slot in self._slots]
        self.stats.received = sum(s.get("received", 0) for s in statuses)
        self.stats.acked = sum(s.get("acked", 0) for s in statuses)
        self.stats.connected = all(s.get("connected") for s in statuses)
        self.stats.subscribed = all(s.get("subscribed") for s in statuses)

    def pids(self) -> list[int]:
        """Return the process ids of the running workers."""
        return [slot["proc"].pid for slot in self._slots if slot["proc"].is_alive()]

    def wait_subscribed(self, timeout: float = 30.0) -> bool:
        """Wait until every worker has its subscription; return whether they all have."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._sum()
            if self.stats.subscribed:
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 30.0) -> None:
        """Let every worker write and acknowledge what it holds, then disconnect."""
        self._stopping.set()
        if self._watcher:
            self._watcher.join(timeout=5)
        for slot in self._slots:
            if slot["proc"].is_alive():
                slot["proc"].terminate()  # SIGTERM: write, acknowledge, disconnect
        for slot in self._slots:
            slot["proc"].join(timeout)
            if slot["proc"].is_alive():
                log.warning("decode worker %s did not stop; killing it", slot["client_id"])
                slot["proc"].kill()
                slot["proc"].join(5)
            slot["server"].join(timeout=5)
            slot["conn"].close()
        if self._writer is not None:
            self._writer.close()
        self._sum()
