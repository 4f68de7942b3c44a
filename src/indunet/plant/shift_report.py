"""The shift (or day) report of a site or line: one document, rendered as HTML, XLSX or CSV.

Every figure comes from the code path the pages and the API use: OEE from
`indunet.plant.report.oee_report` (``by="shift"``, so the numbers equal ``GET /api/v1/oee`` for the
same scope and shift), energy from `energy_report`, unexplained stops from `stops_report`,
alarms from the alarm service's event table, orders from the business store. The top losses are
a Pareto of the shift's stop time by reason (``OeeElements.reason_ms``).

A report is a plain JSON-ready dict (`build_report`); `render_html`, `render_xlsx` and
`render_csv` turn it into the three formats. The HTML is one self-contained page (inline CSS,
no scripts) that prints on A4 landscape: the browser makes the PDF.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jinja2

from indunet.errors import DataError
from indunet.plant.config import PlantConfig
from indunet.plant.report import OpenPart, energy_report, oee_report, scope_machines, stops_report
from indunet.plant.shifts import ShiftWindow, day_windows, shift_windows
from indunet.plant.store import PlantStore
from indunet.store.base import Historian

__all__ = [
    "FORMATS",
    "ReportWindow",
    "build_report",
    "ended_windows",
    "find_window",
    "render",
    "render_csv",
    "render_html",
    "render_xlsx",
    "top_losses",
]

FORMATS = ("html", "xlsx", "csv")
MEDIA = {
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}
TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
#: stops shorter than this are not listed as unexplained (micro-stops are in the Pareto)
UNEXPLAINED_MIN_MS = 60_000
#: the report reads at most this many alarm events of a shift
MAX_ALARM_EVENTS = 10_000


class ReportWindow:
    """One shift (or day) of one site: its label and span in UTC ms."""

    __slots__ = ("end_ms", "kind", "label", "site", "start_ms")

    def __init__(self, site: str, label: str, start_ms: int, end_ms: int, kind: str) -> None:
        self.site, self.label, self.start_ms, self.end_ms, self.kind = (
            site,
            label,
            start_ms,
            end_ms,
            kind,
        )

    def __repr__(self) -> str:
        return f"ReportWindow({self.site!r}, {self.label!r}, {self.start_ms}, {self.end_ms})"


def _site_of(plant: PlantConfig, scope: str) -> str:
    machines = scope_machines(plant, scope)
    sites = {m.site for m in machines}
    if len(sites) != 1:
        raise DataError(f"scope {scope!r} spans sites {sorted(sites)}; report one site or line")
    return sites.pop()


def _windows(plant: PlantConfig, site: str, lo: int, hi: int, kind: str) -> list[ShiftWindow]:
    cal = plant.site(site).calendar
    return shift_windows(cal, lo, hi) if kind == "shift" else day_windows(cal, lo, hi)


def find_window(plant: PlantConfig, scope: str, spec: str, *, now_ms: int) -> ReportWindow:
    """Return the shift or day that ``spec`` names for the scope's site.

    ``spec`` is ``last`` (the last shift that has ended), ``current``, a shift label
    ``YYYY-MM-DD name`` (the local date the shift starts on), or a day ``YYYY-MM-DD``.
    """
    site = _site_of(plant, scope)
    cal = plant.site(site).calendar
    spec = " ".join(spec.split())
    if spec in ("last", "current"):
        wins = _windows(plant, site, now_ms - 3 * 86_400_000, now_ms + 86_400_000, "shift")
        full = [_unclipped(plant, site, w) for w in wins]
        if spec == "last":
            done = [w for w in full if w.end_ms <= now_ms]
            if not done:
                raise DataError("no shift has ended in the last three days")
            return done[-1]
        cur = [w for w in full if w.start_ms <= now_ms < w.end_ms]
        if not cur:
            raise DataError("no shift is running now")
        return cur[0]
    day_text, _, shift = spec.partition(" ")
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise DataError(
            f"shift {spec!r}: expected last, current, 'YYYY-MM-DD shiftname' or 'YYYY-MM-DD'"
        ) from None
    start = int(datetime.combine(day, datetime.min.time(), tzinfo=cal.zone).timestamp() * 1000)
    if not shift:
        end = int(
            datetime.combine(day + timedelta(1), datetime.min.time(), tzinfo=cal.zone).timestamp()
            * 1000
        )
        return ReportWindow(site, day.isoformat(), start, end, "day")
    if not any(s.name == shift for s in cal.shifts):
        known = ", ".join(s.name for s in cal.shifts) or "none"
        raise DataError(f"site {site} has no shift {shift!r} (shifts: {known})")
    for w in _windows(plant, site, start - 86_400_000, start + 2 * 86_400_000, "shift"):
        if w.shift == shift and w.day == day:
            return _unclipped(plant, site, w)
    raise DataError(f"shift {shift!r} does not run on {day.isoformat()}")


def _unclipped(plant: PlantConfig, site: str, w: ShiftWindow) -> ReportWindow:
    """Return a shift occurrence at its full length (windows are clipped to the asked range)."""
    cal = plant.site(site).calendar
    shift = next(s for s in cal.shifts if s.name == w.shift) if cal.shifts else None
    if shift is None:
        return ReportWindow(site, w.label, w.start_ms, w.end_ms, "day")
    begin = datetime.combine(w.day, shift.start, tzinfo=cal.zone)
    s = int(begin.timestamp() * 1000)
    e = int((begin + timedelta(minutes=shift.length_min)).timestamp() * 1000)
    return ReportWindow(site, w.label, s, e, "shift")


def ended_windows(plant: PlantConfig, site: str, after_ms: int, now_ms: int) -> list[ReportWindow]:
    """Return the shifts of a site that ended in ``(after_ms, now_ms]``, oldest first."""
    if now_ms <= after_ms:
        return []
    lo = after_ms - 2 * 86_400_000
    out = []
    seen = set()
    for w in _windows(plant, site, lo, now_ms + 1, "shift"):
        full = _unclipped(plant, site, w)
        if after_ms < full.end_ms <= now_ms and full.label not in seen:
            seen.add(full.label)
            out.append(full)
    return out


def top_losses(reason_ms: Mapping[str, int], *, first: int = 5) -> list[dict[str, Any]]:
    """Return a Pareto of stop time by reason: the largest first, with share and running share."""
    total = sum(v for v in reason_ms.values() if v > 0)
    rows = sorted(((k, int(v)) for k, v in reason_ms.items() if v > 0), key=lambda r: (-r[1], r[0]))
    out, running = [], 0
    for reason, ms in rows[:first]:
        running += ms
        out.append(
            {
                "reason": reason,
                "ms": ms,
                "share": ms / total if total else 0.0,
                "cumulative": running / total if total else 0.0,
            }
        )
    return out


def _under(source: str, scope: str) -> bool:
    prefix = scope.strip("/")
    return not prefix or source == prefix or source.startswith(prefix + "/")


def _alarm_summary(historian: Historian, enterprise: str, scope: str, lo: int, hi: int) -> dict:
    from indunet.plant.alarm_service import AlarmStore

    events = AlarmStore(historian).events(
        enterprise, start_ms=lo, end_ms=hi, limit=MAX_ALARM_EVENTS
    )
    mine = [e for e in events if _under(str(e.get("source") or ""), scope)]
    raised = [e for e in mine if e["kind"] == "raised"]
    acked = [e for e in mine if e["kind"] == "acknowledged"]
    return {
        "raised": len(raised),
        "acknowledged": len(acked),
        "returned": sum(1 for e in mine if e["kind"] == "returned"),
        "by_priority": {
            p: sum(1 for e in raised if e["priority"] == p)
            for p in sorted({str(e["priority"]) for e in raised})
        },
        "rows": [
            {k: e.get(k) for k in ("ts_ms", "kind", "alarm_id", "priority", "message", "by")}
            for e in mine[:200]
        ],
        "truncated": len(events) >= MAX_ALARM_EVENTS,
    }


def _orders(historian: Historian, enterprise: str, scope: str) -> list[dict[str, Any]]:
    from indunet.business.store import BusinessStore

    try:
        rows = BusinessStore(historian).records(enterprise, "production_orders")
    except DataError:
        return []
    out = []
    for r in rows:
        line = r.get("line") or ""
        if scope.strip("/") and not (_under(line, scope) or _under(scope, line)):
            continue
        if str(r.get("status")) in ("done", "cancelled", "closed"):
            continue
        qty = float(r["quantity"])
        done = float(r.get("done_quantity") or 0)
        out.append(
            {
                "order_id": r["order_id"],
                "item": r["item"],
                "line": line,
                "quantity": qty,
                "done": done,
                "progress": done / qty if qty else 0.0,
                "due_at": str(r.get("due_at") or ""),
                "status": str(r.get("status") or ""),
            }
        )
    return out[:100]


def _plan(plant: PlantConfig, scope: str, machines: Mapping[str, Mapping[str, Any]]) -> float:
    """Return the planned output: each machine's planned busy time over its ideal cycle time."""
    total = 0.0
    for m in scope_machines(plant, scope):
        cycle = m.ideal_cycle()
        e = machines.get(m.id)
        if cycle and e:
            total += float(e["pbt_ms"]) / (cycle * 1000.0)
    return total


