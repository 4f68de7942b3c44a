"""Shared fixtures: per-test settings, and the historian contract run on both backends."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from indunet.config import Settings, load_settings
from indunet.store import Historian, open_historian

PG_URL = os.environ.get("INDUNET_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as con:
            con.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip()
    return None


def require_pg() -> None:
    """Fail (under CI) or skip (locally) when PostgreSQL is missing."""
    problem = _pg_available()
    if problem:
        message = f"PostgreSQL at {PG_URL} is not available: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def settings_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Build settings on a temporary data dir, ignoring the developer's environment."""
    for key in list(os.environ):
        if key.startswith("INDUNET_") and key != "INDUNET_TEST_PG_URL":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)

    def make(**overrides: object) -> Settings:
        overrides.setdefault("data_dir", tmp_path / "data")
        return load_settings(**overrides)

    return make


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """Give a fresh PostgreSQL schema name and drop the schema afterwards."""
    require_pg()
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(PG_URL, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture(params=["duckdb", "postgresql"])
def historian(request: pytest.FixtureRequest, settings_factory) -> Iterator[Historian]:
    """A historian on each backend: a temporary DuckDB file, or a fresh PostgreSQL schema."""
    if request.param == "duckdb":
        h = open_historian(settings_factory())
    else:
        schema = request.getfixturevalue("pg_schema")
        h = open_historian(settings_factory(db=PG_URL, pg_schema=schema))
    yield h
    h.close()
