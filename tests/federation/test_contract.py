"""The uplink contract: every kind round-trips; malformed and hostile messages are refused."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.errors import DataError
from indunet.federation import contract as c

MS = 1_780_000_000_000


def daily(**data: object) -> c.Uplink:
    body = {"kwh": 1234.5, "coverage": 1.0, "sites": ["s1", "s2"], "timezone": "UTC", **data}
    return c.build("acme", "kwh_daily", "s1", "2026-06-01", body, computed_ms=MS, rev=3)


EXAMPLES = {
    "kwh_daily": daily(),
    "kwh_hourly": c.build(
        "acme", "kwh_hourly", "s1", "2026-06-01T13:00Z", {"kwh": 12.0, "coverage": 0.5},
        computed_ms=MS, rev=1,
    ),
    "states": c.build(
        "acme", "states", "s1", "2026-06-01T13:05Z",
        {"machines": 4, "running": 2, "idle": 1, "off": 0, "offline": 1, "unknown": 0,
         "at_ms": MS},
        computed_ms=MS, rev=1,
    ),
    "oee_daily": c.build(
        "acme", "oee_daily", "s1", "2026-06-01",
        {"pbt_ms": 1000, "apt_ms": 800, "ideal_ms": 600.0, "produced": 10, "good": 9,
         "scrap": 1, "produced_without_ideal": 0, "machines": 2, "complete": False,
         "end_ms": MS},
        computed_ms=MS, rev=1,
    ),
    "offers": c.build(
        "acme", "offers", "*", "current",
        {"offers": [{"id": "o1", "item": "mask", "kind": "capacity", "rate_per_day": 100.0},
                    {"id": "o2", "item": "mask", "kind": "stock", "quantity": 5000.0}]},
        computed_ms=MS, rev=1,
    ),
    "inventory": c.build(
        "acme", "inventory", "*", "current",
        {"items": [{"item": "N95 mask", "quantity": 100.0, "daily_use": 50.0,
                    "days_of_cover": 2.0, "cover_target_days": 3.0, "below_cover": True,
                    "unit": "pcs", "as_of_ms": MS},
                   {"item": "gown", "quantity": 7.0, "daily_use": None, "days_of_cover": None,
                    "cover_target_days": 3.0, "below_cover": False, "unit": None,
                    "as_of_ms": MS}]},
        computed_ms=MS, rev=1,
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", c.KINDS)
def test_every_kind_round_trips(kind: str) -> None:
    record = EXAMPLES[kind]
    assert record.topic == f"indunet/uplink/v1/acme/{kind}"
    back = c.parse(record.topic, record.payload())
    assert back == record
    assert back.key == f"acme/{record.site}/{record.period}"


@pytest.mark.parametrize(
    ("offers", "match"),
    [
        ([{"id": "o1", "item": "m", "kind": "stock"}], "offers.0.*needs a quantity"),
        ([{"id": "o1", "item": "m", "quantity": 1}] * 2, "listed twice"),
        ([{"id": "o1", "item": "m", "quantity": -1}], r"offers\[0\].quantity"),
        ([{"id": f"o{i}", "item": "m", "quantity": 1} for i in range(51)], "at most 50"),
        ({"id": "o1"}, "must be a list"),
    ],
)
def test_malformed_offers_are_refused(offers: object, match: str) -> None:
    doc = _doc(EXAMPLES["offers"])
    doc["data"]["offers"] = offers
    _refused("indunet/uplink/v1/acme/offers", doc, match)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"quantity": -1}, r"items\[0\].quantity: -1 is out of range"),
        ({"quantity": True}, r"items\[0\].quantity: missing or not a number"),
        ({"below_cover": False}, r"items\[0\].below_cover: does not match"),
        ({"days_of_cover": 9.0}, r"items\[0\].days_of_cover: is not quantity / daily_use"),
        ({"daily_use": None}, r"items\[0\].days_of_cover: given exactly when"),
        ({"item": "a\x00b"}, r"items\[0\].item: missing or not an item id"),
        ({"item": "gown"}, r"items\[1\].item: 'gown' is listed twice"),
        ({"as_of_ms": 3}, r"items\[0\].as_of_ms: 3 is out of range"),
        ({"unit": "x" * 33}, r"items\[0\].unit"),
    ],
)
def test_malformed_inventory_is_refused_naming_the_item(change: dict, match: str) -> None:
    doc = _doc(EXAMPLES["inventory"])
    doc["data"]["items"][0].update(change)
    with pytest.raises(DataError, match=match):
        c.parse("indunet/uplink/v1/acme/inventory", orjson.dumps(doc))
    too_many = _doc(EXAMPLES["inventory"])
    too_many["data"]["items"] = [
        {**too_many["data"]["items"][1], "item": f"i{n}"} for n in range(c.MAX_ITEMS + 1)
    ]
    with pytest.raises(DataError, match="at most 60 items"):
        c.parse("indunet/uplink/v1/acme/inventory", orjson.dumps(too_many))
    wrong = {**_doc(EXAMPLES["inventory"]), "site": "s1", "key": "acme/s1/current"}
    with pytest.raises(DataError, match="site and period of inventory"):
        c.parse("indunet/uplink/v1/acme/inventory", orjson.dumps(wrong))


def test_offers_are_the_whole_plants_and_fit_a_payload() -> None:
    doc = _doc(EXAMPLES["offers"])
    doc.update(site="s1", key="acme/s1/current")
    _refused("indunet/uplink/v1/acme/offers", doc, "must be '\\*' and 'current'")
    big = [{"id": f"o{i}-" + "x" * 120, "item": "y" * 120, "quantity": 1.0} for i in range(50)]
    with pytest.raises(DataError, match="over 16384"):
        c.build("acme", "offers", "*", "current", {"offers": big}, computed_ms=MS, rev=1)


def test_newer_revision_wins_and_same_revision_is_idempotent() -> None:
    r = daily()
    assert r.newer_than(MS, 3)  # the same record again: replaces with itself
    assert r.newer_than(MS - 1, 99)  # computed later wins over any rev
    assert not r.newer_than(MS, 4)
    assert not r.newer_than(MS + 1, 0)


def _doc(record: c.Uplink) -> dict:
    return orjson.loads(record.payload())


def _refused(topic: str, doc: object, match: str) -> None:
    payload = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    with pytest.raises(DataError, match=match):
        c.parse(topic, payload)


T = "indunet/uplink/v1/acme/kwh_daily"


@pytest.mark.parametrize(
    ("topic", "match"),
    [
        ("indunet/v1/acme/kwh_daily", "not under"),
        ("indunet/uplink/v1/acme", "is not indunet/uplink"),
        ("indunet/uplink/v1/acme/kwh_daily/extra", "is not indunet/uplink"),
        ("indunet/uplink/v1/acme/raw_points", "kind"),
        ("indunet/uplink/v1/+/kwh_daily", "forbidden"),
        ("indunet/uplink/v1//kwh_daily", "empty"),
        ("indunet/uplink/v1/ acme/kwh_daily", "blanks"),
    ],
)
def test_bad_topics_are_refused(topic: str, match: str) -> None:
    _refused(topic, _doc(daily()), match)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"v": 2}, "version 2 is not understood"),
        ({"v": "1"}, "field v"),
        ({"v": True}, "field v"),
        ({"kind": "states"}, "does not match the topic"),
        ({"enterprise": "other"}, "does not match the topic"),  # a plant speaking for another
        ({"key": "acme/s2/2026-06-01"}, "field key"),
        ({"site": 7}, "must be text"),
        ({"site": "s1/../x"}, "forbidden"),
        ({"period": "2026-02-30"}, "not a calendar day"),
        ({"period": "01/06/2026"}, "not a day"),
        ({"computed_ms": 1.5e12}, "not an integer"),
        ({"computed_ms": 12}, "not a time of this century"),
        ({"rev": -1}, "out of range"),
        ({"rev": None}, "not an integer"),
        ({"data": [1, 2]}, "not an object"),
        ({"data": {"kwh": 1.0}}, "coverage"),
        ({"data": {"kwh": -1.0, "coverage": 1}}, "out of range"),
        ({"data": {"kwh": 1e12, "coverage": 1}}, "out of range"),
        ({"data": {"kwh": "12", "coverage": 1}}, "not a number"),
        ({"data": {"kwh": True, "coverage": 1}}, "not a number"),
        ({"data": {"kwh": 1, "coverage": 1.5}}, "out of range"),
        ({"data": {"kwh": 1, "coverage": 1, "sites": [], "timezone": "UTC"}}, "sites"),
        ({"data": {"kwh": 1, "coverage": 1, "sites": ["s2"], "timezone": "UTC"}}, "site s1"),
        ({"data": {"kwh": 1, "coverage": 1, "sites": ["s1", "s1"], "timezone": "UTC"}}, "twice"),
        ({"data": {"kwh": 1, "coverage": 1, "sites": ["s1"]}}, "timezone"),
    ],
)
def test_malformed_daily_fields_are_refused_naming_the_field(change: dict, match: str) -> None:
    doc = {**_doc(daily()), **change}
    _refused(T, doc, match)


def test_states_must_add_up_and_oee_elements_must_be_consistent() -> None:
    st_doc = _doc(EXAMPLES["states"])
    st_doc["data"]["running"] = 3  # 5 counted, 4 machines
    _refused("indunet/uplink/v1/acme/states", st_doc, "not the sum")
    oee = _doc(EXAMPLES["oee_daily"])
    oee["data"]["apt_ms"] = 2000
    _refused("indunet/uplink/v1/acme/oee_daily", oee, "APT <= PBT")
    oee = _doc(EXAMPLES["oee_daily"])
    oee["data"]["good"] = 11
    _refused("indunet/uplink/v1/acme/oee_daily", oee, "over produced")
    oee = _doc(EXAMPLES["oee_daily"])
    oee["data"]["complete"] = 1
    _refused("indunet/uplink/v1/acme/oee_daily", oee, "complete")
    hourly = _doc(EXAMPLES["kwh_hourly"])
    hourly["period"] = "2026-06-01T13:20Z"
    hourly["key"] = "acme/s1/2026-06-01T13:20Z"
    _refused("indunet/uplink/v1/acme/kwh_hourly", hourly, "YYYY-MM-DDTHH:MMZ")


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "JSON object"),
        (b'"text"', "JSON object"),
        (b"null", "JSON object"),
        (b'{"v": NaN}', "not JSON"),
        (b"{" * 5000, "not JSON"),
        (b" " * (c.MAX_PAYLOAD_BYTES + 1), "over"),
    ],
)
def test_hostile_payloads_are_refused(payload: bytes, match: str) -> None:
    _refused(T, payload, match)


def test_unknown_fields_are_ignored_within_a_version() -> None:
    doc = _doc(daily())
    doc["note"] = "added later in v1"
    doc["data"]["spare"] = 1
    record = c.parse(T, orjson.dumps(doc))
    assert "spare" not in record.data and record == daily()


def test_builder_refuses_what_a_receiver_would() -> None:
    with pytest.raises(DataError, match="kind"):
        c.build("acme", "raw", "s1", "2026-06-01", {}, computed_ms=MS, rev=0)
    with pytest.raises(DataError):
        daily(kwh=float("nan"))
    with pytest.raises(DataError, match="no UTC start"):
        c.period_start_ms("kwh_daily", "2026-06-01")
    assert c.period_start_ms("kwh_hourly", c.hour_period(MS - MS % 3_600_000)) == (
        MS - MS % 3_600_000
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_parser(payload: bytes) -> None:
    with contextlib.suppress(DataError):
        c.parse(T, payload)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(c.KINDS),
    st.dictionaries(
        st.sampled_from(
            ["v", "kind", "enterprise", "site", "period", "key", "computed_ms", "rev", "data"]
        ),
        _json,
    ),
)
def test_random_documents_are_refused_or_valid(kind: str, patch: dict) -> None:  # fmt: skip
    doc = {**_doc(EXAMPLES[kind]), **patch}
    try:
        record = c.parse(f"indunet/uplink/v1/acme/{kind}", orjson.dumps(doc))
    except DataError:
        return
    except TypeError:  # orjson cannot encode e.g. NaN keys: nothing was sent
        return
    assert c.parse(record.topic, record.payload()) == record  # what is accepted round-trips


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=0, max_value=c.MAX_KWH, allow_nan=False),
    st.floats(min_value=0, max_value=1, allow_nan=False),
    st.integers(min_value=0, max_value=2**62),
)
def test_valid_values_round_trip_exactly(kwh: float, coverage: float, rev: int) -> None:
    record = c.build(
        "acme", "kwh_hourly", "s1", "2026-06-01T00:00Z", {"kwh": kwh, "coverage": coverage},
        computed_ms=MS, rev=rev,
    )  # fmt: skip
    assert c.parse(record.topic, record.payload()) == record
