"""Industrial transfer matching: hand-scored pairs, per-entry validation, the API and the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from indunet.cli import app
from indunet.docking.transfer import WEIGHTS, load_transfer, match_transfer
from indunet.errors import DataError

DOC = {
    "enterprises": [
        {
            "id": "E1",
            "name": "Shenzhen Phone Parts",
            "industry": "electronics",
            "wants": "move",
            "from_region": "SZ",
            "land_ha": 20,
            "workers": 1000,
            "energy_mwh_per_year": 40000,
            "max_wage": 5000,
            "related_industries": ["plastics"],
        }
    ],
    "regions": [
        {"id": "SZ", "land_ha": 100, "labour": 9000, "wage": 9000,
         "energy_mwh_per_year": 1e6, "clusters": ["electronics"]},
        {"id": "XY", "name": "Xiangyang park", "province": "Hubei", "land_ha": 50, "labour": 3000,
         "wage": 4000, "energy_mwh_per_year": 100000, "clusters": ["Electronics", "autos"]},
        {"id": "GZ", "land_ha": 10, "labour": 500, "wage": 6250,
         "energy_mwh_per_year": 40000, "clusters": ["plastics"]},
        {"id": "KS", "land_ha": 30, "labour": 2000, "energy_mwh_per_year": 50000},
    ],
}  # fmt: skip


def test_weights_sum_to_one() -> None:
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_hand_scored_candidates_with_every_component() -> None:
    [m] = match_transfer(*load_transfer(DOC), top=10)
    assert m["enterprise"] == "E1" and m["wants"] == "move"
    by = {c["region"]: c for c in m["candidates"]}
    assert "SZ" not in by  # moving away: its own region is not a candidate
    # XY covers everything, same cluster (case-insensitive), wage under the cap: 1.0
    assert by["XY"]["components"] == {
        "land": 1.0, "labour": 1.0, "energy": 1.0, "cluster": 1.0, "cost": 1.0
    }  # fmt: skip
    assert by["XY"]["score"] == 1.0 and by["XY"]["fits"] and by["XY"]["shortfalls"] == []
    # GZ: half the land, half the workers, the energy, a related cluster, wage 5000/6250 = 0.8
    gz = by["GZ"]
    assert gz["components"] == {
        "land": 0.5, "labour": 0.5, "energy": 1.0, "cluster": 0.5, "cost": 0.8
    }  # fmt: skip
    assert gz["score"] == pytest.approx(0.25 * 0.5 + 0.25 * 0.5 + 0.2 + 0.2 * 0.5 + 0.1 * 0.8)
    assert "land: 10 ha offered < 20 needed" in gz["shortfalls"]
    assert "wage: 6250 > the cap 5000" in gz["shortfalls"]
    # KS does not state its wage: half marks on cost, and said so; no cluster
    ks = by["KS"]
    assert ks["components"]["cost"] == 0.5 and ks["components"]["cluster"] == 0.0
    assert "wage: not stated by the region" in ks["shortfalls"]
    assert [c["region"] for c in m["candidates"]] == ["XY", "KS", "GZ"]
    assert ks["score"] > gz["score"]


def test_adding_capacity_may_stay_home_and_top_limits() -> None:
    doc = json.loads(json.dumps(DOC))
    doc["enterprises"][0]["wants"] = "add"
    [m] = match_transfer(*load_transfer(doc), top=2)
    assert [c["region"] for c in m["candidates"]] == ["XY", "SZ"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "a transfer document is a JSON object"),
        ({"enterprises": {}, "regions": []}, "enterprises: must be a JSON array"),
        ({"enterprises": [], "regions": [], "extra": 1}, "unknown key 'extra'"),
        (
            {"enterprises": [{"id": "E1", "industry": "x", "workers": -5}], "regions": []},
            "enterprises[0] (id 'E1').workers: Input should be greater than or equal to 0",
        ),
        (
            {"enterprises": [], "regions": [{"id": "R", "land_ha": "lots"}]},
            "regions[0] (id 'R').land_ha: Input should be a valid number",
        ),
        (
            {"enterprises": [{"id": "E", "industry": "x"}, {"id": "E", "industry": "y"}],
             "regions": []},
            "enterprises[1]: duplicate id 'E'",
        ),
        (
            {"enterprises": [{"id": "E", "industry": "x", "wants": "steal"}], "regions": []},
            "enterprises[0] (id 'E').wants: Input should be 'move' or 'add'",
        ),
        (
            {"enterprises": [{"industry": "x"}], "regions": [{"id": "R", "wage": 0}]},
            "enterprises[0].id: Field required",
        ),
    ],
)  # fmt: skip
def test_bad_entries_are_named(doc, message) -> None:
    with pytest.raises(DataError) as err:
        load_transfer(doc)
    assert message in str(err.value)


def test_every_bad_entry_is_reported_at_once() -> None:
    doc = {
        "enterprises": [{"id": "A", "industry": "x", "land_ha": -1}],
        "regions": [{"id": "B", "wage": -3}, {"id": "<script>", "labour": 1.5}],
    }
    with pytest.raises(DataError) as err:
        load_transfer(doc)
    text = str(err.value)
    assert "enterprises[0] (id 'A').land_ha" in text and "regions[0] (id 'B').wage" in text
    assert "regions[1] (id '<script>').labour" in text


def test_api_route(duck_client) -> None:
    r = duck_client.post("/api/v1/dock/transfer/match?top=1", json=DOC)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["weights"] == WEIGHTS and body["rows"][0]["candidates"][0]["region"] == "XY"
    bad = duck_client.post("/api/v1/dock/transfer/match", json={"enterprises": [{"id": "E"}]})
    assert bad.status_code in (400, 422) and "enterprises[0] (id 'E').industry" in bad.text
    assert duck_client.post("/api/v1/dock/transfer/match?top=0", json=DOC).status_code == 422


def test_cli_command(tmp_path) -> None:
    path = tmp_path / "transfer.json"
    path.write_text(json.dumps(DOC))
    result = CliRunner().invoke(app, ["dock", "transfer", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["rows"][0]["candidates"][0]["components"]["cluster"] == 1.0
    table = CliRunner().invoke(app, ["dock", "transfer", str(path), "--top", "1"])
    assert "XY: score 1.000" in table.stdout and "fits" in table.stdout
    path.write_text('{"enterprises": [{"id": "E", "industry": "x", "workers": -1}], "regions": []}')
    bad = CliRunner().invoke(app, ["dock", "transfer", str(path)])
    assert bad.exit_code == 2 and "enterprises[0] (id 'E').workers" in bad.stderr
    path.write_text("{")
    assert CliRunner().invoke(app, ["dock", "transfer", str(path)]).exit_code == 2
