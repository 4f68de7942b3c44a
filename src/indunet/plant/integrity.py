"""Data-integrity checks on a historian and its plant tables (`indunet check`, GET /check).

Each check returns `Finding`s naming the machine or tag, what is wrong and how to mend it:

* ``timeline_overlap`` — stored state segments of a machine that overlap;
* ``timeline_gap`` — a hole between two stored segments (every instant has one state);
* ``counter_backwards`` — a part counter reading below its high-water mark that is not a reset
  (counted as nothing, but a sign of re-sent or doubled data);
* ``oee_out_of_range`` — an A/P/Q/OEE figure of a machine outside [0, 1] over the range;
* ``tag_silent`` — a tag with an expected interval that has been silent for 5 of them;
* ``derived_behind`` — power data written that its state timeline has not yet followed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from indunet.plant.config import PlantConfig
from indunet.plant.follow import pending_changes
from indunet.plant.store import PlantStore
from indunet.store.base import Historian

__all__ = ["Finding", "check_plant"]

SILENT_INTERVALS = 5


@dataclass(frozen=True)
class Finding:
    """One integrity problem."""

    check: str
    subject: str
    message: str
    ts_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the finding as plain values."""
        return asdict(self)


def _timelines(store: PlantStore, enterprise: str, limit: int) -> list[Finding]:
    rows = store.sql.rows(
        "SELECT machine, start_ms, end_ms, prev_end FROM (SELECT machine, start_ms, end_ms, "
        "lag(end_ms) OVER (PARTITION BY machine ORDER BY start_ms) AS prev_end FROM plant_states "
        "WHERE enterprise = $1) s WHERE prev_end IS NOT NULL AND prev_end <> start_ms "
        "ORDER BY machine, start_ms LIMIT $2",
        [enterprise, limit],
    )
    out = []
    for r in rows:
        if r["prev_end"] > r["start_ms"]:
            out.append(
                Finding(
                    "timeline_overlap",
                    r["machine"],
                    f"stored state segment at {r['start_ms']} starts before the one before it "
                    f"ends ({r['prev_end']}); run `indunet plant repair {r['machine']}`",
                    int(r["start_ms"]),
                )
            )
        else:
            out.append(
                Finding(
                    "timeline_gap",
                    r["machine"],
                    f"no stored state from {r['prev_end']} to {r['start_ms']}; run "
                    f"`indunet plant repair {r['machine']}`",
                    int(r["prev_end"]),
                )
            )
    return out


def _counters(
    historian: Historian, plant: PlantConfig, enterprise: str, start_ms: int, end_ms: int
) -> list[Finding]:
    from indunet.plant.counters import counter_deltas
    from indunet.plant.watch import usable_values

    tags = {}
    for m in plant.machines:
        for c in (m.total_counter, m.scrap_counter):
            if c is not None:
                tags[f"{m.id}/{c.tag}"] = (m, c)
    out = []
    for tag, table in historian.series_many(enterprise, list(tags), start_ms, end_ms).items():
        m, c = tags[tag]
        ts, v = usable_values(table)
        if not len(ts):
            continue
        res = counter_deltas(ts, v, c, machine=m.id)
        back = [a for a in res.anomalies if a.kind == "backwards"]
        if back:
            out.append(
                Finding(
                    "counter_backwards",
                    tag,
                    f"{len(back)} readings below the counter's high-water mark (not resets); "
                    f"first: {back[0].message}",
                    back[0].ts_ms,
                )
            )
    return out


def _oee(
    store: PlantStore,
    historian: Historian,
    plant: PlantConfig,
    enterprise: str,
    start_ms: int,
    end_ms: int,
) -> list[Finding]:
    from indunet.plant.report import oee_report

    if not plant.machines:
        return []
    report = oee_report(store, historian, plant, enterprise, "", start_ms, end_ms)
    out = []
    for machine, e in report["machines"].items():
        for name in ("availability", "performance", "quality", "oee"):
            value = e.get(name)
            if value is not None and not 0.0 <= value <= 1.0:
                out.append(
                    Finding(
                        "oee_out_of_range",
                        machine,
                        f"{name} is {value:.1%} from {start_ms} to {end_ms}: check the ideal "
                        "cycle time (`indunet plant learn-cycle`) and the part counter",
                    )
                )
    return out


def _silent(historian: Historian, enterprise: str, now_ms: int) -> list[Finding]:
    rows = historian._query(
        "SELECT t.path, t.expected_interval_ms, l.ts FROM tags t JOIN latest l ON l.tag_id = t.id "
        "WHERE t.enterprise = $1 AND t.expected_interval_ms IS NOT NULL AND "
        f"l.ts < $2 - {SILENT_INTERVALS} * t.expected_interval_ms ORDER BY t.path",
        [enterprise, now_ms],
    ).to_pylist()
    return [
        Finding(
            "tag_silent",
            r["path"],
            f"no data since {r['ts']}, {(now_ms - r['ts']) / 1000:.0f} s; expected every "
            f"{r['expected_interval_ms'] / 1000:g} s",
            int(r["ts"]),
        )
        for r in rows
    ]


def check_plant(
    store: PlantStore,
    historian: Historian,
    plant: PlantConfig,
    enterprise: str,
    *,
    start_ms: int,
    end_ms: int,
    now_ms: int,
    limit: int = 1000,
) -> list[Finding]:
    """Run every check over an enterprise; counters and OEE over ``[start_ms, end_ms)``."""
    found = _timelines(store, enterprise, limit)
    found += _counters(historian, plant, enterprise, start_ms, end_ms)
    if not any(f.check == "timeline_overlap" for f in found):  # OEE needs readable timelines
        found += _oee(store, historian, plant, enterprise, start_ms, end_ms)
    found += _silent(historian, enterprise, now_ms)
    for machine in pending_changes(store, historian, enterprise, plant.machines, 0, 2**62):
        found.append(
            Finding(
                "derived_behind",
                machine,
                "power data was written that the state timeline has not followed yet; a running "
                "server does so within seconds, `indunet plant repair` does it now",
            )
        )
    return found[:limit]
