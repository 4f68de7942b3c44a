"""The `indunet` command line: imports, queries, errors and exit codes, help everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from indunet.cli import app
from tests.conftest import PG_URL

T0 = 1_700_000_000_000
M = "s1/press/l1/m1"


@pytest.fixture
def run(settings_factory, tmp_path):
    """Run the CLI in-process on a temporary data dir, with no INDUNET_* variables set."""
    runner = CliRunner()
    data = tmp_path / "data"

    def invoke(*args: str, data_dir: Path | None = data, expect: int | None = 0):
        argv = [str(a) for a in args]
        if data_dir is not None:
            argv += ["--data-dir", str(data_dir)]
        result = runner.invoke(app, argv, catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, (argv, result.output)
        return result

    return invoke


def one_line_error(result) -> str:
    err = result.stderr.strip()
    assert err.startswith("error: "), err
    assert "\n" not in err, err
    assert "Traceback" not in result.output
    return err


def wide_csv(tmp_path: Path) -> Path:
    path = tmp_path / "m1.csv"
    path.write_text(
        "time,power_kw,mode\n"
        f"{T0},1.5,running\n"
        f"{T0 + 1000},nan,idle\n"  # bad cell
        f"{T0 + 2000},2.5\n"  # wrong field count
        f"yesterday,3.5,idle\n"  # bad time
        f"{T0 + 4000},4.5,stopped\n",
        encoding="utf-8",
    )
    return path


# ---------------------------------------------------------------------------- import
def test_import_wide_csv_with_rejected_rows_exits_0(run, tmp_path):
    path = wide_csv(tmp_path)
    result = run("import", "csv", path, "--machine", M)
    lines = result.stdout.splitlines()
    # good cells: line 2 (2), line 3 (mode only), line 6 (2) = 5; bad: nan cell, short row, time
    assert lines[0] == f"{path}: stored 5 points, rejected 3"
    rejected = [line.strip() for line in lines[1:]]
    assert rejected[0].startswith("rejected: m1.csv line 3 column 'power_kw':")
    assert rejected[1] == "rejected: m1.csv line 4: has 2 fields, the header has 3"
    assert rejected[2].startswith("rejected: m1.csv line 5: column 'time':")
    out = json.loads(
        run(
            "query", "series", f"{M}/power_kw", "--start", T0, "--end", T0 + 10_000, "--json"
        ).stdout
    )
    assert [(r["ts"], r["value"]) for r in out["rows"]] == [(T0, 1.5), (T0 + 4000, 4.5)]


def test_import_json_output_and_idempotent_reimport(run, tmp_path):
    path = wide_csv(tmp_path)
    first = json.loads(run("import", "csv", path, "--machine", M, "--json").stdout)
    assert first["file"] == str(path)
    assert (first["stored"], first["rejected"]) == (5, 3)
    assert len(first["errors"]) == 3
    again = json.loads(run("import", "csv", path, "--machine", M, "--json").stdout)
    assert (again["stored"], again["rejected"]) == (5, 3)
    out = json.loads(
        run("query", "series", f"{M}/mode", "--start", T0, "--end", T0 + 10_000, "--json").stdout
    )
    assert [r["text"] for r in out["rows"]] == ["running", "idle", "stopped"]


def test_import_that_stores_nothing_exits_2_and_dead_letters_every_row(run, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "time,power_kw\n"
        "yesterday,1.5\n"  # bad time
        f"{T0},nan\n"  # bad value
        f"{T0},1,2\n"  # wrong field count
        f'{T0},"unclosed\n',  # broken quoting to the end of the file
        encoding="utf-8",
    )
    result = run("import", "csv", path, "--machine", M, expect=2)
    err = one_line_error(result)
    assert err == (
        f"error: {path}: nothing could be stored, 4 refused "
        "(reasons: `indunet deadletters --source import:bad.csv`)"
    )
    assert result.stdout.splitlines()[0] == f"{path}: stored 0 points, rejected 4"
    rows = json.loads(run("deadletters", "--source", "import:bad.csv", "--json").stdout)["rows"]
    assert sorted(r["ref"] for r in rows) == [
        "bad.csv line 2",
        "bad.csv line 3 column 'power_kw'",
        "bad.csv line 4",
        "bad.csv line 5",
    ]
    assert all(
        r["reason"].startswith(r["ref"] + ": ") and len(r["reason"]) > len(r["ref"]) + 5
        for r in rows
    )
    # the JSON summary is still printed for scripts, with the same exit code
    again = run("import", "csv", path, "--machine", M, "--json", expect=2)
    assert json.loads(again.stdout)["stored"] == 0 and json.loads(again.stdout)["rejected"] == 4


def test_import_of_a_header_only_file_exits_2(run, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("time,power_kw\n\n", encoding="utf-8")
    err = one_line_error(run("import", "csv", path, "--machine", M, expect=2))
    assert err == f"error: {path}: no data rows, nothing stored"


def test_import_parquet_with_only_refused_values_exits_2(run, tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"time": ["not a time", "nor this"], "power_kw": [1.0, 2.0]}), path)
    err = one_line_error(run("import", "parquet", path, "--machine", M, expect=2))
    assert "nothing could be stored, 2 refused" in err
    rows = json.loads(run("deadletters", "--json").stdout)["rows"]
    assert sorted(r["ref"] for r in rows) == [
        "bad.parquet line 2",
        "bad.parquet line 3",
    ]  # as in a CSV export of it


def test_import_long_csv(run, tmp_path):
    path = tmp_path / "long.csv"
    path.write_text(
        f"tag,ts,value\ns1/a/l/m/x,{T0},1\ns1/a/l/m/y,2023-11-14T22:13:20Z,2\ns1/a/l,{T0},3\n",
        encoding="utf-8",
    )
    result = run("import", "csv", path, "--long")
    assert result.stdout.splitlines()[0] == f"{path}: stored 2 points, rejected 1"
    assert "long.csv line 4: column 'tag'" in result.stdout
    latest = json.loads(run("query", "latest", "s1/a", "--json").stdout)
    assert [(r["tag"], r["value"]) for r in latest["rows"]] == [
        ("s1/a/l/m/x", 1.0),
        ("s1/a/l/m/y", 2.0),
    ]


def test_import_parquet_with_time_options(run, tmp_path):
    table = pa.table({"power": [1.0, 2.0], "when": ["01/01/2018 23:45", "01/01/2018 00:00"]})
    pq.write_table(table, tmp_path / "p.parquet")
    result = run(
        "import",
        "parquet",
        tmp_path / "p.parquet",
        "--machine",
        M,
        "--time-column",
        "when",
        "--time-format",
        "%d/%m/%Y %H:%M",
        "--timezone",
        "Asia/Seoul",
        "--midnight-ends-day",
        "--json",
    )
    assert json.loads(result.stdout)["stored"] == 2
    out = json.loads(
        run(
            "query",
            "series",
            f"{M}/power",
            "--start",
            "2018-01-01T00:00:00Z",
            "--end",
            "2018-01-02T00:00:00Z",
            "--json",
        ).stdout
    )
    # 23:45 KST is 14:45Z; "00:00" of 1 Jan ends that day: 2 Jan 00:00 KST is 1 Jan 15:00Z
    assert [r["ts"] for r in out["rows"]] == [1_514_817_900_000, 1_514_818_800_000]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["missing.csv", "--machine", M], "missing.csv: file does not exist"),
        (["empty.csv", "--machine", M], "empty.csv: file is empty"),
        (["good.csv", "--machine", "s1/press"], "must have 4 parts"),
        (["good.csv", "--machine", "s1/press/l1/m#1"], "forbidden"),
        (["good.csv", "--machine", M, "--timezone", "Mars/Olympus"], "unknown time zone"),
        (["good.csv"], "--machine"),
        (["good.csv", "--machine", M, "--long"], "not both"),
        (["good.csv", "--machine", M, "--time-column", "stamp"], "good.csv: no column 'stamp'"),
        (["good.csv", "--machine", M, "--db", "mysql://x"], "setting db"),
        (["dup.csv", "--machine", M], "dup.csv: column 'a' appears twice"),
    ],
)
def test_import_bad_input_exits_2_with_one_line(run, tmp_path, args, words):
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "good.csv").write_text(f"time,a\n{T0},1\n", encoding="utf-8")
    (tmp_path / "dup.csv").write_text(f"time,a,a\n{T0},1,2\n", encoding="utf-8")
    args = [str(tmp_path / args[0]), *args[1:]]
    result = run("import", "csv", *args, expect=2)
    assert words in one_line_error(result)
    assert result.stdout == ""


def test_bad_import_does_not_create_a_data_dir(run, tmp_path):
    run("import", "csv", tmp_path / "missing.csv", "--machine", M, expect=2)
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------------------- queries
@pytest.fixture
def filled(run, tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(
        "time,power_kw,mode\n"
        + "".join(f"{T0 + i * 1000},{i},{'run' if i % 2 else 'idle'}\n" for i in range(20)),
        encoding="utf-8",
    )
    run("import", "csv", path, "--machine", M)
    return run


def test_query_series_json(filled):
    out = json.loads(
        filled(
            "query", "series", f"{M}/power_kw", "--start", T0, "--end", T0 + 5000, "--json"
        ).stdout
    )
    assert (out["tag"], out["start_ms"], out["end_ms"]) == (f"{M}/power_kw", T0, T0 + 5000)
    assert [r["value"] for r in out["rows"]] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_query_series_buckets_and_downsample(filled):
    out = json.loads(
        filled(
            "query",
            "series",
            f"{M}/power_kw",
            "--start",
            T0,
            "--end",
            T0 + 20_000,
            "--buckets",
            2,
            "--agg",
            "count",
            "--agg",
            "avg",
            "--json",
        ).stdout
    )
    assert out["rows"] == [
        {"start_ms": T0, "count": 10, "avg": 4.5},
        {"start_ms": T0 + 10_000, "count": 10, "avg": 14.5},
    ]
    out = json.loads(
        filled(
            "query",
            "series",
            f"{M}/power_kw",
            "--start",
            T0,
            "--end",
            T0 + 20_000,
            "--downsample",
            "lttb",
            "--points",
            5,
            "--json",
        ).stdout
    )
    assert len(out["rows"]) == 5
    assert out["rows"][0]["value"] == 0.0 and out["rows"][-1]["value"] == 19.0


def test_query_series_table_output(filled):
    """ISO 8601 times by default (no site calendar: UTC), --epoch for ms, never "None"."""
    from datetime import UTC, datetime

    result = filled("query", "series", f"{M}/power_kw", "--start", T0, "--end", T0 + 2000)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ts", "value", "quality"]  # text is empty for a number tag
    assert len(lines) == 3 and "None" not in result.stdout
    iso = datetime.fromtimestamp(T0 / 1000, UTC).isoformat(timespec="milliseconds")
    assert lines[1].split()[0] == iso
    raw = filled("query", "series", f"{M}/power_kw", "--start", T0, "--end", T0 + 2000, "--epoch")
    assert raw.stdout.splitlines()[1].split()[0] == str(T0)
    text = filled("query", "series", f"{M}/mode", "--start", T0, "--end", T0 + 10_000)
    assert "None" not in text.stdout and text.stdout.splitlines()[0].split()[:2] == ["ts", "text"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--start", "yesterday"], "option --start"),
        (["--end", "1700000000"], "option --end"),
        (["--buckets", 2, "--agg", "median"], "--agg 'median'"),
        (["--downsample", "average"], "m4 or lttb"),
    ],
)
def test_query_series_bad_options_exit_2(filled, args, words):
    result = filled("query", "series", f"{M}/power_kw", *args, expect=2)
    assert words in one_line_error(result)


def test_query_unknown_tag_exits_2(filled):
    result = filled("query", "series", f"{M}/nope", "--start", T0, "--end", T0 + 1, expect=2)
    assert "does not exist" in one_line_error(result)


def test_query_latest_json_and_table(filled):
    out = json.loads(filled("query", "latest", M, "--json").stdout)
    assert out["prefix"] == M
    assert [(r["tag"], r["ts"], r["value"], r["text"]) for r in out["rows"]] == [
        (f"{M}/mode", T0 + 19_000, None, "run"),
        (f"{M}/power_kw", T0 + 19_000, 19.0, None),
    ]
    table = filled("query", "latest").stdout
    assert "2023-11-14T22:13:39.000+00:00" in table
    result = filled("query", "latest", "s1/#", expect=2)
    assert "forbidden" in one_line_error(result)


def test_tags_list_tree_search_and_declare(filled):
    out = json.loads(filled("tags", "--json").stdout)
    assert [r["tag"] for r in out["rows"]] == [f"{M}/mode", f"{M}/power_kw"]
    out = json.loads(filled("tags", "--search", "POWER", "--json").stdout)
    assert [r["tag"] for r in out["rows"]] == [f"{M}/power_kw"]
    tree = json.loads(filled("tags", "--tree", "--json").stdout)
    assert tree == {"s1": {"press": {"l1": {"m1": ["mode", "power_kw"]}}}}
    result = filled(
        "declare",
        "s2/a/l/m/temp",
        "--type",
        "number",
        "--unit",
        "degC",
        "--description",
        "oil temperature",
        "--interval-ms",
        1000,
    )
    assert result.stdout.strip() == "declared s2/a/l/m/temp"
    out = json.loads(filled("tags", "s2", "--json").stdout)
    assert out["rows"][0]["unit"] == "degC"
    assert out["rows"][0]["expected_interval_ms"] == 1000
    result = filled("declare", "s2/a/l/m/temp", "--type", "string", expect=2)
    assert "cannot become string" in one_line_error(result)
    result = filled("declare", "s2/a/l/m/x", "--type", "complex", expect=2)
    assert "--type 'complex'" in one_line_error(result)


def test_deadletters_json_lists_rejected_rows(run, tmp_path):
    run("import", "csv", wide_csv(tmp_path), "--machine", M)
    out = json.loads(run("deadletters", "--json").stdout)
    rows = out["rows"]
    assert sorted(r["ref"] for r in rows) == [
        "m1.csv line 3 column 'power_kw'",
        "m1.csv line 4",
        "m1.csv line 5",
    ]
    assert all(r["source"] == "import:m1.csv" for r in rows)
    assert all(r["reason"].startswith(r["ref"] + ": ") for r in rows)
    only = json.loads(run("deadletters", "--source", "other", "--json").stdout)
    assert only["rows"] == []
    assert len(json.loads(run("deadletters", "--limit", 1, "--json").stdout)["rows"]) == 1


def test_retention_without_rules_exits_2(run):
    result = run("historian", "retention", expect=2)
    assert "no retention rules" in one_line_error(result)


def test_import_and_query_on_postgresql(run, tmp_path, pg_schema, monkeypatch):
    monkeypatch.setenv("INDUNET_PG_SCHEMA", pg_schema)
    path = wide_csv(tmp_path)
    out = json.loads(
        run("import", "csv", path, "--machine", M, "--db", PG_URL, "--json", data_dir=None).stdout
    )
    assert (out["stored"], out["rejected"]) == (5, 3)
    out = json.loads(
        run(
            "query",
            "series",
            f"{M}/power_kw",
            "--start",
            T0,
            "--end",
            T0 + 10_000,
            "--db",
            PG_URL,
            "--json",
            data_dir=None,
        ).stdout
    )
    assert [r["value"] for r in out["rows"]] == [1.5, 4.5]
    letters = json.loads(run("deadletters", "--db", PG_URL, "--json", data_dir=None).stdout)
    assert len(letters["rows"]) == 3


def test_command_options_beat_environment_and_file(run, tmp_path, monkeypatch):
    (tmp_path / "indunet.toml").write_text(
        f'data_dir = "{tmp_path / "from-file"}"\n', encoding="utf-8"
    )
    monkeypatch.setenv("INDUNET_DATA_DIR", str(tmp_path / "from-env"))
    path = wide_csv(tmp_path)
    run("import", "csv", path, "--machine", M, data_dir=None)
    assert (tmp_path / "from-env" / "indunet.duckdb").is_file()
    assert not (tmp_path / "from-file").exists()
    run("import", "csv", path, "--machine", M, data_dir=tmp_path / "from-option")
    assert (tmp_path / "from-option" / "indunet.duckdb").is_file()


def test_bad_settings_exit_2(run, tmp_path, monkeypatch):
    monkeypatch.setenv("INDUNET_CONFIG", str(tmp_path / "missing.toml"))
    result = run("query", "latest", expect=2)
    assert "missing.toml" in one_line_error(result)
    (tmp_path / "broken.toml").write_text("port = \n", encoding="utf-8")
    monkeypatch.setenv("INDUNET_CONFIG", str(tmp_path / "broken.toml"))
    result = run("query", "latest", expect=2)
    assert "broken.toml is not valid TOML" in one_line_error(result)
    monkeypatch.delenv("INDUNET_CONFIG")
    monkeypatch.setenv("INDUNET_MAX_FUTURE_S", "-1")
    result = run("query", "latest", expect=2)
    assert "setting max_future_s" in one_line_error(result)


# ---------------------------------------------------------------------------- storage trouble
def test_locked_historian_exits_1(run, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            "con = duckdb.connect(sys.argv[1])\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n",
            str(data / "indunet.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        result = run("query", "latest", expect=1)
        err = one_line_error(result)
        assert "locked" in err
        result = run("import", "csv", wide_csv(tmp_path), "--machine", M, expect=1)
        assert "locked" in one_line_error(result)
    finally:
        holder.kill()
        holder.wait()
    run("query", "latest")  # usable again once the other process is gone


def test_unusable_data_dir_exits_2(run, tmp_path):
    if os.geteuid() == 0:
        # root ignores permission bits: a path below a regular file is unusable for anyone
        (tmp_path / "afile").write_text("not a directory")
        data = tmp_path / "afile" / "sub"
    else:
        locked = tmp_path / "ro"
        locked.mkdir()
        locked.chmod(0o500)
        data = locked / "sub"
    try:
        result = run("import", "csv", wide_csv(tmp_path), "--machine", M, data_dir=data, expect=2)
        err = one_line_error(result)
        assert "data dir" in err and "cannot be used" in err
        result = run("query", "latest", data_dir=data, expect=2)
        assert "data dir" in one_line_error(result)
    finally:
        if os.geteuid() != 0:
            (tmp_path / "ro").chmod(0o700)


# ---------------------------------------------------------------------------- help
def _command_paths(command, prefix: tuple[str, ...] = ()) -> list[tuple]:
    paths = [prefix]
    for name, sub in getattr(command, "commands", {}).items():  # groups have sub-commands
        paths += _command_paths(sub, (*prefix, name))
    return paths


def test_help_for_every_command(settings_factory):
    paths = _command_paths(typer.main.get_command(app))
    names = {" ".join(p) for p in paths}
    assert {
        "",
        "serve",
        "demo",
        "import csv",
        "import parquet",
        "query series",
        "query latest",
        "tags",
        "declare",
        "deadletters",
        "historian retention",
        "historian compact",
    } <= names
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], catch_exceptions=False)
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
        if path:
            assert path[-1] in result.output


def test_plant_import_and_show_business_data(run, tmp_path):
    stock = tmp_path / "stock.csv"
    stock.write_text(
        "item,warehouse,quantity,as_of,daily_use\n"
        "steel,W1,20,2026-11-20T08:00:00Z,10\n"
        "bolts,W1,-1,2026-11-20T08:00:00Z,\n"
    )
    result = run("plant", "import", "inventory", stock)
    assert "stored 1 inventory rows, refused 1" in result.stdout
    assert "stock.csv row 3" in result.stderr and "quantity" in result.stderr
    rows = json.loads(run("plant", "inventory", "--json").stdout)["rows"]
    assert [(r["item"], r["days_of_cover"], r["below_cover"]) for r in rows] == [
        ("steel", 2.0, True)
    ]
    table = run("plant", "inventory").stdout
    assert "2026-11-20T08:00:00.000+00:00" in table
    po = tmp_path / "po.json"
    po.write_text(json.dumps([{"order_id": "P", "item": "steel", "quantity": 1, "expected_at": 0}]))
    run("plant", "import", "purchase_orders", po)
    late = json.loads(run("plant", "orders", "--late", "--json").stdout)["rows"]
    assert [r["order_id"] for r in late] == ["P"]
    assert json.loads(run("plant", "shipments", "--json").stdout)["rows"] == []


def test_plant_import_refuses_bad_files_and_kinds(run, tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("item,qty\na,1\n")
    result = run("plant", "import", "inventory", bad, expect=2)
    assert "missing column(s) warehouse, quantity, as_of" in one_line_error(result)
    result = run("plant", "import", "stock", bad, expect=2)
    assert "unknown kind 'stock'" in one_line_error(result)
    all_bad = tmp_path / "y.csv"
    all_bad.write_text("item,warehouse,quantity,as_of\na,w,-5,2026-01-01\n")
    run("plant", "import", "inventory", all_bad, expect=2)
    result = run("plant", "orders", "--kind", "returns", expect=2)
    assert "--kind 'returns'" in one_line_error(result)


def test_readable_rows_use_the_data_time_zone():
    from indunet.cli.common import readable_rows

    rows = [{"ts": T0, "value": 1.5, "text": None}, {"ts": T0 + 1000, "value": None, "text": None}]
    out = readable_rows(rows, "Asia/Shanghai")
    assert out == [
        {"ts": "2023-11-15T06:13:20.000+08:00", "value": 1.5},
        {"ts": "2023-11-15T06:13:21.000+08:00", "value": ""},
    ]
    assert readable_rows(rows, "UTC", epoch=True)[0]["ts"] == T0
