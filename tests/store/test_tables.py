from __future__ import annotations

import pyarrow as pa
import pytest

from indunet.store.tables import SqlPort


def test_script_upsert_query_and_rollback(historian):
    sql = SqlPort(historian)
    sql.script(
        "CREATE TABLE IF NOT EXISTS t_demo (k TEXT NOT NULL, n BIGINT, v DOUBLE PRECISION, "
        "PRIMARY KEY (k, n));"
        "CREATE TABLE IF NOT EXISTS t_demo (k TEXT NOT NULL, n BIGINT, v DOUBLE PRECISION, "
        "PRIMARY KEY (k, n))"
    )
    rows = pa.table({"k": ["a", "a", "b", "a"], "n": [1, 2, 1, 1], "v": [1.0, 2.0, 3.0, 9.0]})
    assert sql.upsert("t_demo", rows, ("k", "n")) == 3  # (a, 1) twice: the last wins
    sql.upsert("t_demo", pa.table({"k": ["b"], "n": [1], "v": [4.0]}), ("k", "n"))
    got = sql.rows("SELECT k, n, v FROM t_demo ORDER BY k, n")
    assert got == [
        {"k": "a", "n": 1, "v": 9.0},
        {"k": "a", "n": 2, "v": 2.0},
        {"k": "b", "n": 1, "v": 4.0},
    ]
    with pytest.raises(RuntimeError), sql.transaction():
        sql.execute("DELETE FROM t_demo WHERE k = $1", ["a"])
        raise RuntimeError("boom")
    assert sql.query("SELECT count(*) AS n FROM t_demo").column("n")[0].as_py() == 3
    sql.executemany("INSERT INTO t_demo VALUES ($1, $2, $3)", [["c", 1, 1.0], ["c", 2, 2.0]])
    assert sql.query("SELECT count(*) AS n FROM t_demo").column("n")[0].as_py() == 5
