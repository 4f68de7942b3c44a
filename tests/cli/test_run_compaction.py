"""`serve` starts the background compactor on the embedded DuckDB (and only there)."""

from __future__ import annotations

import threading
import time

from indunet.cli.run import _start_compactor
from indunet.store import open_historian
from indunet.store.base import HOUR_MS
from tests.store.test_base import batch


def test_serve_compacts_the_closed_hours_it_finds(settings_factory):
    settings = settings_factory()
    h = open_historian(settings)
    hour = (int(time.time() * 1000) - 3 * HOUR_MS) // HOUR_MS * HOUR_MS  # closed, in lookback
    h.write(batch([(f"s/a/l/m/t{i % 3}", hour + i * 1000, float(i)) for i in range(30)]))
    assert h.hours_to_compact(0) == [hour]
    compactor = _start_compactor(h, settings)  # seeds from the database, then runs
    try:
        assert compactor is not None and compactor.on_change in h.change_listeners
        done = threading.Event()
        compactor.compacted_listeners.append(lambda _hour: done.set())
        if compactor.status()["compacted_hours"] == 0:
            compactor.wake()
            assert done.wait(30)
        assert h.hours_to_compact(0) == []
        assert h.rollups("acme", "s/a/l/m/t0", hour, hour + HOUR_MS).column(
            "count"
        ).to_pylist() == [10]
    finally:
        compactor.stop()
        h.close()


def test_serve_without_compaction_when_switched_off(settings_factory):
    settings = settings_factory()
    settings.compaction.enabled = False
    h = open_historian(settings)
    try:
        assert _start_compactor(h, settings) is None
        assert h.change_listeners == []
    finally:
        h.close()
