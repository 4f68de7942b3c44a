"""Equipment installed at customers: the customer_equipment kind, from rows to the overview."""

from __future__ import annotations

from indunet.business.files import read_rows
from indunet.business.records import BusinessKind, required_columns, validate_rows
from indunet.business.status import DAY_MS, equipment_status, summary
from indunet.business.store import BusinessStore

NOW = 1_763_625_600_000
KIND = BusinessKind.customer_equipment


def row(**kw):
    base = {"serial": "SN-1", "customer": "Haier Qingdao", "last_seen": NOW - 60_000}
    return {**base, **kw}


def test_required_columns_are_serial_and_customer():
    assert required_columns(KIND) == ["serial", "customer"]


def test_valid_rows_become_records_with_epoch_ms_times():
    out = validate_rows(
        KIND,
        [
            {
                "Serial": "SN-7",
                "Customer": "Tata Pune",
                "Location": "Pune, IN",
                "status": "fault",
                "last_seen": "2025-11-20T08:00:00Z",
                "installed_at": NOW - 400 * DAY_MS,
                "lat": "18.52",
                "lon": 73.85,
            }
        ],
    )
    assert out.errors == []
    [rec] = out.records
    assert rec["serial"] == "SN-7" and rec["location"] == "Pune, IN"
    assert rec["status"] == "fault"
    assert rec["last_seen"] == 1_763_625_600_000
    assert rec["installed_at"] == NOW - 400 * DAY_MS
    assert rec["lat"] == 18.52


def test_bad_rows_name_row_and_field():
    rows = [
        row(),
        row(serial="SN-2", customer=""),  # blank required field
        row(serial="SN-3", status="exploded"),
        row(serial="SN-4", lat=91),
        row(serial="bad\x07serial"),
        row(serial="SN-5", last_seen="last tuesday"),
        "not an object",
    ]
    out = validate_rows(KIND, rows, source="gear.csv", first_row=2)
    assert [r["serial"] for r in out.records] == ["SN-1"]
    fields = {e.ref: e.field for e in out.errors}
    assert fields == {
        "gear.csv row 3": "customer",
        "gear.csv row 4": "status",
        "gear.csv row 5": "lat",
        "gear.csv row 6": "serial",
        "gear.csv row 7": "last_seen",
        "gear.csv row 8": "",
    }


def test_a_repeated_serial_keeps_the_last_row_and_warns():
    out = validate_rows(KIND, [row(status="running"), row(status="fault")], source="api")
    assert [r["status"] for r in out.records] == ["fault"]
    assert any("repeats the key" in w for w in out.warnings)


def test_state_is_offline_when_not_heard_from_and_retired_stays_retired():
    rows = equipment_status(
        [
            row(status="running"),
            row(serial="b", status="fault"),
            row(serial="c", status=None),
            row(serial="d", status="running", last_seen=NOW - 2 * DAY_MS),
            row(serial="e", status="fault", last_seen=None),
            row(serial="f", status="retired", last_seen=None),
        ],
        now_ms=NOW,
    )
    assert [(r["state"], r["stale"]) for r in rows] == [
        ("running", False),
        ("fault", False),
        ("running", False),  # heard from, nothing reported: it runs
        ("offline", True),
        ("offline", True),
        ("retired", False),
    ]
    counts = summary([], {}, [], rows)["equipment"]
    assert counts == {"running": 2, "fault": 1, "offline": 2, "retired": 1}
    assert summary([], {}, [])["equipment"] == {}


def test_store_keeps_equipment_per_tenant_and_the_overview_counts_it(historian):
    store = BusinessStore(historian)
    assert store.signature("acme") == (0, 0)
    report = store.load(
        "acme",
        KIND,
        [row(status="running", site="s1"), row(serial="SN-2", status="fault"), {"serial": "x"}],
        source="t",
        now_ms=NOW,
    )
    assert report.stored == 2 and [r["field"] for r in report.refused] == ["customer"]
    assert store.signature("acme") == (2, NOW) and store.signature("other") == (0, 0)
    view = {r["serial"]: r for r in store.view("acme", KIND, now_ms=NOW)}
    assert view["SN-1"]["site"] == "s1" and view["SN-1"]["last_seen"] == NOW - 60_000
    assert view["SN-2"]["state"] == "fault"
    assert store.overview("acme", now_ms=NOW)["equipment"] == {"running": 1, "fault": 1}
    assert store.view("other", KIND, now_ms=NOW) == []
    # a day later nothing was heard: both are offline
    later = store.overview("acme", now_ms=NOW + 2 * DAY_MS)["equipment"]
    assert later == {"offline": 2}
    store.load("acme", KIND, [row(status="idle")], source="t", now_ms=NOW + 1)
    assert store.signature("acme") == (2, NOW + 1)  # a replaced record changes it too


def test_csv_file_of_equipment(tmp_path):
    f = tmp_path / "gear.csv"
    f.write_text("Serial;Customer;Status;Last seen\nSN-1;Midea;running;2025-11-20T08:00:00Z\n")
    rows, warnings, first = read_rows(f, KIND)
    assert warnings == [] and first == 2
    out = validate_rows(KIND, rows, source=f.name, first_row=first)
    assert out.records[0]["customer"] == "Midea" and out.records[0]["last_seen"] == NOW


def test_upload_through_the_api(duck_client):
    r = duck_client.post(
        "/api/v1/business/customer_equipment",
        json=[row(site="s1"), row(serial="SN-2", lon=200)],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stored"] == 1 and body["refused"][0]["field"] == "lon"
    overview = duck_client.get("/api/v1/business/overview").json()
    assert sum(overview["equipment"].values()) == 1
