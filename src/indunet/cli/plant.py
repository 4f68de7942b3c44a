"""`indunet plant …`: business records, alarms, machine states, OEE and energy."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from indunet.cli.common import (
    DataDir,
    Db,
    Enterprise,
    Json,
    _iso,
    _open,
    _print_rows,
    _settings,
    _time,
    app,
    guarded,
)
from indunet.config import Settings
from indunet.errors import DataError

plant_app = typer.Typer(
    help="Plant analytics and the business data beside it (inventory, orders, shipments).",
    no_args_is_help=True,
)
app.add_typer(plant_app, name="plant")
BUSINESS_KINDS = (
    "items, inventory, purchase_orders, sales_orders, production_orders, shipments, "
    "customer_equipment"
)


def _business(settings: Settings):
    from indunet.business.store import BusinessStore

    historian = _open(settings)
    return historian, BusinessStore(historian)


@plant_app.command("import")
@guarded
def plant_import(
    kind: Annotated[str, typer.Argument(help=f"What the file holds: {BUSINESS_KINDS}.")],
    path: Annotated[Path, typer.Argument(help="CSV (.csv, .csv.gz), Excel (.xlsx) or JSON file.")],
    timezone: Annotated[
        str | None, typer.Option(help="IANA zone of times without an offset (default UTC).")
    ] = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Import an ERP or warehouse export; refused rows are listed and kept as dead letters."""
    from indunet.business.files import read_rows
    from indunet.business.records import BusinessKind

    try:
        business_kind = BusinessKind(kind)
    except ValueError:
        raise DataError(f"unknown kind {kind!r}; use one of {BUSINESS_KINDS}") from None
    rows, warnings, first_row = read_rows(path, business_kind)
    settings = _settings(data_dir, db, enterprise)
    historian, store = _business(settings)
    try:
        report = store.load(
            settings.enterprise,
            business_kind,
            rows,
            source=path.name,
            now_ms=int(time.time() * 1000),
            tz=timezone,
            warnings=warnings,
            first_row=first_row,
        )
    finally:
        historian.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        for warning in report.warnings:
            typer.echo(f"warning: {warning}", err=True)
        for refused in report.refused[:50]:
            typer.echo(f"refused: {refused['ref']}: {refused['reason']}", err=True)
        typer.echo(
            f"stored {report.stored} {business_kind.value} rows, refused {len(report.refused)}"
        )
    if report.refused and not report.stored:
        raise typer.Exit(2)


def _business_view(
    kind: str, data_dir: Path | None, db: str | None, enterprise: str | None
) -> list[dict[str, Any]]:
    settings = _settings(data_dir, db, enterprise)
    historian, store = _business(settings)
    try:
        return store.view(settings.enterprise, kind, now_ms=int(time.time() * 1000))
    finally:
        historian.close()


def _with_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Show epoch-ms fields as UTC times for people."""
    return [
        {
            k: _iso(v) if isinstance(v, int) and (k.endswith("_at") or k in {"as_of", "eta"}) else v
            for k, v in r.items()
        }
        for r in rows
    ]


@plant_app.command("inventory")
@guarded
def plant_inventory(
    below_cover: Annotated[bool, typer.Option(help="Only items below their cover.")] = False,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Show the newest stock per item and warehouse with its days of cover."""
    rows = _business_view("inventory", data_dir, db, enterprise)
    if below_cover:
        rows = [r for r in rows if r["below_cover"]]
    _print_rows(rows if as_json else _with_times(rows), as_json)


