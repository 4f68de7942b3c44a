"""Region API on the hand-checked fixture: rates, trend, rankings, drill-down, CSV, headline."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indunet.region.store import open_region_store
from tests.region.conftest import CORRECTION, READINGS, REGISTRY, TODAY, write


@pytest.fixture
def region_client(make_client, tmp_path: Path) -> TestClient:
    client = make_client(region={"theta_by_industry": {"C31": 0.5}, "baseline_min_days": 2})
    settings = client.app.state.settings
    with open_region_store(settings.region, settings.data_dir) as store:
        store.import_registry(write(tmp_path / "reg.csv", REGISTRY), effective=TODAY)
        store.import_readings(write(tmp_path / "r.csv", READINGS), today=TODAY)
        store.import_readings(write(tmp_path / "c.csv", CORRECTION), today=TODAY)
    return client


def test_rate_by_province_with_headline(region_client: TestClient) -> None:
    r = region_client.get("/api/v1/region/rate", params={"date": "2020-03-02"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "stored" and body["by"] == ["province"]
    assert body["total"]["rate"] == 75.0 and body["total"]["change_pp"] == pytest.approx(
        41.6667, abs=1e-3
    )
    rows = {row["province"]: row for row in body["rows"]}
    assert rows["Hubei"]["rate"] == 100.0 and rows["Guangdong"]["rate"] == 50.0
    assert body["headline"].startswith("2020-03-02: Resumption 75.0 %, +41.7 points")


def test_theta_override_is_live(region_client: TestClient) -> None:
    r = region_client.get(
        "/api/v1/region/rate", params={"date": "2020-03-01", "by": "", "theta": 0.1}
    )
    assert r.json()["source"] == "live"


def test_trend_rankings_csv(region_client: TestClient) -> None:
    trend = region_client.get(
        "/api/v1/region/trend", params={"start": "2020-03-01", "end": "2020-03-02"}
    ).json()
    assert [row["rate"] for row in trend["rows"]] == pytest.approx([100 / 3, 75.0])
    low = region_client.get("/api/v1/region/rankings", params={"date": "2020-03-02"}).json()
    assert [row["province"] for row in low["rows"]] == ["Guangdong", "Hubei"]
    csv = region_client.get("/api/v1/region/rate.csv", params={"date": "2020-03-02", "by": "size"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("day,size,enterprises")


def test_drill_down_watchlist_status(region_client: TestClient) -> None:
    r = region_client.get(
        "/api/v1/region/enterprises",
        params={"date": "2020-03-02", "province": "Guangdong", "state": "not_resumed"},
    ).json()
    assert r["total"] == 2 and {row["enterprise_id"] for row in r["rows"]} == {"E1", "E6"}
    csv = region_client.get(
        "/api/v1/region/enterprises", params={"date": "2020-03-02", "format": "csv"}
    )
    assert "E1" in csv.text
    wl = region_client.get("/api/v1/region/watchlist", params={"date": "2020-03-02"}).json()
    assert wl["rows"][0]["suppliers_stopped"] == 1
    st = region_client.get("/api/v1/region/status").json()
    assert st["enterprises"] == 6 and st["readings"] == 19


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"date": "2020-03-02", "province": "Atlantis"}, "province"),
        ({"date": "2020-03-02", "industry": "Z99"}, "industry"),
        ({"date": "2020-03-02", "by": "planet"}, "planet"),
        ({"date": "2020-02-30"}, "date"),
    ],
)
def test_bad_queries_are_422(region_client: TestClient, params: dict, needle: str) -> None:
    r = region_client.get("/api/v1/region/rate", params=params)
    assert r.status_code == 422 and needle in r.text