#: extra sections a server adds (handover notes, Andon figures): (enterprise, scope, lo, hi) →
Extra = Callable[[str, str, int, int], Any]


def build_report(
    store: PlantStore,
    historian: Historian,
    plant: PlantConfig,
    enterprise: str,
    scope: str,
    window: ReportWindow,
    *,
    now_ms: int,
    open_part: OpenPart = None,
    extras: Mapping[str, Extra] | None = None,
) -> dict[str, Any]:
    """Return the report of ``scope`` (a site or a line) for one shift or day."""
    lo, hi = window.start_ms, min(window.end_ms, max(now_ms, window.start_ms + 1))
    by: Literal["shift", "day"] = "shift" if window.kind == "shift" else "day"
    oee = oee_report(store, historian, plant, enterprise, scope, lo, hi, by=by, open_part=open_part)
    groups = [g for g in oee["groups"] if g["label"] == window.label] or [oee["total"]]
    shift_oee = {k: v for k, v in groups[0].items() if k not in ("label", "start_ms", "end_ms")}
    energy = energy_report(
        store, historian, plant, enterprise, scope, lo, hi, bucket="hour", open_part=open_part
    )
    stops = stops_report(
        store, plant, enterprise, scope, lo, hi, unassigned=True, min_ms=UNEXPLAINED_MIN_MS
    )
    site = plant.site(window.site)
    plan = _plan(plant, scope, oee["machines"])
    lines = {
        k: {kk: v[kk] for kk in ("availability", "performance", "quality", "oee", "good", "scrap")}
        for k, v in oee["lines"].items()
    }
    doc: dict[str, Any] = {
        "enterprise": enterprise,
        "scope": scope.strip("/") or "*",
        "site": window.site,
        "kind": window.kind,
        "label": window.label,
        "start_ms": window.start_ms,
        "end_ms": window.end_ms,
        "complete": now_ms >= window.end_ms,
        "generated_ms": now_ms,
        "timezone": site.calendar.timezone,
        "oee": shift_oee,
        "oee_target": site.oee_target,
        "lines": lines,
        "output": {
            "good": shift_oee["good"],
            "scrap": shift_oee["scrap"],
            "produced": shift_oee["produced"],
            "plan": plan,
            "vs_plan": shift_oee["good"] / plan if plan else None,
        },
        "top_losses": top_losses(shift_oee["reason_ms"]),
        "unexplained_stops": {
            "count": len(stops),
            "ms": sum(s["duration_ms"] for s in stops),
            "rows": stops[:100],
        },
        "alarms": _alarm_summary(historian, enterprise, scope, lo, hi),
        "energy": {
            k: energy["total"][k]
            for k in ("kwh", "idle_kwh", "off_kwh", "good_parts", "kwh_per_good_part", "co2_kg")
        },
        "orders": _orders(historian, enterprise, scope),
        "warnings": list(shift_oee.get("warnings", [])) + list(energy.get("warnings", []))[:10],
    }
    for name, extra in (extras or {}).items():
        doc[name] = extra(enterprise, doc["scope"], window.start_ms, window.end_ms)
    return doc


