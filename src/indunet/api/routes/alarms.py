"""Alarms: active alarms, history, acknowledge / shelve / unshelve, and the rule set.

The running `AlarmService` is ``request.app.state.alarms``. When none runs (``None``), the routes
answer from the stored tables, and operator actions apply to the stored engine snapshot (and are
stored as events), so they take effect when the service starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from indunet.api.deps import SettingsDep, parse_time_param
from indunet.api.events import EventBus, StreamEvent
from indunet.api.paging import Offset, page
from indunet.condition.monitors import MonitorError
from indunet.errors import DataError
from indunet.plant.alarm_service import AlarmNotFound, AlarmService, AlarmStore
from indunet.plant.alarms import AlarmActionError, AlarmRuleError, Priority

__all__ = ["app_bus", "install", "router", "start_alarm_service"]

router = APIRouter(tags=["alarms"])
DAY_MS = 86_400_000


def app_bus(app: FastAPI) -> EventBus:
    """Return the app's event bus, creating it on first use."""
    bus = getattr(app.state, "events", None)
    if bus is None:
        bus = EventBus()
        app.state.events = bus
    return bus


def install(app: FastAPI) -> None:
    """Give the app its event bus with alarm replay from the events table (in the lifespan)."""
    bus = app_bus(app)
    if not hasattr(app.state, "alarms"):
        app.state.alarms = None
    historian = app.state.historian
    enterprise = app.state.settings.enterprise
    store: list[AlarmStore] = []

    def replay(after_seq: int, limit: int) -> list[StreamEvent]:
        if not store:
            store.append(AlarmStore(historian))
        rows = store[0].events(enterprise, after_seq=after_seq, limit=limit)
        return [StreamEvent("alarm", int(r["seq"]), r) for r in rows]

    bus.set_replay("alarm", replay)


def start_alarm_service(app: FastAPI, historian: Any, settings: Any, **kw: Any) -> AlarmService:
    """Build the alarm service publishing to the app's event bus, start it, attach it to the app."""
    bus = app_bus(app)
    service = AlarmService(historian, settings, publish=bus.publish_alarms, **kw)
    app.state.alarms = service
    app.state.anomaly_scores = service.anomaly_scores  # the Fleet page's anomaly column
    service.start()
    return service


def _service(request: Request) -> AlarmService:
    running = getattr(request.app.state, "alarms", None)
    if running is not None:
        return running
    return _call(lambda: AlarmService(request.app.state.historian, request.app.state.settings))


def _call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except AlarmNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except (AlarmRuleError, MonitorError) as exc:
        raise HTTPException(422, "; ".join(exc.problems)) from exc  # one sentence per rule
    except AlarmActionError as exc:
        raise HTTPException(409, str(exc)) from exc
    except DataError as exc:
        raise HTTPException(422, str(exc)) from exc


class AckBody(BaseModel):
    """Who acknowledges, and why."""

    by: str = Field(min_length=1, max_length=200, pattern=r"\S", description="Operator name")
    comment: str | None = Field(None, max_length=1000)


class ShelveBody(BaseModel):
    """Shelve until a time (epoch ms or RFC 3339), by whom, why."""

    until: int | str = Field(description="End of shelving: epoch ms or RFC 3339")
    by: str = Field(min_length=1, max_length=200, pattern=r"\S")
    reason: str | None = Field(None, max_length=1000)


class ByBody(BaseModel):
    """Who does it."""

    by: str = Field(min_length=1, max_length=200, pattern=r"\S")


