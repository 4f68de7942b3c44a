"""Plant analytics: /machines, /states, /stops, /oee, /losses and /energy.

Timelines come from the plant store; when the app runs a `PlantWatcher`
(``app.state.plant_watcher``) its open segment and current states are added.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Query as Q
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from indunet.api.deps import HistorianDep, SettingsDep, parse_time_param, read_json
from indunet.api.middleware import json_body
from indunet.config import Settings
from indunet.errors import DataError
from indunet.plant import report
from indunet.plant.config import PlantConfig, SiteConfig
from indunet.plant.states import StateTimeline
from indunet.plant.store import PlantStore
from indunet.plant.watch import PlantWatcher

router = APIRouter(tags=["plant"])
DAY_MS = 86_400_000


def get_plant_store(request: Request, historian: HistorianDep) -> PlantStore:
    """Return the watcher's store, or one created beside the historian on first use."""
    watcher = _watcher(request)
    if watcher is not None:
        return watcher.store
    store = getattr(request.app.state, "plant_store", None)
    if store is None or store.historian is not historian:
        settings = request.app.state.settings
        store = PlantStore(historian, settings.plant, owner=settings.enterprise)
        request.app.state.plant_store = store
    return store


def _watcher(request: Request) -> PlantWatcher | None:
    return getattr(request.app.state, "plant_watcher", None)


def current_state(
    watcher: PlantWatcher | None, store: PlantStore, ent: str, machine: str
) -> tuple[str | None, int | None]:
    """Return a machine's state and since when: the watcher's live one, else its last stored
    segment's; (None, None) when neither knows."""
    if watcher is not None and watcher.enterprise == ent:
        current = watcher.current(machine)
        if current is not None:
            return current
    last = store.last_segment(ent, machine)
    return (last[2], last[0]) if last is not None else (None, None)


StoreDep = Annotated[PlantStore, Depends(get_plant_store)]
EnterpriseQ = Annotated[str | None, Q(description="Enterprise (tenant)")]


def _now() -> int:
    return int(time.time() * 1000)


def _range(start: str | None, end: str | None, settings: Settings) -> tuple[int, int]:
    hi = parse_time_param("end", end, _now(), settings)
    lo = parse_time_param("start", start, hi - DAY_MS, settings)
    if hi <= lo:
        raise HTTPException(422, f"parameter 'end' ({hi}) must be after 'start' ({lo})")
    if hi - lo > report.MAX_RANGE_MS:
        raise HTTPException(422, "the range from 'start' to 'end' is over 400 days")
    return lo, hi


def _plant(store: PlantStore, enterprise: str) -> PlantConfig:
    return store.effective(enterprise)


def _open_part(request: Request, enterprise: str, settings: Settings) -> report.OpenPart:
    watcher = _watcher(request)
    if watcher is None or watcher.enterprise != enterprise:
        return None
    return watcher.open_segment


async def _reload_watcher(request: Request, enterprise: str) -> None:
    """Make the live watcher read the enterprise's plant config again (after a change)."""
    watcher = _watcher(request)
    if watcher is not None and watcher.enterprise == enterprise:
        await run_in_threadpool(watcher.reload)


def _known(plant: PlantConfig, machine: str) -> None:
    try:
        plant.machine(machine.strip("/"))
    except DataError as exc:
        raise HTTPException(404, str(exc)) from exc


def _rows(tl: StateTimeline, open_from: int | None = None) -> list[dict[str, Any]]:
    names = ("off", "idle", "running", "offline")
    return [
        {
            "start_ms": int(s),
            "end_ms": int(e),
            "state": names[st],
            "reason": r,
            "open": open_from is not None and int(s) >= open_from,
        }
        for s, e, st, r in zip(tl.start_ms, tl.end_ms, tl.state, tl.reasons(), strict=True)
    ]


