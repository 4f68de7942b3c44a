"""Settings: indunet.toml, INDUNET_* variables and overrides, and the errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from indunet.config import RetentionRule, Settings, load_settings
from indunet.errors import ConfigError


@pytest.fixture
def clean(settings_factory, tmp_path: Path) -> Path:
    """Run in an empty temporary directory with no INDUNET_* variables set."""
    return tmp_path


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_env(clean):
    s = load_settings()
    assert s.data_dir == Path("indunet-data")
    assert s.db is None
    assert s.port == 8000
    assert s.enterprise == "demo"
    assert s.retention == []
    assert s.duckdb_path == Path("indunet-data") / "indunet.duckdb"


def test_reads_indunet_toml_in_current_dir(clean):
    write_toml(
        clean / "indunet.toml",
        'data_dir = "/srv/indunet"\nport = 9001\nenterprise = "acme"\n'
        "ingest_max_bytes = 1024\n"
        '[[retention]]\nprefix = "s1/press"\nraw_days = 30\nrollup_days = 365\n'
        "[[retention]]\nraw_days = 90\n",
    )
    s = load_settings()
    assert s.data_dir == Path("/srv/indunet")
    assert s.port == 9001
    assert s.enterprise == "acme"
    assert s.ingest_max_bytes == 1024
    assert s.retention == [
        RetentionRule(prefix="s1/press", raw_days=30, rollup_days=365),
        RetentionRule(prefix="", raw_days=90),
    ]


def test_indunet_config_names_another_file(clean, monkeypatch):
    write_toml(clean / "indunet.toml", "port = 9001\n")
    other = write_toml(clean / "elsewhere.toml", "port = 9002\n")
    monkeypatch.setenv("INDUNET_CONFIG", str(other))
    assert load_settings().port == 9002


def test_env_beats_file_and_overrides_beat_env(clean, monkeypatch):
    write_toml(clean / "indunet.toml", 'port = 9001\nenterprise = "from-file"\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("INDUNET_PORT", "9002")
    monkeypatch.setenv("INDUNET_ENTERPRISE", "from-env")
    s = load_settings()
    assert (s.port, s.enterprise, s.host) == (9002, "from-env", "0.0.0.0")
    s = load_settings(port=9003, enterprise=None)  # None means "not given on the command line"
    assert (s.port, s.enterprise, s.host) == (9003, "from-env", "0.0.0.0")


def test_env_only(clean, monkeypatch):
    monkeypatch.setenv("INDUNET_DATA_DIR", str(clean / "d"))
    monkeypatch.setenv("INDUNET_DB", "postgresql://u@h/db")
    monkeypatch.setenv("INDUNET_RETENTION", '[{"prefix": "a", "raw_days": 3}]')
    s = load_settings()
    assert s.data_dir == clean / "d"
    assert s.db == "postgresql://u@h/db"
    assert s.retention == [RetentionRule(prefix="a", raw_days=3)]


def test_unrelated_indunet_variables_are_ignored(clean, monkeypatch):
    monkeypatch.setenv("INDUNET_TEST_PG_URL", "postgresql://x@y/z")
    monkeypatch.setenv("INDUNET_SOMETHING_ELSE", "1")
    assert load_settings().port == 8000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("duckdb", None),
        ("duckdb:///tmp/x.duckdb", "duckdb:///tmp/x.duckdb"),
        ("postgres://h/db", "postgres://h/db"),
    ],
)
def test_db_urls(clean, value, expected):
    s = load_settings(db=value)
    assert s.db == expected


def test_duckdb_url_sets_the_file(clean):
    s = load_settings(db="duckdb:///tmp/somewhere/h.duckdb", data_dir=clean / "ignored")
    assert s.duckdb_path == Path("/tmp/somewhere/h.duckdb")


@pytest.mark.parametrize(
    ("source", "key", "raw", "field"),
    [
        ("env", "INDUNET_PORT", "not-a-number", "port"),
        ("env", "INDUNET_PORT", "70000", "port"),
        ("env", "INDUNET_PG_SCHEMA", "Bad-Schema", "pg_schema"),
        ("env", "INDUNET_DB", "mysql://x", "db"),
        ("env", "INDUNET_INGEST_MAX_BYTES", "0", "ingest_max_bytes"),
        ("file", "port", "-1", "port"),
        ("file", "pg_partition_days", "400", "pg_partition_days"),
        ("file", "max_future_s", '"soon"', "max_future_s"),
        ("file", "colour", '"blue"', "colour"),
        ("file", "retention", "[{raw_days = 0}]", "retention.0.raw_days"),
        ("arg", "port", 0, "port"),
        ("arg", "db", "sqlite:///x", "db"),
    ],
)
def test_bad_values_name_the_field(clean, monkeypatch, source, key, raw, field):
    kwargs = {}
    if source == "env":
        monkeypatch.setenv(key, raw)
    elif source == "file":
        write_toml(clean / "indunet.toml", f"{key} = {raw}\n")
    else:
        kwargs[key] = raw
    with pytest.raises(ConfigError) as info:
        load_settings(**kwargs)
    message = str(info.value)
    assert message.startswith(f"setting {field}:"), message
    assert "\n" not in message
    assert info.value.detail  # the technical cause is kept


def test_missing_config_file(clean, monkeypatch):
    missing = clean / "nope" / "indunet.toml"
    monkeypatch.setenv("INDUNET_CONFIG", str(missing))
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_settings()
    assert str(missing) in str(info.value)


def test_config_pointing_to_a_directory(clean, monkeypatch):
    monkeypatch.setenv("INDUNET_CONFIG", str(clean))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


@pytest.mark.parametrize(
    "text",
    [
        "port = \n",
        "port = 9000\nport = 9001\n",
        "[retention\n",
        'enterprise = "unclosed\n',
        "\x00\x01\x02",
    ],
)
def test_broken_toml(clean, text):
    write_toml(clean / "indunet.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "indunet.toml" in message  # the message names the file to fix
    assert "TOML" in message


def test_settings_are_not_global(clean, monkeypatch):
    a = load_settings(port=9001)
    monkeypatch.setenv("INDUNET_PORT", "9002")
    b = load_settings()
    assert (a.port, b.port) == (9001, 9002)
    assert isinstance(b, Settings)


def test_env_value_that_is_not_json_names_the_field(clean, monkeypatch):
    monkeypatch.setenv("INDUNET_RETENTION", "[{prefix: a}]")
    with pytest.raises(ConfigError, match="retention"):
        load_settings()


def test_ingest_decode_workers_from_the_environment_and_refused_when_negative(
    settings_factory, monkeypatch
):
    assert settings_factory().ingest.decode_workers == 0  # decode in the serve process
    monkeypatch.setenv("INDUNET_INGEST__DECODE_WORKERS", "2")
    assert settings_factory().ingest.decode_workers == 2
    monkeypatch.setenv("INDUNET_INGEST__DECODE_WORKERS", "-1")
    with pytest.raises(ConfigError, match="decode_workers"):
        settings_factory()