@plant_app.command("orders")
@guarded
def plant_orders(
    kind: Annotated[
        str, typer.Option(help="purchase (incoming materials), sales or production.")
    ] = "purchase",
    late: Annotated[bool, typer.Option(help="Only late orders.")] = False,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Show orders with progress and lateness."""
    if kind not in {"purchase", "sales", "production"}:
        raise DataError(f"--kind {kind!r}: use purchase, sales or production")
    rows = _business_view(f"{kind}_orders", data_dir, db, enterprise)
    if late:
        rows = [r for r in rows if r["late"]]
    _print_rows(rows if as_json else _with_times(rows), as_json)


@plant_app.command("shipments")
@guarded
def plant_shipments(
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Show shipments and vehicles: planned, on the road, arrived, late."""
    rows = _business_view("shipments", data_dir, db, enterprise)
    _print_rows(rows if as_json else _with_times(rows), as_json)


# ---------------------------------------------------------------------------- plant: alarms
def _start_alarms(app: Any, historian: Any, settings: Settings, demo_plants: Any = None) -> Any:
    """Start the alarm service when rules or anomaly monitors exist (config, API, demo)."""
    from indunet.api.routes.alarms import start_alarm_service
    from indunet.chain.live import chain_alarm_extras
    from indunet.plant.alarm_service import AlarmStore

    extra: dict[str, Any] = {"extra_rules": [], "known_tags": []}
    if demo_plants is not None:
        from indunet.sim.alarm_rules import demo_alarm_rules, demo_known_tags

        extra = {"extra_rules": demo_alarm_rules(), "known_tags": demo_known_tags(demo_plants)}
    chain = chain_alarm_extras(historian, settings.enterprise)
    if chain["known_tags"]:  # chain alarms built in, so their states survive a restart
        extra["extra_rules"] = [*extra["extra_rules"], *chain["extra_rules"]]
        extra["known_tags"] = [*extra["known_tags"], *chain["known_tags"]]
    store = AlarmStore(historian)
    if (
        not extra["extra_rules"]
        and not settings.plant.alarms
        and not settings.plant.rul  # built-in RUL rules (alarm_service.rul_rules)
        and not settings.plant.monitors
        and not store.rule_docs(settings.enterprise)
        and not store.monitor_docs(settings.enterprise)
    ):
        return None
    service = start_alarm_service(app, historian, settings, **extra)
    watcher = getattr(app.state, "plant_watcher", None)
    if watcher is not None:  # machine states from the plant watcher feed state-duration rules
        service.attach(watcher)
    typer.echo(f"alarms: {len(service.rules())} rules evaluated every {service.interval_s:g} s")
    return service


def _start_rul(app: Any, historian: Any, settings: Settings) -> Any:
    """Start RUL estimates when ``[[plant.rul]]`` is configured (after the alarms); else None."""
    if not settings.plant.rul:
        return None
    from indunet.condition.rul_service import RulService

    service = RulService(historian, settings, alarms=getattr(app.state, "alarms", None))
    app.state.rul = service
    service.start()
    typer.echo(
        f"RUL: {sum(len(c.machines) for c in settings.plant.rul)} machines in "
        f"{len(settings.plant.rul)} asset classes, estimated every {service.interval_s:g} s"
    )
    return service


def _alarm_action(settings: Settings, act: Callable[[Any], list[dict[str, Any]]]) -> list[dict]:
    """Apply an operator action to the stored alarm snapshot (no running service needed)."""
    from indunet.plant.alarm_service import AlarmService
    from indunet.plant.alarms import AlarmActionError

    historian = _open(settings)
    try:
        return act(AlarmService(historian, settings))
    except AlarmActionError as exc:
        raise DataError(str(exc)) from exc
    finally:
        historian.close()


@plant_app.command("alarms")
@guarded
def plant_alarms(
    active: Annotated[
        bool, typer.Option("--active", help="Only alarms whose condition holds now.")
    ] = False,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """List alarms not in the normal state (unack, acked, returned, shelved, …), newest first."""
    settings = _settings(data_dir, db, enterprise)
    alarms = _alarm_action(settings, lambda s: [a.to_dict() for a in s.alarms()])
    if active:
        alarms = [a for a in alarms if a["active"]]
    alarms.sort(key=lambda a: -(a["raised_ms"] or 0))
    if as_json:
        _print_rows(alarms, True)
        return
    cols = ("alarm_id", "state", "priority", "value", "raised_ms", "acked_by", "shelved_until_ms")
    _print_rows(
        [
            {c: _iso(a[c]) if c.endswith("_ms") and a[c] is not None else a[c] for c in cols}
            for a in alarms
        ],
        False,
    )


@plant_app.command("ack")
@guarded
def plant_ack(
    alarm_id: Annotated[str, typer.Argument(help="RULE@TAG, as `indunet plant alarms` shows.")],
    by: Annotated[str, typer.Option("--by", help="Operator name.")],
    comment: Annotated[str | None, typer.Option(help="Why, or what was done.")] = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Acknowledge an alarm (stored; a running service picks it up at its next start)."""
    settings = _settings(data_dir, db, enterprise)
    events = _alarm_action(settings, lambda s: s.acknowledge(alarm_id, by=by, comment=comment))
    _print_rows(events if as_json else _with_times(events), as_json)


@plant_app.command("shelve")
@guarded
def plant_shelve(
    alarm_id: Annotated[str, typer.Argument(help="RULE@TAG, as `indunet plant alarms` shows.")],
    until: Annotated[str, typer.Option("--until", help="End: epoch ms or RFC 3339.")],
    by: Annotated[str, typer.Option("--by", help="Operator name.")],
    reason: Annotated[str | None, typer.Option(help="Why it is shelved.")] = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Shelve an alarm until a time (at most the rule's max_shelve_s ahead)."""
    until_ms = _time(until, 0, "--until")
    settings = _settings(data_dir, db, enterprise)
    events = _alarm_action(
        settings, lambda s: s.shelve(alarm_id, until_ms=until_ms, by=by, comment=reason)
    )
    _print_rows(events if as_json else _with_times(events), as_json)


@plant_app.command("scan")
@guarded
def plant_scan(
    monitor_id: Annotated[str, typer.Argument(help="Monitor id ([[plant.monitors]] or API).")],
    start: Annotated[
        str | None, typer.Option("--start", help="Epoch ms or RFC 3339 (default: -7 days).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Epoch ms or RFC 3339 (default: now).")
    ] = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Score an anomaly monitor over history: explained anomalies and data quality (no alarms)."""
    end_ms = _time(end, int(time.time() * 1000) + 1, "--end")
    start_ms = _time(start, end_ms - 7 * 86_400_000, "--start")
    if end_ms <= start_ms:
        raise DataError("--end must be after --start")
    settings = _settings(data_dir, db, enterprise)
    out = _alarm_action(settings, lambda s: [s.scan_monitor(monitor_id, start_ms, end_ms)])[0]
    rows: list[dict[str, Any]] = []
    for r in out["results"]:
        for a in r["anomalies"]:
            rows.append(
                {
                    "kind": "anomaly",
                    "tag": a["tag"],
                    "ts": a["ts_ms"],
                    "score": a["score"],
                    "text": a["text"],
                }
            )
        for f in r["data_quality"]:
            rows.append(
                {
                    "kind": f["kind"],
                    "tag": r["tag"],
                    "ts": f["start_ms"],
                    "score": None,
                    "text": f["detail"],
                }
            )
        if r["status"] != "ok":
            rows.append(
                {"kind": "status", "tag": r["tag"], "ts": None, "score": None, "text": r["status"]}
            )
    if as_json:
        _print_rows(rows, True, {"monitor": monitor_id, "start_ms": start_ms, "end_ms": end_ms})
        return
    _print_rows([{**r, "ts": _iso(r["ts"]) if r["ts"] is not None else ""} for r in rows], False)


# ---------------------------------------------------------------------------- plant: analytics
def _start_plant_watcher(app: Any, historian: Any, settings: Settings, history_h: int = 168) -> Any:
    """Start the plant watcher when machines are configured (file or API); else None."""
    from indunet.plant.watch import PlantWatcher

    watcher = PlantWatcher(historian, settings, history_ms=history_h * 3_600_000)
    if not watcher.plant.machines:
        return None
    watcher.start()
    app.state.plant_watcher = watcher
    typer.echo(f"plant: watching {len(watcher.plant.machines)} machines every 2 s")
    return watcher


def _plant_session(
    data_dir: Path | None, db: str | None, enterprise: str | None, *, follow: bool = True
):
    from indunet.plant.store import PlantStore

    settings = _settings(data_dir, db, enterprise)
    historian = _open(settings)
    try:
        store = PlantStore(historian, settings.plant)
        plant = store.effective(settings.enterprise)
        if follow:  # derived data follows what was written since (an import, say)
            from indunet.plant.follow import bring_up_to_date

            done = bring_up_to_date(
                store,
                historian,
                settings.enterprise,
                plant.machines,
                now_ms=int(time.time() * 1000),
            )
            for problem in done.errors:
                typer.echo(f"warning: state timeline not brought up to date: {problem}", err=True)
        return settings, historian, store, plant
    except BaseException:
        historian.close()
        raise


def _plant_range(start: str | None, end: str | None) -> tuple[int, int]:
    hi = _time(end, int(time.time() * 1000), "--end")
    lo = _time(start, hi - 86_400_000, "--start")
    if hi <= lo:
        raise DataError(f"--end ({_iso(hi)}) must be after --start ({_iso(lo)})")
    return lo, hi


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


Start = Annotated[str | None, typer.Option(help="Epoch ms or RFC 3339 (default: end - 24 h).")]
End = Annotated[str | None, typer.Option(help="Epoch ms or RFC 3339 (default: now).")]


@plant_app.command("machines")
@guarded
def plant_machines(
    prefix: Annotated[str | None, typer.Option(help="Only machines under this path.")] = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """List the configured machines with their newest stored state."""
    from indunet.plant.report import scope_machines

    settings, historian, store, plant = _plant_session(data_dir, db, enterprise)
    try:
        sources = store.machine_sources(settings.enterprise)
        rows = []
        for m in scope_machines(plant, prefix) if plant.machines else []:
            last = store.last_segment(settings.enterprise, m.id)
            rows.append(
                {
                    "id": m.id,
                    "line": m.line,
                    "source": sources.get(m.id, "file"),
                    "power_tag": m.power_tag,
                    "last_state": last[2] if last else None,
                    "since": (last[0] if as_json else _iso(last[0])) if last else None,
                }
            )
    finally:
        historian.close()
    _print_rows(rows, as_json)


@plant_app.command("repair")
@guarded
def plant_repair(
    scope: Annotated[
        str, typer.Argument(help="Machine, line, area or site prefix ('' = all).")
    ] = "",
    start: Annotated[
        str | None, typer.Option(help="Epoch ms or RFC 3339 (default: the first power sample).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Epoch ms or RFC 3339 (default: the newest power sample).")
    ] = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Rebuild derived data (state timelines) from raw data; stop reasons are kept."""
    from indunet.plant.follow import repair_overlaps
    from indunet.plant.report import scope_machines
    from indunet.plant.watch import recompute_range

    settings, historian, store, plant = _plant_session(data_dir, db, enterprise, follow=False)
    rows = []
    try:
        ent = settings.enterprise
        machines = scope_machines(plant, scope)
        # overlapping rows cannot be read, so not replaced piecewise: their stretch goes first
        repair_overlaps(store, historian, ent, machines, now_ms=int(time.time() * 1000))
        for m in machines:
            if m.power_tag is None or m.thresholds is None:
                rows.append({"machine": m.id, "segments": 0, "note": "no power_tag or thresholds"})
                continue
            tag = f"{m.id}/{m.power_tag}"
            newest = historian.latest(ent, tag)
            if not newest.num_rows:
                rows.append({"machine": m.id, "segments": 0, "note": "no power data"})
                continue
            hi = _time(end, int(newest.column("ts")[0].as_py()) + 1, "--end")
            first = historian.series(ent, tag, 0, hi, limit=1)
            default_lo = int(first.column("ts")[0].as_py()) if first.num_rows else hi - 1
            lo = _time(start, default_lo, "--start")
            if hi <= lo:
                raise DataError(f"--end ({hi}) must be after --start ({lo})")
            if start is None:  # a full rebuild: nothing stored outside the data survives
                store.sql.execute(
                    "DELETE FROM plant_states WHERE enterprise = $1 AND machine = $2",
                    [ent, m.id],
                )
            tl = recompute_range(store, historian, ent, m, lo, hi)
            rows.append({"machine": m.id, "segments": len(tl), "note": ""})
        historian.follow_tags(
            ent, [f"{m.id}/{m.power_tag}" for m in plant.machines if m.power_tag is not None]
        )
        # what was rebuilt needs no more following; other machines' late data still waits
        rebuilt = [f"{m.id}/{m.power_tag}" for m in machines if m.power_tag and m.thresholds]
        journal = historian.raw_changes(ent, rebuilt)
        if journal.num_rows:
            historian.drop_raw_changes(journal.column("id").to_pylist())
    finally:
        historian.close()
    _print_rows(rows, as_json)


@plant_app.command("states")
@guarded
def plant_states(
    machine: Annotated[str, typer.Argument(help="Machine id site/area/line/machine.")],
    start: Start = None,
    end: End = None,
    recompute: Annotated[
        bool, typer.Option(help="Recompute the range from the historian first, and store it.")
    ] = False,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Show a machine's stored state timeline (optionally recomputed from power data)."""
    from indunet.plant.watch import recompute_range

    lo, hi = _plant_range(start, end)
    settings, historian, store, plant = _plant_session(data_dir, db, enterprise)
    try:
        cfg = plant.machine(machine.strip("/"))
        if recompute:
            recompute_range(store, historian, settings.enterprise, cfg, lo, hi)
        tl = store.timeline(settings.enterprise, cfg.id, lo, hi)
    finally:
        historian.close()
    names = ("off", "idle", "running", "offline")
    rows = [
        {
            "start": int(s) if as_json else _iso(int(s)),
            "end": int(e) if as_json else _iso(int(e)),
            "state": names[st],
            "reason": r,
            "minutes": round((int(e) - int(s)) / 60_000, 2),
        }
        for s, e, st, r in zip(tl.start_ms, tl.end_ms, tl.state, tl.reasons(), strict=True)
    ]
    _print_rows(rows, as_json, {"machine": cfg.id, "ms_by_state": tl.ms_by_state()})


@plant_app.command("oee")
@guarded
def plant_oee(
    scope: Annotated[str, typer.Argument(help="Machine, line, area or site prefix ('' = all).")],
    start: Start = None,
    end: End = None,
    by: Annotated[str, typer.Option(help="Group by none, shift or day.")] = "none",
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Show OEE (ISO 22400-2) with its time elements and counts, per group and in total."""
    from indunet.plant.report import oee_report

    lo, hi = _plant_range(start, end)
    settings, historian, store, plant = _plant_session(data_dir, db, enterprise)
    try:
        ent = settings.enterprise
        result = oee_report(store, historian, plant, ent, scope, lo, hi, by=by)
    finally:
        historian.close()
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    rows = [{"group": g["label"], **_oee_cols(g)} for g in result["groups"]]
    rows.append({"group": "total", **_oee_cols(result["total"])})
    _print_rows(rows, False)
    for warning in result["total"]["warnings"][:20]:
        typer.echo(f"warning: {warning}", err=True)


def _oee_cols(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "planned_h": round(e["pbt_ms"] / 3_600_000, 2),
        "running_h": round(e["apt_ms"] / 3_600_000, 2),
        "produced": e["produced"],
        "good": e["good"],
        "A": _pct(e["availability"]),
        "P": _pct(e["performance"]),
        "Q": _pct(e["quality"]),
        "OEE": _pct(e["oee"]),
    }


@plant_app.command("energy")
@guarded
def plant_energy(
    scope: Annotated[str, typer.Argument(help="Machine, line, area or site prefix ('' = all).")],
    start: Start = None,
    end: End = None,
    bucket: Annotated[str, typer.Option(help="hour, day or shift.")] = "hour",
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Show kWh per bucket, idle/off energy, kWh per good part and CO2."""
    from indunet.plant.report import energy_report

    lo, hi = _plant_range(start, end)
    settings, historian, store, plant = _plant_session(data_dir, db, enterprise)
    try:
        ent = settings.enterprise
        result = energy_report(store, historian, plant, ent, scope, lo, hi, bucket=bucket)
    finally:
        historian.close()
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    rows = [
        {
            "bucket": b["label"] or _iso(b["start_ms"]),
            "kwh": round(b["kwh"], 3),
            "idle_kwh": round(b["idle_kwh"], 3),
            "off_kwh": round(b["off_kwh"], 3),
            "kwh_per_good_part": "-"
            if b["kwh_per_good_part"] is None
            else round(b["kwh_per_good_part"], 4),
            "co2_kg": round(b["co2_kg"], 3),
        }
        for b in result["buckets"]
    ]
    t = result["total"]
    rows.append(
        {
            "bucket": "total",
            "kwh": round(t["kwh"], 3),
            "idle_kwh": round(t["idle_kwh"], 3),
            "off_kwh": round(t["off_kwh"], 3),
            "kwh_per_good_part": "-"
            if t["kwh_per_good_part"] is None
            else round(t["kwh_per_good_part"], 4),
            "co2_kg": round(t["co2_kg"], 3),
        }
    )
    _print_rows(rows, False)


@plant_app.command("learn-cycle")
@guarded
def plant_learn_cycle(
    machine: Annotated[str, typer.Argument(help="Machine id site/area/line/machine.")],
    start: Annotated[
        str | None, typer.Option(help="Epoch ms or RFC 3339 (default: end - 7 days).")
    ] = None,
    end: End = None,
    percentile: Annotated[
        float, typer.Option(min=50, max=99.9, help="Percentile of the running rate.")
    ] = 95.0,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Propose an ideal cycle time from the part counter and the running time (TOML snippet)."""
    import numpy as np

    from indunet.plant.counters import counter_deltas
    from indunet.plant.cycles import learn_cycle
    from indunet.plant.states import MachineState
    from indunet.plant.watch import usable_values

    hi = _time(end, int(time.time() * 1000), "--end")
    lo = _time(start, hi - 7 * 86_400_000, "--start")
    if hi <= lo:
        raise DataError(f"--end ({_iso(hi)}) must be after --start ({_iso(lo)})")
    settings, historian, store, plant = _plant_session(data_dir, db, enterprise)
    try:
        cfg = plant.machine(machine.strip("/"))
        if cfg.total_counter is None:
            raise DataError(f"machine {cfg.id} has no total_counter; nothing to learn from")
        tag = f"{cfg.id}/{cfg.total_counter.tag}"
        table = historian.series_many(settings.enterprise, [tag], lo, hi).get(tag)
        tl = store.timelines(settings.enterprise, cfg.id, lo, hi).get(cfg.id)
    finally:
        historian.close()
    if table is None or not table.num_rows:
        raise DataError(f"{tag}: no counter data between {_iso(lo)} and {_iso(hi)}")
    if tl is None or not len(tl):
        raise DataError(
            f"{cfg.id}: no stored states between {_iso(lo)} and {_iso(hi)}; "
            f"run indunet plant states {cfg.id} --recompute"
        )
    ts, v = usable_values(table)
    good = np.isfinite(v)
    deltas = counter_deltas(ts[good], v[good], cfg.total_counter, machine=cfg.id)
    run = tl.state == MachineState.RUNNING
    running = np.stack([np.maximum(tl.start_ms[run], lo), np.minimum(tl.end_ms[run], hi)], 1)
    proposal = learn_cycle(
        deltas.ts_ms, deltas.delta, running, percentile=percentile, machine=cfg.id
    )
    product = cfg.default_product or "part"
    current = cfg.ideal_cycle()
    if as_json:
        typer.echo(json.dumps({**proposal.as_dict(), "product": product, "current_s": current}))
        return
    now = "not set" if current is None else f"{current:g} s"
    typer.echo(f"# {proposal.note}; configured now: {now}")
    typer.echo("[[plant.machines]]")
    typer.echo(f'id = "{cfg.id}"')
    typer.echo(f'ideal_cycle_s = {{ "{product}" = {proposal.ideal_cycle_s:g} }}')


@plant_app.command("learn-thresholds")
@guarded
def plant_learn_thresholds(
    machine: Annotated[str, typer.Argument(help="Machine id site/area/line/machine.")],
    start: Annotated[
        str | None, typer.Option(help="Epoch ms or RFC 3339 (default: end - 7 days).")
    ] = None,
    end: End = None,
    tag: Annotated[
        str | None, typer.Option(help="Power tag when the machine is not configured yet.")
    ] = None,
    min_dwell_s: Annotated[float, typer.Option(min=0, help="Minimum dwell to propose.")] = 0.0,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Propose off/idle/running thresholds from the power history, as a TOML snippet."""
    from indunet.plant.config import MachineConfig
    from indunet.plant.states import learn_thresholds
    from indunet.plant.watch import power_points

    hi = _time(end, int(time.time() * 1000), "--end")
    lo = _time(start, hi - 7 * 86_400_000, "--start")
    if hi <= lo:
        raise DataError(f"--end ({_iso(hi)}) must be after --start ({_iso(lo)})")
    settings, historian, _, plant = _plant_session(data_dir, db, enterprise)
    try:
        machine = machine.strip("/")
        try:
            cfg = plant.machine(machine)
            if tag is not None:
                cfg = cfg.model_copy(update={"power_tag": tag})
        except DataError:
            if tag is None:
                raise DataError(
                    f"machine {machine!r} is not configured; name its power tag with --tag"
                ) from None
            cfg = MachineConfig(id=machine, power_tag=tag)
        ts, v = power_points(historian, settings.enterprise, cfg, lo, hi)
    finally:
        historian.close()
    if not len(ts):
        raise DataError(
            f"{cfg.id}/{cfg.power_tag}: no power data between {_iso(lo)} and {_iso(hi)}"
        )
    proposal = learn_thresholds(v, min_dwell_s=min_dwell_s, machine=cfg.id)
    th = proposal.thresholds
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "machine": cfg.id,
                    "samples": len(ts),
                    "thresholds": th.model_dump(),
                    "centres": proposal.centres,
                    "shares": proposal.shares,
                    "note": proposal.note,
                }
            )
        )
        return
    typer.echo(f"# {proposal.note}; {len(ts)} samples, cluster centres {proposal.centres}")
    typer.echo("[[plant.machines]]")
    typer.echo(f'id = "{cfg.id}"')
    typer.echo(f'power_tag = "{cfg.power_tag}"')
    typer.echo(f'power_unit = "{cfg.power_unit}"')
    typer.echo(
        f"thresholds = {{ off_below = {th.off_below:.6g}, running_above = {th.running_above:.6g}, "
        f"hysteresis = {th.hysteresis:.6g}, min_dwell_s = {th.min_dwell_s:g} }}"
    )


@app.command("check")
@guarded
def check(
    start: Start = None,
    end: End = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Check data integrity; exit 0 when clean, 1 with the list of findings.

    Overlapping or missing timeline rows, counters that went backwards, OEE elements outside
    [0, 1] (over the range, default the last 24 h), tags silent past their expected interval,
    derived data behind raw data.
    """
    from indunet.plant.integrity import check_plant

    lo, hi = _plant_range(start, end)
    settings, historian, store, plant = _plant_session(data_dir, db, enterprise, follow=False)
    try:
        found = check_plant(
            store,
            historian,
            plant,
            settings.enterprise,
            start_ms=lo,
            end_ms=hi,
            now_ms=int(time.time() * 1000),
        )
    finally:
        historian.close()
    if as_json:
        typer.echo(json.dumps({"clean": not found, "findings": [f.as_dict() for f in found]}))
    elif not found:
        typer.echo("clean: no integrity problem found")
    else:
        for f in found:
            typer.echo(f"{f.check}  {f.subject}  {f.message}")
        typer.echo(f"{len(found)} problem(s) found", err=True)
    if found:
        raise typer.Exit(1)


@plant_app.command("report")
@guarded
def plant_report(
    scope: Annotated[str, typer.Argument(help="Site or line (site/area/line).")],
    shift: Annotated[
        str,
        typer.Option(
            "--shift", help="last, current, 'YYYY-MM-DD name' (a shift) or 'YYYY-MM-DD' (a day)."
        ),
    ] = "last",
    fmt: Annotated[str, typer.Option("--format", help="html, xlsx, csv or json.")] = "html",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (default: standard output).")
    ] = None,
    archive: Annotated[
        bool, typer.Option("--archive", help="Also keep it in the report archive.")
    ] = False,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
) -> None:
    """Make the shift (or day) report of a site or line: OEE vs target, losses, energy, notes."""
    from indunet.plant.report_service import make_report
    from indunet.plant.shift_log import ReportArchive
    from indunet.plant.shift_report import FORMATS, render, render_html

    if fmt not in (*FORMATS, "json"):
        raise DataError(f"--format {fmt!r} is not one of html, xlsx, csv, json")
    if fmt == "xlsx" and out is None:
        raise DataError("--format xlsx is binary: name a file with --out")
    settings, historian, store, _ = _plant_session(data_dir, db, enterprise)
    try:
        now = int(time.time() * 1000)
        doc = make_report(historian, store, settings.enterprise, scope, shift, now_ms=now)
        if archive:
            ReportArchive(historian).put(doc, render_html(doc), now_ms=now)
    finally:
        historian.close()
    body = json.dumps(doc, default=str).encode() if fmt == "json" else render(doc, fmt)
    if out is not None:
        out.write_bytes(body)
        typer.echo(f"{doc['kind']} report {doc['scope']} {doc['label']}: {out}", err=True)
    else:
        typer.echo(body.decode())


def _start_reports(app: Any, historian: Any, settings: Settings) -> Any:
    """Start the shift-report schedule and Andon notification when configured; else None."""
    from indunet.plant.delivery import Mailer
    from indunet.plant.notify import WebhookSender
    from indunet.plant.report_service import ReportScheduler, andon_notifier
    from indunet.plant.store import PlantStore

    cfg = settings.plant
    mailer = Mailer(cfg.smtp) if cfg.smtp is not None else None
    sender = None
    alarms = getattr(app.state, "alarms", None)
    if cfg.webhooks and alarms is not None:
        # the alarm service's sender: its outbox is kept with the alarm state, so report and
        # Andon documents not yet delivered are sent again after a restart, like alarm events
        sender = alarms.sender
        app.state.report_webhooks = None  # stopped with the alarm service
    elif cfg.webhooks:
        sender = WebhookSender(cfg.webhooks)
        sender.start()
        app.state.report_webhooks = sender
    else:
        app.state.report_webhooks = None
    if cfg.andon.groups:
        app.state.andon_notify = andon_notifier(cfg.andon, mailer=mailer, webhooks=sender)
    if not cfg.reports.scopes:
        return None
    watcher = getattr(app.state, "plant_watcher", None)
    if watcher is not None:
        store = watcher.store
    else:
        store = PlantStore(historian, cfg, owner=settings.enterprise)
    scheduler = ReportScheduler(
        historian,
        store,
        settings.enterprise,
        cfg.reports,
        mailer=mailer,
        webhooks=sender,
        open_part=watcher.open_segment if watcher is not None else None,
    )
    scheduler.start()
    app.state.report_scheduler = scheduler
    typer.echo(f"reports: {len(cfg.reports.scopes)} scopes reported at each shift's end")
    return scheduler
