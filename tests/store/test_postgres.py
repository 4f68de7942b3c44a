"""PostgreSQL-specific behaviour: a server that is down, partitions, concurrent writers."""

from __future__ import annotations

import psycopg
import pytest

from indunet.errors import StorageUnavailable
from indunet.store import open_historian
from indunet.store.base import DAY_MS
from tests.conftest import PG_URL
from tests.store.test_base import POWER, T0, batch

E = "acme"


def test_server_down_is_a_clear_temporary_error(settings_factory):
    settings = settings_factory(db="postgresql://postgres@127.0.0.1:1/test")
    with pytest.raises(StorageUnavailable, match=r"PostgreSQL at 127\.0\.0\.1:1 is not reachable"):
        open_historian(settings)


def test_points_go_to_time_partitions(settings_factory, pg_schema):
    h = open_historian(settings_factory(db=PG_URL, pg_schema=pg_schema, pg_partition_days=1))
    h.write(batch([(POWER, T0 + k * DAY_MS, float(k)) for k in range(3)]))
    with psycopg.connect(PG_URL) as con:
        parts = con.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE p.relname = 'points' AND n.nspname = %s",
            [pg_schema],
        ).fetchall()
    assert len(parts) == 3
    assert h.count(E) == 3
    h.close()


def test_two_writers_share_the_namespace(settings_factory, pg_schema):
    s = settings_factory(db=PG_URL, pg_schema=pg_schema)
    a, b = open_historian(s), open_historian(s)
    a.write(batch([(POWER, T0, 1.0)]))
    b.write(batch([(POWER, T0, 2.0), (POWER, T0 + 1, 3.0)]))
    assert a.tag(E, POWER).id == b.tag(E, POWER).id
    assert a.series(E, POWER, T0, T0 + 2).column("value").to_pylist() == [2.0, 3.0]
    a.close()
    b.close()


def test_server_gone_mid_session_loses_nothing_committed(settings_factory, pg_schema):
    s = settings_factory(db=PG_URL, pg_schema=pg_schema)
    h = open_historian(s)
    h.write(batch([(POWER, T0, 1.0)]))
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        pid = h.con.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(StorageUnavailable, match="retry"):
        h.write(batch([(POWER, T0 + 1, 2.0)]))
    h2 = open_historian(s)
    assert h2.series(E, POWER, T0, T0 + 10).column("value").to_pylist() == [1.0]
    h2.close()
    # the same historian reconnects on its next use; the refused batch can be sent again
    h.write(batch([(POWER, T0 + 1, 2.0)]))
    assert h.series(E, POWER, T0, T0 + 10).column("value").to_pylist() == [1.0, 2.0]
    h.close()


def test_nul_characters_in_dead_letters_are_kept_visible(settings_factory, pg_schema):
    from indunet.model import DeadLetter

    h = open_historian(settings_factory(db=PG_URL, pg_schema=pg_schema))
    h.add_dead_letters([DeadLetter("t", "bad \x00 byte", "line 1", "a\x00b")], E)
    row = h.dead_letters(E)[0]
    assert row["payload"] == "a\\x00b"
    h.close()
