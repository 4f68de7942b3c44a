"""`indunet serve` as a Sparkplug host: configured enterprise, host id and routes, for real.

Two `serve` processes on the shared Mosquitto, scripted edge nodes, the historian read while the
hosts run (PostgreSQL, so another process can read it).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indunet.cli import app
from indunet.cli.run import mqtt_ingest
from indunet.config import load_settings
from indunet.connect.broker import free_port
from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb
from indunet.errors import ConfigError, DataError
from indunet.store import open_historian
from indunet.store.base import exact_integers
from tests.conftest import PG_URL
from tests.connect.sparkplug_conformance.peers import (
    Observer,
    ScriptedEdgeNode,
    compress,
    metric,
    payload,
    wait,
)
from tests.connect.test_mqtt import BROKER, _require_broker


def _serve(workdir: Path, host_id: str | None, *args: str, **env: str) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INDUNET_")}
    clean["PYTHONPATH"] = os.pathsep.join(sys.path)
    argv = [sys.executable, "-m", "indunet.cli", "serve", "--data-dir", str(workdir / "data")]
    argv += ["--port", str(free_port()), "--mqtt-url", BROKER]
    argv += ["--mqtt-client-id", f"serve-{uuid.uuid4().hex[:8]}"]
    if host_id:
        argv += ["--sparkplug-host-id", host_id]
    return subprocess.Popen(
        [*argv, *args],
        cwd=workdir,
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _online(observer: Observer, host_id: str) -> bool | None:
    seen = [json.loads(p) for p, _ in observer.on(f"spBv1.0/STATE/{host_id}") if p]
    return seen[-1]["online"] if seen else None


def _end(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> str:
    if proc.poll() is None:
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    return out.decode(errors="replace")


@pytest.fixture
def broker() -> str:
    _require_broker()
    return BROKER


def test_configured_enterprise_host_id_and_exact_values_in_a_real_serve(
    broker, tmp_path, pg_schema, monkeypatch
):
    host_id = f"plant-a-{uuid.uuid4().hex[:6]}"
    group = f"g{uuid.uuid4().hex[:8]}"
    observer = Observer(broker, [f"spBv1.0/STATE/{host_id}"])
    proc = _serve(
        tmp_path / "a",
        host_id,
        INDUNET_ENTERPRISE="acme",
        INDUNET_DB=PG_URL,
        INDUNET_PG_SCHEMA=pg_schema,
    )
    edge = None
    try:
        assert wait(lambda: _online(observer, host_id) is True, 30), _end(proc)
        edge = ScriptedEdgeNode(broker, group, "gw1")
        born = int(time.time() * 1000) - 1000  # one point per (tag, ts): the birth a second ago
        edge.nbirth([metric("Count", alias=1, dtype=pb.UInt64, value=2**53 + 1)], ts=born)
        later = payload([metric(alias=1, dtype=pb.UInt64, value=2**64 - 1)], seq=1)
        edge.send("NDATA", compress(later, "GZIP"))  # Tahu's compress: true
        edge.send("NDATA", b"\x08\x00\xff\xfe binary \x00 junk")  # a dead letter
        monkeypatch.chdir(tmp_path)
        historian = open_historian(load_settings(db=PG_URL, pg_schema=pg_schema))
        try:
            tag = f"{group}/gw1/node/gw1/Count"

            def values():
                try:
                    rows = historian.series("acme", tag, 0, 2**62).to_pylist()
                except DataError:  # not there yet
                    return []
                return [r["value"] for r in exact_integers(rows)]

            assert wait(lambda: values() == [2**53 + 1, 2**64 - 1], 20), values()
            assert historian.count("demo") == 0  # nothing under the default enterprise
            assert wait(lambda: bool(historian.dead_letters("acme")), 10)
            letters = historian.dead_letters("acme")
            assert letters[0]["payload"].startswith("base64:")
            assert base64.b64decode(letters[0]["payload"][7:]).startswith(b"\x08\x00\xff\xfe")
        finally:
            historian.close()
        # the CLI prints the exact integers and a one-line-per-letter table
        monkeypatch.setenv("INDUNET_DB", PG_URL)
        monkeypatch.setenv("INDUNET_PG_SCHEMA", pg_schema)
        monkeypatch.setenv("INDUNET_ENTERPRISE", "acme")
        runner = CliRunner()
        out = runner.invoke(app, ["query", "series", tag, "--start", "0", "--json"])
        assert out.exit_code == 0, out.output
        assert [r["value"] for r in json.loads(out.stdout)["rows"]] == [2**53 + 1, 2**64 - 1]
        table = runner.invoke(app, ["query", "series", tag, "--start", "0"]).stdout
        assert str(2**64 - 1) in table and "1.8446744073709552e+19" not in table
        listing = runner.invoke(app, ["deadletters"]).stdout
        assert len(listing.strip().splitlines()) == 2 and "base64:" in listing
        assert "\x00" not in listing
    finally:
        if edge is not None:
            edge.close()
        output = _end(proc)
        observer.close()
    assert "ingesting" in output


def test_two_hosts_on_one_broker_each_have_their_own_state(
    broker, tmp_path, pg_schema, monkeypatch
):
    a_id, b_id = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    group = f"g{uuid.uuid4().hex[:8]}"
    observer = Observer(broker, [f"spBv1.0/STATE/{a_id}", f"spBv1.0/STATE/{b_id}"])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "indunet.toml").write_text(
        f'enterprise = "demo"\ndb = "{PG_URL}"\npg_schema = "{pg_schema}"\n'
        f'[sparkplug]\nhost_id = "{b_id}"\n'
        f'[[sparkplug.routes]]\ngroup = "{group}"\nenterprise = "beta"\nsite = "shanghai"\n'
    )
    a = _serve(tmp_path / "a", a_id)
    b = _serve(tmp_path / "b", None)  # host id, database and routes from its indunet.toml
    edge = None
    try:
        assert wait(lambda: _online(observer, a_id) and _online(observer, b_id), 30), _end(
            a
        ) + _end(b)
        edge = ScriptedEdgeNode(broker, group, "gw1")
        edge.nbirth([metric("Temp", alias=1, dtype=pb.Double, value=21.5)])
        monkeypatch.chdir(tmp_path)
        historian = open_historian(load_settings(db=PG_URL, pg_schema=pg_schema))
        try:
            tag = "shanghai/gw1/node/gw1/Temp"
            assert wait(lambda: historian.latest("beta", "shanghai").num_rows >= 1, 20)
            assert historian.latest("beta", tag).to_pylist()[0]["value"] == 21.5
        finally:
            historian.close()
        _end(a, signal.SIGKILL)  # A dies without a word: its will says offline, B stays
        assert wait(lambda: _online(observer, a_id) is False, 20)
        assert _online(observer, b_id) is True
    finally:
        if edge is not None:
            edge.close()
        _end(a, signal.SIGKILL)
        _end(b)
        assert wait(lambda: _online(observer, b_id) is False, 10)
        for host_id in (a_id, b_id):  # leave no retained STATE on the shared broker
            observer.publish(f"spBv1.0/STATE/{host_id}", b"", retain=True)
        observer.close()


def test_serve_and_demo_build_the_host_from_the_settings(settings_factory, monkeypatch):
    monkeypatch.setenv("INDUNET_ENTERPRISE", "acme")
    monkeypatch.setenv("INDUNET_SPARKPLUG__HOST_ID", "line-2")
    settings = settings_factory()
    historian = open_historian(settings)
    try:
        ingest = mqtt_ingest(historian, BROKER, settings, client_id="x")
        assert ingest.sparkplug.mapping.enterprise == "acme"
        assert ingest.state_topic == "spBv1.0/STATE/line-2"
        assert not ingest.clean_start
    finally:
        historian.close()


@pytest.mark.parametrize("bad", ["a/b", "a+", "#", " ", "x" * 300])
def test_a_bad_host_id_is_refused_in_one_line(settings_factory, bad):
    settings_factory()
    result = CliRunner().invoke(app, ["serve", "--mqtt-url", BROKER, "--sparkplug-host-id", bad])
    assert result.exit_code == 2, result.output
    assert "host id" in result.stderr and "\n" not in result.stderr.strip()


def test_check_host_id():
    from indunet.connect.mqtt import check_host_id

    assert check_host_id("indunet-2") == "indunet-2"
    for bad in ("a/b", "a+", "#", " x"):
        with pytest.raises((ConfigError, DataError)):
            check_host_id(bad)


def test_deadletters_prints_one_line_per_letter_whatever_the_payload(settings_factory):
    from indunet.model import DeadLetter

    settings = settings_factory()
    historian = open_historian(settings)
    try:  # a letter stored before binary payloads were encoded: raw control characters
        historian.add_dead_letters(
            [DeadLetter("sparkplug", "bad\nreason", "spBv1.0/g/NDATA/n", "\x08\x00\x1b[31m\x7f")],
            "demo",
        )
    finally:
        historian.close()
    out = CliRunner().invoke(app, ["deadletters", "--data-dir", str(settings.data_dir)])
    assert out.exit_code == 0, out.output
    lines = out.stdout.strip().splitlines()
    assert (
        len(lines) == 2 and "\\x08\\x00\\x1b[31m\\x7f" in lines[1] and "bad\\x0areason" in lines[1]
    )
    as_json = CliRunner().invoke(
        app, ["deadletters", "--json", "--data-dir", str(settings.data_dir)]
    )
    assert json.loads(as_json.stdout)["rows"][0]["payload"] == "\x08\x00\x1b[31m\x7f"  # as stored
