"""DuckDB-specific behaviour: the file lock, unusable data dirs, compaction."""

from __future__ import annotations

import subprocess
import sys

import pytest

from indunet.errors import ConfigError, StorageLocked
from indunet.store import open_historian
from indunet.store.duckdb import DuckDBHistorian
from tests.store.test_base import POWER, T0, batch

E = "acme"


def test_lock_held_by_another_process_is_reported(settings_factory):
    settings = settings_factory()
    open_historian(settings).close()  # create the file
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(settings.duckdb_path)!r}); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(
            StorageLocked, match=rf"locked by another indunet process \(process {holder.pid}\)"
        ):
            open_historian(settings)
    finally:
        holder.kill()
        holder.wait()
    # once the other process is gone, the data is intact and usable
    h = open_historian(settings)
    h.close()


def test_data_dir_that_cannot_exist_is_a_config_error(settings_factory, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot be used"):
        open_historian(settings_factory(data_dir=blocker / "sub"))


def test_read_only_open_needs_an_existing_file(settings_factory):
    with pytest.raises(ConfigError, match="no historian"):
        DuckDBHistorian(settings_factory(), read_only=True)


def test_data_survives_reopen(settings_factory):
    settings = settings_factory()
    h = open_historian(settings)
    h.write(batch([(POWER, T0 + i, float(i)) for i in range(50)]))
    h.close()
    h = open_historian(settings)
    assert h.count(E) == 50
    assert h.latest(E).column("value").to_pylist() == [49.0]
    h.close()


def test_compact_sorts_by_tag_and_keeps_every_point(settings_factory):
    h = open_historian(settings_factory())
    tags = [f"s/a/l/m/t{i}" for i in range(5)]
    for step in range(20):  # time-major arrival, as from live ingest
        h.write(batch([(t, T0 + step * 1000, float(step)) for t in tags]))
    before = h.count(E)
    rows_before = sorted(
        h._query("SELECT tag_id, ts, value FROM points", []).to_pylist(),
        key=lambda r: (r["tag_id"], r["ts"]),
    )
    h.compact()
    after = h._query("SELECT tag_id, ts, value FROM points", []).to_pylist()
    assert h.count(E) == before == 100
    assert after == rows_before  # physically in (tag, ts) order now, nothing lost or changed
    h.close()


def test_write_is_atomic_with_its_dead_letters(settings_factory):
    h = open_historian(settings_factory())
    h.write(batch([(POWER, T0, 1.0)]))
    result = h.write(batch([(POWER, T0 + 1, "text")]))
    assert result.stored == 0
    assert len(h.dead_letters(E)) == 1
    h.close()


def test_lock_is_released_on_close(settings_factory):
    settings = settings_factory()
    open_historian(settings).close()
    code = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import duckdb; duckdb.connect({str(settings.duckdb_path)!r}).close()",
        ],
        timeout=60,
    ).returncode
    assert code == 0