# ---------------------------------------------------------------------------------- rendering
def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f} %"


def _dur(ms: Any) -> str:
    if ms is None:
        return "–"
    s = round(float(ms) / 1000)
    h, rest = divmod(s, 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def _num(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    return f"{float(v):,.{digits}f}"


def _local(ms: Any, tz: str) -> str:
    from zoneinfo import ZoneInfo

    if ms is None:
        return "–"
    return (
        datetime.fromtimestamp(int(ms) / 1000, UTC)
        .astimezone(ZoneInfo(tz))
        .strftime("%Y-%m-%d %H:%M")
    )


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=_pct, dur=_dur, num=_num, local=_local)
    return env


_ENV: jinja2.Environment | None = None


def render_html(doc: Mapping[str, Any], links: list[tuple[str, str]] | None = None) -> str:
    """Return the report as one self-contained, print-ready HTML page (``links``: downloads)."""
    global _ENV
    if _ENV is None:
        _ENV = _env()
    return _ENV.get_template("shift_report.html").render(r=doc, links=links or [])


def _rows(doc: Mapping[str, Any]) -> Iterable[tuple[str, str, Any]]:
    """Yield (section, field, value) rows: the report flattened for CSV and the summary sheet."""
    for k in ("enterprise", "scope", "site", "kind", "label", "start_ms", "end_ms", "complete"):
        yield "report", k, doc[k]
    yield "report", "oee_target", doc["oee_target"]
    for k in ("availability", "performance", "quality", "oee", "pbt_ms", "apt_ms"):
        yield "oee", k, doc["oee"][k]
    for k in ("produced", "good", "scrap", "ideal_ms"):
        yield "oee", k, doc["oee"][k]
    for k, v in sorted(doc["oee"]["stop_ms"].items()):
        yield "stop_ms", k, v
    for k, v in doc["output"].items():
        yield "output", k, v
    for row in doc["top_losses"]:
        yield "top_losses", row["reason"], row["ms"]
    yield "unexplained_stops", "count", doc["unexplained_stops"]["count"]
    yield "unexplained_stops", "ms", doc["unexplained_stops"]["ms"]
    for k in ("raised", "acknowledged", "returned"):
        yield "alarms", k, doc["alarms"][k]
    for k, v in doc["energy"].items():
        yield "energy", k, v
    for o in doc["orders"]:
        yield "orders", o["order_id"], f"{o['done']:g}/{o['quantity']:g}"
    andon = doc.get("andon") or {}
    for row in andon.get("stats", []):
        key = f"{row['line']} {row['reason']}"
        yield "andon", f"{key} calls", row["calls"]
        yield "andon", f"{key} mtta_ms", row["mtta_ms"]
        yield "andon", f"{key} mttr_ms", row["mttr_ms"]
    for n in doc.get("handover") or []:
        yield "handover", f"{n['line']} {n['author']}", n["text"]


def render_csv(doc: Mapping[str, Any]) -> str:
    """Return the report as CSV rows ``section,field,value`` (numbers unrounded)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "field", "value"])
    for section, key, value in _rows(doc):
        w.writerow([section, key, _cell(value)])
    return out.getvalue()


def _cell(value: Any) -> Any:
    """Return a value safe for a spreadsheet cell (no formula injection from notes)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def render_xlsx(doc: Mapping[str, Any]) -> bytes:
    """Return the report as an XLSX workbook: a summary sheet and one sheet per list."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    ws.append(["section", "field", "value"])
    for section, key, value in _rows(doc):
        ws.append([section, key, _cell(value)])
    sheets = {
        "Losses": (["reason", "ms", "share", "cumulative"], doc["top_losses"]),
        "Unexplained stops": (
            ["machine", "start_ms", "end_ms", "state", "duration_ms"],
            doc["unexplained_stops"]["rows"],
        ),
        "Alarms": (
            ["ts_ms", "kind", "alarm_id", "priority", "message", "by"],
            doc["alarms"]["rows"],
        ),
        "Orders": (
            ["order_id", "item", "line", "quantity", "done", "progress", "due_at"],
            doc["orders"],
        ),
        "Andon": (
            ["line", "reason", "calls", "open", "mtta_ms", "mttr_ms"],
            (doc.get("andon") or {}).get("stats", []),
        ),
        "Handover": (["line", "shift", "author", "created_ms", "text"], doc.get("handover") or []),
    }
    for title, (cols, rows) in sheets.items():
        sheet = wb.create_sheet(title)
        sheet.append(cols)
        for row in rows:
            sheet.append([_cell(row.get(c)) for c in cols])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def render(doc: Mapping[str, Any], fmt: str) -> bytes:
    """Return the report in ``fmt`` (html, xlsx or csv) as bytes."""
    if fmt == "html":
        return render_html(doc).encode()
    if fmt == "csv":
        return render_csv(doc).encode()
    if fmt == "xlsx":
        return render_xlsx(doc)
    raise DataError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")


def file_name(doc: Mapping[str, Any], fmt: str) -> str:
    """Return a file name such as ``report_s1-press-l1_2026-06-01_early.html``."""
    scope = str(doc["scope"]).replace("/", "-").replace("*", "all")
    return f"report_{scope}_{str(doc['label']).replace(' ', '_')}.{fmt}"