@router.get("/machines")
def machines(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    prefix: Annotated[str | None, Q(description="Only machines under this path")] = None,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """List the configured machines with their config, current state and since when."""
    ent = enterprise or settings.enterprise
    plant = _plant(store, ent)
    sources = store.machine_sources(ent)
    watcher = _watcher(request)
    found = report.scope_machines(plant, prefix) if plant.machines else []
    out = []
    for m in found:
        state, since = current_state(watcher, store, ent, m.id)
        out.append(
            {
                "id": m.id,
                "line": m.line,
                "site": m.site,
                "source": sources.get(m.id, "file"),
                "state": state,
                "since_ms": since,
                "live": watcher is not None,
                "config": m.model_dump(mode="json"),
            }
        )
    return {"enterprise": ent, "machines": out}


@router.put(
    "/machines/{path:path}",
    openapi_extra=json_body("A machine config, as in [[plant.machines]]"),
)
async def put_machine(
    path: str,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Add or replace a machine's config (JSON document, as in ``[[plant.machines]]``)."""
    doc = await read_json(request, settings.ingest_max_bytes)
    ent = enterprise or settings.enterprise
    machine = await run_in_threadpool(store.put_machine, ent, doc, now_ms=_now(), path=path)
    await _reload_watcher(request, ent)
    return {"enterprise": ent, "machine": machine.model_dump(mode="json")}


class SiteInEffect(BaseModel):
    """A site of the enterprise and the config in effect for it."""

    site: str
    source: Literal["file", "api", "default"] = Field(
        description="indunet.toml, set through this API, or undeclared (UTC, no shifts)"
    )
    machines: int = Field(description="Configured machines on the site")
    config: SiteConfig


class SitesAnswer(BaseModel):
    """The enterprise's sites."""

    enterprise: str
    sites: list[SiteInEffect]


class SiteStored(BaseModel):
    """A site config as stored."""

    enterprise: str
    site: str
    config: SiteConfig


class SiteDeleted(BaseModel):
    """A site config set through the API, forgotten."""

    enterprise: str
    site: str
    deleted: bool


@router.get("/sites", response_model=SitesAnswer)
def sites(store: StoreDep, settings: SettingsDep, enterprise: EnterpriseQ = None) -> dict[str, Any]:
    """List the enterprise's sites in effect: calendar, grid factor, OEE target, and where each
    comes from (``file``: indunet.toml, ``api``: set here, ``default``: a machine's site that no
    table declares: UTC, no shifts)."""
    ent = enterprise or settings.enterprise
    plant = _plant(store, ent)
    sources = store.site_sources(ent)
    names = sorted(set(plant.sites) | {m.site for m in plant.machines})
    return {
        "enterprise": ent,
        "sites": [
            {
                "site": name,
                "source": sources.get(name, "default"),
                "machines": sum(1 for m in plant.machines if m.site == name),
                "config": plant.site(name).model_dump(mode="json"),
            }
            for name in names
        ],
    }


@router.put(
    "/sites/{site}",
    response_model=SiteStored,
    openapi_extra=json_body("A site config, as in [plant.sites.<site>]: calendar, grid factor"),
)
async def put_site(
    site: str,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Set a site's shift calendar, grid emission factor and OEE target for this enterprise.

    OEE, reports and the pages use it from the next request on; a stored site wins over the
    file's table of the same name.
    """
    doc = await read_json(request, settings.ingest_max_bytes)
    ent = enterprise or settings.enterprise
    config = await run_in_threadpool(store.put_site, ent, site, doc, now_ms=_now())
    await _reload_watcher(request, ent)
    return {"enterprise": ent, "site": site, "config": config.model_dump(mode="json")}


@router.delete("/sites/{site}", response_model=SiteDeleted)
async def delete_site(
    site: str,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Forget a site set through the API; the file's table (or UTC, no shifts) applies again."""
    ent = enterprise or settings.enterprise
    if not await run_in_threadpool(store.delete_site, ent, site):
        raise HTTPException(404, f"site {site} was not set through the API in enterprise {ent}")
    await _reload_watcher(request, ent)
    return {"enterprise": ent, "site": site, "deleted": True}


@router.get("/states")
def states(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    machine: Annotated[str, Q(description="Machine id site/area/line/machine")],
    start: Annotated[str | None, Q(description="Epoch ms or RFC 3339; default end - 24 h")] = None,
    end: Annotated[str | None, Q(description="Epoch ms or RFC 3339; default now")] = None,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Return a machine's state timeline (stored segments, then the open one if live)."""
    ent = enterprise or settings.enterprise
    lo, hi = _range(start, end, settings)
    machine = machine.strip("/")
    _known(_plant(store, ent), machine)
    tl = store.timeline(ent, machine, lo, hi)
    open_from = None
    part = _open_part(request, ent, settings)
    if part is not None:
        tail = part(machine)
        if len(tail):
            if len(tl):
                tail = tail.clip(max(int(tl.end_ms[-1]), int(tail.start_ms[0])), hi)
            tail = tail.clip(lo, hi)
            if len(tail):
                open_from = int(tail.start_ms[0])
                tl = StateTimeline.concat([tl, tail])
    plant = _plant(store, ent)
    tl, proposed = _machine_reasons(store, plant.machine(machine), ent, tl, lo, hi)
    rows = _rows(tl, open_from)
    labels = {r.code: r.label or r.code for r in plant.reasons.reasons}
    if proposed is not None and len(proposed):
        from indunet.plant.oee import overlap_ms

        iv = np.stack([proposed.start_ms, proposed.end_ms], axis=1)
        inside = overlap_ms(tl.start_ms, tl.end_ms, iv)
        for row, ms in zip(rows, inside, strict=True):
            row["proposed"] = bool(ms > 0 and ms == row["end_ms"] - row["start_ms"])
    for row in rows:
        row.setdefault("proposed", False)
        row["reason_label"] = labels.get(row["reason"], row["reason"]) if row["reason"] else None
    return {
        "machine": machine,
        "start_ms": lo,
        "end_ms": hi,
        "ms_by_state": tl.ms_by_state(),
        "rows": rows,
    }


def _machine_reasons(
    store: PlantStore, m: Any, enterprise: str, tl: StateTimeline, lo: int, hi: int
) -> tuple[StateTimeline, StateTimeline | None]:
    """Return the timeline with the stop reasons the machine reported (its state tag)."""
    if m.state_tag is None or not m.state_reasons or not len(tl):
        return tl, None
    from indunet.model import Quality
    from indunet.plant.oee import propose_reasons

    try:
        t = store.historian.series(
            enterprise, f"{m.id}/{m.state_tag}", lo - report.COUNTER_LOOKBACK_MS, hi
        )
    except DataError:  # the tag has no data yet
        return tl, None
    ts = t.column("ts").to_numpy().astype(np.int64)
    bad = t.column("quality").to_numpy(zero_copy_only=False) >= Quality.BAD
    said = [
        None if b else (x if x is not None else v)
        for x, v, b in zip(
            t.column("text").to_pylist(), t.column("value").to_pylist(), bad, strict=True
        )
    ]
    return propose_reasons(tl, ts, said, m.state_reasons, hold_ms=report.STATE_HOLD_MS)


class ReasonAssignment(BaseModel):
    """A stop reason for the stored stop segment starting at ``start_ms``."""

    machine: str
    start_ms: int
    reason: str = Field(min_length=1)


@router.post("/states/reasons")
def assign_reason(
    body: ReasonAssignment,
    store: StoreDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Assign a reason from the reason tree to a stop segment (not to running time)."""
    ent = enterprise or settings.enterprise
    machine = body.machine.strip("/")
    _known(_plant(store, ent), machine)
    return store.assign_reason(ent, machine, body.start_ms, body.reason, now_ms=_now())


@router.get("/stops")
def stops(
    store: StoreDep,
    settings: SettingsDep,
    scope: Annotated[str, Q(description="Machine path prefix; empty = all")] = "",
    unassigned: Annotated[bool, Q(description="Only stops without a reason")] = False,
    min_s: Annotated[float, Q(ge=0, le=31_622_400, description="Only stops this long")] = 0,
    start: str | None = None,
    end: str | None = None,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """List stored stop segments (idle, off, offline), optionally only unassigned ones."""
    ent = enterprise or settings.enterprise
    lo, hi = _range(start, end, settings)
    rows = report.stops_report(
        store,
        _plant(store, ent),
        ent,
        scope,
        lo,
        hi,
        unassigned=unassigned,
        min_ms=round(min_s * 1000),
    )
    return {"scope": scope, "start_ms": lo, "end_ms": hi, "rows": rows}


@router.get("/oee")
def oee(
    request: Request,
    store: StoreDep,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Annotated[str, Q(description="Machine, line, area or site prefix; empty = all")] = "",
    start: str | None = None,
    end: str | None = None,
    by: Literal["none", "shift", "day"] = "none",
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Return OEE per ISO 22400-2: time elements, counts and A/P/Q/OEE per group and total."""
    ent = enterprise or settings.enterprise
    lo, hi = _range(start, end, settings)
    return report.oee_report(
        store,
        historian,
        _plant(store, ent),
        ent,
        scope,
        lo,
        hi,
        by=by,
        open_part=_open_part(request, ent, settings),
    )


class ParetoRow(BaseModel):
    """One bar of the downtime Pareto: a reason, a machine or a line."""

    key: str = Field(description="reason code ('unassigned' = unexplained), machine or line")
    label: str = Field(description="the reason's label from the reason tree, else the key")
    stop_ms: int
    proposed_ms: int = Field(description="stop time whose reason the machine reported itself")
    share: float | None = Field(description="of all stop time")
    cumulative: float | None
    availability_loss: float | None = Field(description="stop time / planned busy time")
    planned: bool | None = Field(None, description="by reason: a planned stop (changeover)")
    top_reason: str | None = Field(None, description="by machine or line: the largest reason")
    top_reason_label: str | None = None
    oee: float | None = None
    availability: float | None = None


class MachineShortStops(BaseModel):
    """A machine's short stops."""

    count: int
    stop_ms: int


class ShortStops(BaseModel):
    """Stops up to ``micro_stop_s`` long (minor stops, a performance loss)."""

    micro_stop_s: float
    count: int
    stop_ms: int
    machines: dict[str, MachineShortStops]


class MachineRunningLosses(BaseModel):
    """Running time judged window by window against the ideal cycle."""

    running_ms: int = Field(description="running time in whole windows (the part judged)")
    slow_ms: int = Field(description="windows slower than slow_factor × the ideal cycle")
    no_parts_ms: int = Field(description="windows that counted no part")
    windows: int


class RunningLossesAnswer(BaseModel):
    """Slow running and running without parts (performance losses)."""

    slow_factor: float
    total: MachineRunningLosses
    machines: dict[str, MachineRunningLosses]
    skipped: list[str] = Field(description="machines without an ideal cycle or part counter")


class LossesAnswer(BaseModel):
    """Downtime Pareto with the OEE and TEEP of the same scope and range."""

    scope: str
    start_ms: int
    end_ms: int
    by: Literal["reason", "machine", "line"]
    pbt_ms: int
    apt_ms: int
    stop_ms: int
    calendar_ms: int
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    teep: float | None = Field(description="OEE × PBT / calendar time")
    speed_loss_ms: float | None = Field(description="actual production time − ideal time")
    rows: list[ParetoRow]
    short_stops: ShortStops
    running: RunningLossesAnswer
    warnings: list[str]


@router.get("/losses", response_model=LossesAnswer)
def losses(
    request: Request,
    store: StoreDep,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Annotated[str, Q(description="Machine, line, area or site prefix; empty = all")] = "",
    start: str | None = None,
    end: str | None = None,
    by: Literal["reason", "machine", "line"] = "reason",
    micro_stop_s: Annotated[
        float, Q(ge=0, le=3600, description="Stops up to this long count as short stops")
    ] = 120.0,
    slow_factor: Annotated[
        float, Q(ge=1, le=100, description="Running slower than this × the ideal cycle is slow")
    ] = 1.7,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Return the downtime Pareto (by reason, machine or line), TEEP and short stops.

    The rows add up to the stop time of ``GET /oee`` over the same scope and range (one code
    path); reasons the machine reported itself are counted in ``proposed_ms``.
    """
    from indunet.plant.losses import downtime_pareto, short_stops

    ent = enterprise or settings.enterprise
    lo, hi = _range(start, end, settings)
    plant = _plant(store, ent)
    doc = report.oee_report(
        store, historian, plant, ent, scope, lo, hi, open_part=_open_part(request, ent, settings)
    )
    out = downtime_pareto(doc, by=by, tree=plant.reasons)
    stops = report.stops_report(store, plant, ent, scope, lo, hi, min_ms=0)
    out["short_stops"] = short_stops(stops, micro_stop_s)
    out["running"] = report.running_loss_report(
        store, historian, plant, ent, scope, lo, hi, slow_factor=slow_factor,
        open_part=_open_part(request, ent, settings),
    )  # fmt: skip
    out["warnings"] = list(doc["total"].get("warnings", []))[:20]
    return out


class CheckFinding(BaseModel):
    """One integrity problem: which check, about what, why, and since when if known."""

    check: str = Field(description="timeline_overlap, timeline_gap, counter_backwards, "
                       "oee_out_of_range, tag_silent or derived_behind")  # fmt: skip
    subject: str = Field(description="the machine or tag")
    message: str
    ts_ms: int | None = None


class CheckAnswer(BaseModel):
    """The data-integrity check of an enterprise."""

    clean: bool
    findings: list[CheckFinding]


@router.get("/check", response_model=CheckAnswer)
def check(
    store: StoreDep,
    historian: HistorianDep,
    settings: SettingsDep,
    start: str | None = None,
    end: str | None = None,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Check data integrity: timelines, counters, OEE within [0, 1], silent tags, derived data.

    ``clean`` is true when nothing was found; counters and OEE are checked over the range
    (default the last day).
    """
    from indunet.plant.integrity import check_plant

    ent = enterprise or settings.enterprise
    lo, hi = _range(start, end, settings)
    found = check_plant(
        store, historian, _plant(store, ent), ent, start_ms=lo, end_ms=hi, now_ms=_now()
    )
    return {"clean": not found, "findings": [f.as_dict() for f in found]}


@router.get("/energy")
def energy(
    request: Request,
    store: StoreDep,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Annotated[str, Q(description="Machine, line, area or site prefix; empty = all")] = "",
    start: str | None = None,
    end: str | None = None,
    bucket: Literal["hour", "day", "shift"] = "hour",
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Return kWh per bucket and machine, idle/off energy, kWh per good part and CO2."""
    ent = enterprise or settings.enterprise
    lo, hi = _range(start, end, settings)
    return report.energy_report(
        store,
        historian,
        _plant(store, ent),
        ent,
        scope,
        lo,
        hi,
        bucket=bucket,
        open_part=_open_part(request, ent, settings),
    )


class MachineCommand(BaseModel):
    """A write to one tag of a machine, carried out by the machine's edge agent."""

    machine: str = Field(description="site/area/line/machine")
    tag: str
    value: float | bool | str


@router.post("/commands", status_code=202)
def send_command(body: MachineCommand, request: Request, settings: SettingsDep) -> dict[str, Any]:
    """Sign a write with the caller's name and role and send it to the machine's edge agent.

    The edge checks the signature, expiry, role, limits and type, writes, reads back and
    publishes an audit record on ``indunet/audit/v1/{enterprise}/{machine}``.
    """
    import uuid

    from indunet.edge.commands import sign_command
    from indunet.edge.publish import command_topic
    from indunet.uns import MachinePath

    secret = settings.plant.command_secret
    if not secret:
        raise HTTPException(409, "commands to machines are off: set [plant] command_secret")
    try:
        machine = str(MachinePath.parse(body.machine))
    except DataError as exc:
        raise HTTPException(422, f"machine: {exc}") from exc
    principal = getattr(request.state, "principal", None)
    grant = principal.grant_for(settings.enterprise) if principal is not None else None
    role = grant.role.name if grant is not None and grant.role is not None else "operator"
    ingest = getattr(request.app.state, "mqtt", None)
    if ingest is None or not ingest.stats.connected:
        raise HTTPException(409, "no MQTT connection: this server cannot reach edge agents")
    claim = sign_command(
        secret,
        {
            "id": uuid.uuid4().hex,
            "machine": machine,
            "tag": body.tag,
            "value": body.value,
            "user": principal.name if principal is not None else "anonymous",
            "role": role,
            "exp": int(time.time() * 1000) + 60_000,
        },
    )
    topic = command_topic(settings.enterprise, machine)
    done = ingest._publish(topic, json.dumps(claim), qos=1)
    if done is None or not done.wait(5):
        raise HTTPException(409, "the broker did not accept the command; nothing was sent")
    return {"id": claim["id"], "topic": topic, "user": claim["user"], "role": role}


@router.get("/commands")
def command_results(
    historian: HistorianDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
    machine: Annotated[str | None, Q(description="Only this machine (SITE/AREA/LINE/M)")] = None,
    limit: Annotated[int, Q(ge=1, le=1000, description="At most this many, newest first.")] = 100,
) -> list[dict[str, Any]]:
    """Return the results of writes to machines as their edge agents reported them (audit)."""
    from indunet.plant.command_log import CommandLog
    from indunet.uns import MachinePath

    if machine is not None:
        try:
            machine = str(MachinePath.parse(machine))
        except DataError as exc:
            raise HTTPException(422, f"machine: {exc}") from exc
    return CommandLog(historian).recent(enterprise or settings.enterprise, machine, limit)
