"""GET /api/v1/series and /latest return integers beyond 2^53 exactly (both backends)."""

from __future__ import annotations

from indunet.ingest.batch import BatchBuilder
from indunet.ingest.values import Value
from indunet.model import DataType

T0 = 1_700_000_000_000
TAG = "s1/a/l1/m1/event_id"
BIG = 2**63 + 12345  # a UInt64 id: 9223372036854788153


def test_series_and_latest_return_the_exact_integer(client):
    historian = client.app.state.historian
    enterprise = client.app.state.settings.enterprise
    builder = BatchBuilder(enterprise)
    builder.add(TAG, T0, Value(float(BIG), str(BIG), DataType.NUMBER), "test")
    historian.write(builder.take(), source="test")
    got = client.get("/api/v1/series", params={"tag": TAG, "start": T0, "end": T0 + 1})
    assert got.status_code == 200, got.text
    assert f"{BIG}," in got.text  # the digits themselves, not 9.223372036854788e18
    assert got.json()["rows"][0]["value"] == BIG and got.json()["rows"][0]["text"] is None
    latest = client.get("/api/v1/latest", params={"prefix": "s1"})
    assert f'"value":{BIG}' in latest.text
    assert latest.json()["rows"][0]["value"] == BIG
