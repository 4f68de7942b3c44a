from __future__ import annotations

import numpy as np

from indunet.docking.problem import Location, Offer, Request
from indunet.docking.ranking import LiveStatus, OfferIndex, live_status

WUHAN = Location(lat=30.59, lon=114.31)


def test_ranks_by_item_distance_lead_and_status_with_components():
    offers = [
        Offer(id="near", item="mask", quantity=10, location=Location(lat=30.6, lon=114.3)),
        Offer(id="far", item="mask", quantity=10, location=Location(lat=39.9, lon=116.4)),
        Offer(id="syn", item="ffp2", quantity=10, location=Location(lat=30.6, lon=114.3)),
        Offer(id="other", item="gloves", quantity=10, location=Location(lat=30.6, lon=114.3)),
        Offer(
            id="slow",
            item="mask",
            kind="capacity",
            rate_per_day=5,
            from_day=20,
            location=Location(lat=30.6, lon=114.3),
        ),
    ]
    index = OfferIndex.build(offers, synonyms={"ffp2": "mask"})
    rows = index.rank(Request(id="H", item="mask", quantity=5, location=WUHAN), top=10)
    assert [r["offer"] for r in rows] == ["near", "syn", "slow", "far"]
    assert rows[1]["item_match"] == 0.8
    assert rows[0]["km"] < 5 and rows[-1]["km"] > 1000
    live = np.array([0.0, 1.0, 1.0, 1.0, 1.0])
    rows = index.rank(Request(id="H", item="mask", quantity=5, location=WUHAN), status=live)
    assert rows[0]["offer"] != "near"  # a stopped enterprise drops


def test_no_candidates_and_unknown_locations():
    index = OfferIndex.build([Offer(id="a", item="x", quantity=1)])
    assert index.rank(Request(id="r", item="y", quantity=1)) == []
    [row] = index.rank(Request(id="r", item="x", quantity=1, location=WUHAN))
    assert row["km"] is None


def test_live_status_from_plant_states_and_the_regional_monitor():
    assert live_status(None) == "unknown"
    assert live_status(LiveStatus()) == "unknown"  # no data is unknown, not stopped
    assert live_status(LiveStatus(resumed=True)) == "resumed"
    assert live_status(LiveStatus(resumed=False)) == "stopped"
    assert live_status(LiveStatus(machines_running=0, machines_known=4)) == "stopped"
    # machines running now outrank the monitor's (daily) verdict
    assert live_status(LiveStatus(resumed=False, machines_running=1, machines_known=4)) == "running"
    assert live_status(LiveStatus(resumed=True, machines_known=3)) == "resumed"


def test_live_status_is_a_ranking_factor():
    here = Location(lat=30.6, lon=114.3)
    offers = [
        Offer(id="a", item="mask", quantity=10, location=here, enterprise="Stopped Co"),
        Offer(id="b", item="mask", quantity=10, location=here, enterprise="Running Co"),
        Offer(id="c", item="mask", quantity=10, location=here, enterprise="Resumed Co"),
        Offer(id="d", item="mask", quantity=10, location=here),  # no enterprise: unknown
    ]
    index = OfferIndex.build(offers)
    statuses = {
        "Stopped Co": LiveStatus(resumed=False),
        "Running Co": LiveStatus(machines_running=2, machines_known=2),
        "Resumed Co": LiveStatus(resumed=True),
        "Elsewhere": LiveStatus(resumed=True),
    }
    live = index.live_scores(statuses)
    assert live.tolist() == [0.0, 1.0, 0.8, 0.5]
    assert index.live_scores({}).tolist() == [0.5] * 4
    rows = index.rank(Request(id="H", item="mask", quantity=5, location=WUHAN), status=live)
    assert [r["offer"] for r in rows] == ["b", "c", "d", "a"]
    assert [r["live_status"] for r in rows] == [1.0, 0.8, 0.5, 0.0]