@router.get("/alarms")
def list_alarms(
    request: Request,
    state: Annotated[str | None, Query(description="Comma list: unack, acked, shelved, …")] = None,
    priority: Annotated[Priority | None, Query(description="Only this priority")] = None,
    prefix: Annotated[str | None, Query(description="Only sources under this tag prefix")] = None,
    include_normal: bool = False,
) -> dict[str, Any]:
    """List alarms not in the normal state (or all with ``include_normal``), newest first."""
    service = _service(request)
    alarms = [a.to_dict() for a in service.alarms(include_normal=include_normal)]
    if state:
        wanted = {s.strip() for s in state.split(",") if s.strip()}
        alarms = [a for a in alarms if a["state"] in wanted]
    if priority is not None:
        alarms = [a for a in alarms if a["priority"] == priority.value]
    if prefix:
        p = prefix.strip("/")
        alarms = [a for a in alarms if a["source"] == p or a["source"].startswith(p + "/")]
    alarms.sort(key=lambda a: -(a["raised_ms"] or 0))
    return {
        "running": request.app.state.alarms is not None,
        "count": len(alarms),
        "alarms": alarms,
    }


@router.get("/alarms/status")
def alarm_status(request: Request) -> dict[str, Any]:
    """Report the service's counters, its webhook outbox and the event stream's queues."""
    running = request.app.state.alarms
    return {
        "running": running is not None,
        "service": running.status() if running is not None else None,
        "events": app_bus(request.app).status(),
    }


