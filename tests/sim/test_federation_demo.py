"""`indunet demo --federation`: plants of their own uplink live; the regional API lists them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import indunet
from indunet.sim.federation_demo import DEMO_ENTERPRISES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sites(client: httpx.Client) -> list[dict]:
    try:
        r = client.get("/api/v1/federation/sites")
    except httpx.HTTPError:
        return []
    return r.json()["sites"] if r.status_code == 200 else []


def test_demo_federation_starts_and_the_region_lists_the_live_plants(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INDUNET_")}
    env["PYTHONPATH"] = str(Path(indunet.__file__).resolve().parents[1])  # this tree's package
    log = (tmp_path / "demo.log").open("w+")
    demo = subprocess.Popen(
        [sys.executable, "-m", "indunet.cli", "demo", "--federation", "--nation", "150",
         "--no-edge", "--sites", "1", "--machines", "3", "--hours", "1", "--port", str(port),
         "--data-dir", str(tmp_path / "data")],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        login_file = tmp_path / "data" / "demo-login.json"
        deadline = time.monotonic() + 90
        logged_in = False
        while time.monotonic() < deadline and demo.poll() is None:
            if not logged_in and login_file.exists():
                try:
                    login = json.loads(login_file.read_text())
                    body = {"name": "demo", "password": login["password"]}
                    r = client.post("/api/v1/auth/login", json=body)
                    logged_in = r.status_code == 200
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
            sites = _sites(client) if logged_in else []
            live = {s["enterprise"] for s in sites if s["status"] == "reporting"}
            if live == set(DEMO_ENTERPRISES):
                break
            time.sleep(0.5)
        log.seek(0)
        assert demo.poll() is None, log.read()[-3000:]
        assert logged_in, log.read()[-3000:]
        by = {}
        for s in sites:
            by.setdefault(s["enterprise"], []).append(s)
        assert set(by) == set(DEMO_ENTERPRISES), log.read()[-3000:]
        for name, (n_sites, machines) in DEMO_ENTERPRISES.items():
            assert len(by[name]) == n_sites
            assert sum(s["states"]["machines"] for s in by[name]) == machines
            assert all(s["status"] == "reporting" for s in by[name])
        # the region registered its live plants: the region page lists them beside the nation,
        # judged by the monitor's rule on their uplinked daily kWh
        registered: list[dict] = []
        while time.monotonic() < deadline and len(registered) < len(DEMO_ENTERPRISES):
            r = client.get("/api/v1/federation/enterprises")
            registered = [e for e in r.json()["registered"] if e["state"] != "unknown"]
            time.sleep(0.5)
        log.seek(0)
        assert {e["enterprise_id"] for e in registered} == set(DEMO_ENTERPRISES), log.read()[-3000:]
        for e in registered:
            assert e["kwh"] > 0 and e["baseline_kwh"] > 0 and e["source"] == "uplink"
            assert e["state"] == (
                "resumed" if e["kwh"] > e["theta"] * e["baseline_kwh"] else "stopped"
            )
        page = client.get("/region").text
        live = page.split('id="uplink-table"', 1)[1].split("</table>", 1)[0]
        for name in DEMO_ENTERPRISES:
            row = live.split(f'data-enterprise="{name}"', 1)[1].split("</tr>", 1)[0]
            assert '<span class="badge live"' in row
        assert 'id="headline">2020-' in page  # the nation's day, not the plants' yesterday
        # each plant's own data: a DuckDB of its own beside the region's
        for name in DEMO_ENTERPRISES:
            assert (tmp_path / "data" / "plants" / name / "uplink.sqlite").exists()
        demo.send_signal(signal.SIGINT)  # Ctrl+C stops the plants, the region and the broker
        assert demo.wait(30) == 0
        log.seek(0)
        assert "indunet demo stopped." in log.read()
    finally:
        client.close()
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(5)
        log.close()