@router.get("/alarms/history")
def alarm_history(
    request: Request,
    response: Response,
    settings: SettingsDep,
    start: Annotated[str | None, Query(description="Epoch ms or RFC 3339 (default: -24 h)")] = None,
    end: Annotated[str | None, Query(description="Epoch ms or RFC 3339 (default: now)")] = None,
    alarm_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Return the lifecycle events with ``start <= ts < end``, oldest first (paged)."""
    now = int(time.time() * 1000)
    end_ms = parse_time_param("end", end, now + 1, settings)
    start_ms = parse_time_param("start", start, end_ms - DAY_MS, settings)
    if end_ms <= start_ms:
        raise HTTPException(422, f"parameter 'end' ({end_ms}) must be after 'start' ({start_ms})")
    store = AlarmStore(request.app.state.historian)
    rows = store.events(
        settings.enterprise,
        start_ms=start_ms,
        end_ms=end_ms,
        alarm_id=alarm_id,
        limit=offset + limit + 1,
    )
    rows = page(request, response, rows, limit=limit, offset=offset)
    return {"start_ms": start_ms, "end_ms": end_ms, "count": len(rows), "events": rows}


@router.post("/alarms/{alarm_id:path}/acknowledge")
def acknowledge(request: Request, alarm_id: str, body: AckBody) -> dict[str, Any]:
    """Acknowledge an unacknowledged alarm (409 when its state does not allow it)."""
    service = _service(request)
    events = _call(lambda: service.acknowledge(alarm_id, by=body.by, comment=body.comment))
    return {"alarm_id": alarm_id, "events": events}


@router.post("/alarms/{alarm_id:path}/shelve")
def shelve(
    request: Request, alarm_id: str, body: ShelveBody, settings: SettingsDep
) -> dict[str, Any]:
    """Shelve an alarm until ``until`` (at most the rule's ``max_shelve_s`` ahead)."""
    until = parse_time_param("until", str(body.until), 0, settings)
    service = _service(request)
    events = _call(
        lambda: service.shelve(alarm_id, until_ms=until, by=body.by, comment=body.reason)
    )
    return {"alarm_id": alarm_id, "events": events}


@router.post("/alarms/{alarm_id:path}/unshelve")
def unshelve(request: Request, alarm_id: str, body: ByBody) -> dict[str, Any]:
    """Unshelve an alarm now; it is raised again if its condition still holds."""
    service = _service(request)
    events = _call(lambda: service.unshelve(alarm_id, by=body.by))
    return {"alarm_id": alarm_id, "events": events}


@router.get("/alarm-rules")
def list_rules(request: Request) -> dict[str, Any]:
    """List the rules in force, each with its source (``config`` = indunet.toml, or ``api``)."""
    service = _service(request)
    rules = [
        {"source": service.rule_sources.get(r.id, "config"), **r.model_dump(mode="json")}
        for r in service.rules()
    ]
    return {"count": len(rules), "rules": rules}


@router.post("/alarm-rules", status_code=201)
def add_rules(
    request: Request,
    body: Annotated[Any, Body(description="One rule object or a list of them (docs/alarms.md)")],
) -> dict[str, Any]:
    """Add or replace rules (by id); every problem names the rule id and the field (422)."""
    docs = body if isinstance(body, list) else [body]
    service = _service(request)
    rules = _call(lambda: service.add_rules(docs))
    return {"stored": [r.id for r in rules]}


@router.delete("/alarm-rules/{rule_id}")
def delete_rule(request: Request, rule_id: str) -> dict[str, Any]:
    """Delete a rule added through the API."""
    service = _service(request)
    _call(lambda: service.delete_rule(rule_id))
    return {"deleted": rule_id}


# --------------------------------------------------------------------------- anomaly monitors


class MonitorList(BaseModel):
    """The monitors in force and each source's status (with evidence and data quality)."""

    count: int
    monitors: list[dict[str, Any]]
    status: list[dict[str, Any]]


class MonitorsStored(BaseModel):
    """Ids of the monitors stored."""

    stored: list[str]


class MonitorDeleted(BaseModel):
    """Id of the monitor deleted."""

    deleted: str


class MonitorScan(BaseModel):
    """A monitor scored over history: per source, explained anomalies and data quality."""

    monitor: str
    kind: str
    start_ms: int
    end_ms: int
    anomalies: int
    results: list[dict[str, Any]]


@router.get("/monitors", response_model=MonitorList)
def list_monitors(request: Request) -> dict[str, Any]:
    """List the anomaly monitors, each with its origin, and each source's model status.

    ``status`` rows carry the latest evidence (which tag, how far from normal, since when)
    and the tag's recent data-quality findings (gaps, flat lines, unit changes, restarts).
    """
    service = _service(request)
    monitors = [
        {"origin": service.monitor_sources.get(m.id, "config"), **m.model_dump(mode="json")}
        for m in service.monitors()
    ]
    return {"count": len(monitors), "monitors": monitors, "status": service.monitor_status()}


@router.post("/monitors", status_code=201, response_model=MonitorsStored)
def add_monitors(
    request: Request,
    body: Annotated[Any, Body(description="One monitor or a list of them (docs/condition.md)")],
) -> dict[str, Any]:
    """Add or replace monitors (by id); every problem names the monitor id and field (422)."""
    docs = body if isinstance(body, list) else [body]
    service = _service(request)
    monitors = _call(lambda: service.add_monitors(docs))
    return {"stored": [m.id for m in monitors]}


@router.delete("/monitors/{monitor_id}", response_model=MonitorDeleted)
def delete_monitor(request: Request, monitor_id: str) -> dict[str, Any]:
    """Delete a monitor added through the API."""
    service = _service(request)
    _call(lambda: service.delete_monitor(monitor_id))
    return {"deleted": monitor_id}


@router.get("/monitors/{monitor_id}/scan", response_model=MonitorScan)
def scan_monitor(
    request: Request,
    settings: SettingsDep,
    monitor_id: str,
    start: Annotated[
        str | None, Query(description="Epoch ms or RFC 3339 (default: -7 days)")
    ] = None,
    end: Annotated[str | None, Query(description="Epoch ms or RFC 3339 (default: now)")] = None,
) -> dict[str, Any]:
    """Score a monitor over history on demand: explained anomalies and data-quality findings.

    Raises no alarm. Stream monitors learn from the range itself (the first ``min_history_s``
    only learns); baseline and multivariate monitors learn from ``history_s`` before ``start``.
    """
    now = int(time.time() * 1000)
    end_ms = parse_time_param("end", end, now + 1, settings)
    start_ms = parse_time_param("start", start, end_ms - 7 * DAY_MS, settings)
    if end_ms <= start_ms:
        raise HTTPException(422, f"parameter 'end' ({end_ms}) must be after 'start' ({start_ms})")
    service = _service(request)
    return _call(lambda: service.scan_monitor(monitor_id, start_ms, end_ms))
