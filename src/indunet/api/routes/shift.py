"""Shift reports, the report archive, Andon calls, handover notes and display keys (HTTP API).

Everything is tenant-scoped like the other plant routes (``?enterprise=``, else the caller's own);
Andon actions name the call's line or machine in ``?scope=`` so site-limited grants are checked
on it. Reports are made by `indunet.plant.report_service.make_report`, the code path of the CLI
and the schedule.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi import Query as Q
from pydantic import BaseModel, ConfigDict, Field

from indunet.api.deps import HistorianDep, SettingsDep
from indunet.api.routes.plant import StoreDep, _open_part
from indunet.auth.display import DisplayKeys
from indunet.errors import DataError
from indunet.plant.andon import AndonStore, CallNotFound, andon_stats
from indunet.plant.report_service import make_report
from indunet.plant.shift_log import HandoverNotes, ReportArchive
from indunet.plant.shift_report import MEDIA, file_name, find_window, render

router = APIRouter(tags=["shift"])
EnterpriseQ = Annotated[str | None, Q(description="Enterprise (tenant)")]
ScopeQ = Annotated[str, Q(description="Site or line path (site/area/line)", max_length=200)]
DAY_MS = 86_400_000


def _now() -> int:
    return int(time.time() * 1000)


def who(request: Request) -> str:
    """Return the caller's name for the audit trail."""
    principal = getattr(request.state, "principal", None)
    return principal.name if principal is not None else "anonymous"


def _bad(exc: DataError) -> HTTPException:
    if isinstance(exc, CallNotFound):
        return HTTPException(404, str(exc))
    text = str(exc)
    conflict = " is open" in text or " is taken" in text or " is resolved" in text
    return HTTPException(409 if conflict or " is cancelled" in text else 422, text)


def andon_store(request: Request, historian: Any) -> AndonStore:
    """Return the app's Andon store (its changes are published to the live event bus)."""
    store = getattr(request.app.state, "andon_store", None)
    if store is None or store.historian is not historian:
        store = AndonStore(historian)
        request.app.state.andon_store = store
    return store


# answers (typed, for the OpenAPI document) ---------------------------------------------------
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ShiftReport(_Open):
    """A shift or day report of a site or line (docs/reports.md)."""

    enterprise: str
    scope: str
    site: str
    kind: Literal["shift", "day"]
    label: str
    start_ms: int
    end_ms: int
    complete: bool
    generated_ms: int
    timezone: str
    oee: dict[str, Any] = Field(description="OEE elements and ratios, as GET /api/v1/oee")
    oee_target: float | None
    lines: dict[str, dict[str, Any]]
    output: dict[str, float | None]
    top_losses: list[dict[str, Any]]
    unexplained_stops: dict[str, Any]
    alarms: dict[str, Any]
    energy: dict[str, float | None]
    orders: list[dict[str, Any]]
    warnings: list[str]
    handover: list[dict[str, Any]] | None = None
    andon: dict[str, Any] | None = None
    delivered: dict[str, Any] | None = None


class ReportHeadline(BaseModel):
    """An archived report without its body."""

    report_id: str
    scope: str
    label: str
    kind: str
    start_ms: int
    end_ms: int
    created_ms: int
    delivered: dict[str, Any]
    oee: float | None
    good: float


class ReportList(BaseModel):
    """Archived reports, newest shift first."""

    reports: list[ReportHeadline]


class AndonCall(BaseModel):
    """One Andon call with its times (ms)."""

    call_id: str
    site: str
    line: str
    machine: str | None
    reason: str
    note: str
    state: Literal["open", "taken", "resolved", "cancelled"]
    raised_by: str
    raised_ms: int
    taken_by: str | None
    taken_ms: int | None
    resolved_by: str | None
    resolved_ms: int | None
    cause: str | None
    stop_machine: str | None
    stop_start_ms: int | None
    stop_reason: str | None
    tta_ms: int | None = Field(description="Time to acknowledge (taken − raised)")
    ttr_ms: int | None = Field(description="Time to resolve (resolved − raised)")


class AndonFigures(BaseModel):
    """Counts, MTTA and MTTR of a set of calls."""

    calls: int
    open: int
    taken: int
    resolved: int
    mtta_ms: float | None
    mttr_ms: float | None


class AndonStatRow(AndonFigures):
    """Figures of one line and reason."""

    line: str
    reason: str


class AndonSummary(AndonFigures):
    """Figures in total and per line and reason."""

    stats: list[AndonStatRow]


class CallList(BaseModel):
    """Calls, newest first, and their figures."""

    calls: list[AndonCall]
    summary: AndonSummary


class AndonStats(AndonSummary):
    """MTTA / MTTR per line and reason for calls raised in a range."""

    start_ms: int
    end_ms: int


class AuditStep(BaseModel):
    """One step of a call."""

    ts_ms: int
    action: str
    by: str
    detail: str


class CallAudit(BaseModel):
    """A call and its audit trail."""

    call: AndonCall
    audit: list[AuditStep]


class Note(BaseModel):
    """A handover note."""

    note_id: str
    line: str
    shift: str
    author: str
    created_ms: int
    text: str


class NoteList(BaseModel):
    """Handover notes, oldest first."""

    notes: list[Note]


class IssuedDisplayKey(BaseModel):
    """A new display key; the secret is shown this once."""

    key_id: str
    secret: str
    enterprise: str
    scope: str


class DisplayKeyInfo(BaseModel):
    """A display key without its secret."""

    key_id: str
    enterprise: str
    scope: str
    name: str
    created_ms: int
    revoked_ms: int | None
    last_used_ms: int | None


class DisplayKeyList(BaseModel):
    """The enterprise's display keys."""

    keys: list[DisplayKeyInfo]


class Revoked(BaseModel):
    """The id of the key revoked."""

    revoked: str


# reports -------------------------------------------------------------------------------------
@router.get("/report", response_model=ShiftReport)
def report(
    request: Request,
    store: StoreDep,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: ScopeQ,
    shift: Annotated[str, Q(description="last, current, 'YYYY-MM-DD name' or 'YYYY-MM-DD'")] = (
        "last"
    ),
    format: Literal["json", "html", "xlsx", "csv"] = "json",
    enterprise: EnterpriseQ = None,
) -> Any:
    """Make the report of a site or line for one shift or day (not archived)."""
    ent = enterprise or settings.enterprise
    try:
        doc = make_report(
            historian, store, ent, scope, shift, now_ms=_now(),
            open_part=_open_part(request, ent, settings),
        )  # fmt: skip
    except DataError as exc:
        raise HTTPException(422, str(exc)) from exc
    return _as(doc, format)


def _as(doc: dict[str, Any], fmt: str, html: str | None = None) -> Any:
    if fmt == "json":
        return doc
    body = html.encode() if fmt == "html" and html is not None else render(doc, fmt)
    headers = {}
    if fmt != "html":
        headers["Content-Disposition"] = f'attachment; filename="{file_name(doc, fmt)}"'
    return Response(body, media_type=MEDIA[fmt], headers=headers)


@router.get("/reports", response_model=ReportList)
def reports(
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Annotated[str | None, Q(description="Only this site or line", max_length=200)] = None,
    limit: Annotated[int, Q(ge=1, le=1000)] = 100,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """List archived reports (made at each shift's end), newest first."""
    ent = enterprise or settings.enterprise
    return {"reports": ReportArchive(historian).list(ent, scope=scope, limit=limit)}


@router.get("/reports/{report_id}", response_model=ShiftReport)
def archived_report(
    report_id: str,
    historian: HistorianDep,
    settings: SettingsDep,
    format: Literal["json", "html", "xlsx", "csv"] = "json",
    enterprise: EnterpriseQ = None,
) -> Any:
    """Return an archived report as stored (JSON document, or rendered)."""
    ent = enterprise or settings.enterprise
    found = ReportArchive(historian).get(ent, report_id[:64])
    if found is None:
        raise HTTPException(404, f"no archived report {report_id[:64]!r}")
    if format == "json":
        return {**found["doc"], "delivered": found["delivered"]}
    return _as(found["doc"], format, found["html"])


# Andon ---------------------------------------------------------------------------------------
class RaiseCall(BaseModel):
    """An Andon call: why, and a short note."""

    reason: Literal["material", "maintenance", "quality", "help"]
    note: str = Field("", max_length=1000)


class ResolveCall(BaseModel):
    """How a call was resolved, optionally naming the stop it explains."""

    cause: str = Field(min_length=1, max_length=1000)
    stop_machine: str | None = Field(None, max_length=200)
    stop_start_ms: int | None = None
    stop_reason: str | None = Field(None, max_length=100, description="Reason tree code")


def _call_in_scope(call: dict[str, Any], scope: str) -> None:
    prefix = scope.strip().strip("/")
    inside = (
        call["line"] == prefix
        or call["line"].startswith(prefix + "/")
        or prefix.startswith(call["line"] + "/")
    )
    if not prefix or not inside:
        raise HTTPException(404, f"no Andon call {call['call_id']!r} under {prefix!r}")


@router.post("/andon/calls", status_code=201, response_model=AndonCall)
def raise_call(
    body: RaiseCall,
    request: Request,
    store: StoreDep,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Annotated[str, Q(description="The line or machine that needs help", max_length=200)],
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Raise an Andon call for a line or machine; the responsible groups are notified."""
    ent = enterprise or settings.enterprise
    try:
        call = andon_store(request, historian).raise_call(
            store.effective(ent), ent, target=scope, reason=body.reason, note=body.note,
            by=who(request), now_ms=_now(),
        )  # fmt: skip
    except DataError as exc:
        raise _bad(exc) from exc
    notify = getattr(request.app.state, "andon_notify", None)
    if notify is not None:
        notify(call)
    publish_call(request, ent, call)
    return call


@router.get("/andon/calls", response_model=CallList)
def calls(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Annotated[str, Q(description="Site, line or machine; empty = all", max_length=200)] = "",
    state: Annotated[
        str | None, Q(description="open, taken, resolved, cancelled or active")
    ] = None,
    hours: Annotated[float, Q(gt=0, le=24 * 400)] = 24,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """List calls raised in the last ``hours`` (active ones whenever raised), with MTTA/MTTR."""
    ent = enterprise or settings.enterprise
    now = _now()
    store = andon_store(request, historian)
    try:
        if state == "active":
            rows = store.calls(ent, scope=scope, state="active")
        else:
            rows = store.calls(ent, scope=scope, state=state, start_ms=now - round(hours * 3.6e6))
    except DataError as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"calls": rows, "summary": andon_stats(rows)}


@router.get("/andon/stats", response_model=AndonStats)
def stats(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Annotated[str, Q(description="Site or line; empty = all", max_length=200)] = "",
    start: Annotated[
        int | None, Q(ge=0, le=2**53, description="Epoch ms; default 7 days ago")
    ] = None,
    end: Annotated[int | None, Q(ge=0, le=2**53, description="Epoch ms; default now")] = None,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Return calls, MTTA and MTTR per line and reason for calls raised in a range."""
    ent = enterprise or settings.enterprise
    hi = end if end is not None else _now()
    lo = start if start is not None else hi - 7 * DAY_MS
    if hi <= lo:
        raise HTTPException(422, "parameter 'end' must be after 'start'")
    rows = andon_store(request, historian).calls(
        ent, scope=scope, start_ms=lo, end_ms=hi, limit=100_000
    )
    return {"start_ms": lo, "end_ms": hi, **andon_stats(rows)}


def _act(request: Request, historian: Any, ent: str, call_id: str, scope: str, fn: Any) -> dict:
    store = andon_store(request, historian)
    try:
        _call_in_scope(store.call(ent, call_id[:64]), scope)
        call = fn(store, call_id[:64])
    except DataError as exc:
        raise _bad(exc) from exc
    publish_call(request, ent, call)
    return call


def publish_call(request: Request, ent: str, call: dict[str, Any]) -> None:
    """Announce a changed call on the live event stream (``andon``), for this server's plant:
    wall screens redraw their calls at once instead of at their next poll."""
    bus = getattr(request.app.state, "events", None)
    if bus is None or ent != request.app.state.settings.enterprise:
        return
    keys = ("call_id", "line", "machine", "reason", "state", "taken_by")
    bus.publish_new("andon", {k: call.get(k) for k in keys})


@router.post("/andon/calls/{call_id}/take", response_model=AndonCall)
def take(
    call_id: str,
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: ScopeQ,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Take (assign to yourself) an open call."""
    ent = enterprise or settings.enterprise
    by = who(request)
    return _act(
        request, historian, ent, call_id, scope,
        lambda s, cid: s.take(ent, cid, by=by, now_ms=_now()),
    )  # fmt: skip


@router.post("/andon/calls/{call_id}/resolve", response_model=AndonCall)
def resolve(
    call_id: str,
    body: ResolveCall,
    request: Request,
    store: StoreDep,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: ScopeQ,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Resolve a call with its cause; with ``stop_*`` the named stop gets its reason."""
    ent = enterprise or settings.enterprise
    by = who(request)
    stop = None
    if body.stop_machine is not None or body.stop_start_ms is not None:
        if body.stop_machine is None or body.stop_start_ms is None or not body.stop_reason:
            raise HTTPException(422, "a linked stop needs stop_machine, stop_start_ms, stop_reason")
        stop = (body.stop_machine.strip("/"), body.stop_start_ms, body.stop_reason)

    def assign(machine: str, start_ms: int, reason: str) -> Any:
        return store.assign_reason(ent, machine, start_ms, reason, now_ms=_now())

    return _act(
        request, historian, ent, call_id, scope,
        lambda s, cid: s.resolve(
            ent, cid, by=by, cause=body.cause, now_ms=_now(), stop=stop, assign=assign
        ),
    )  # fmt: skip


@router.post("/andon/calls/{call_id}/cancel", response_model=AndonCall)
def cancel(
    call_id: str,
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: ScopeQ,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Withdraw an open call raised by mistake."""
    ent = enterprise or settings.enterprise
    by = who(request)
    return _act(
        request, historian, ent, call_id, scope,
        lambda s, cid: s.cancel(ent, cid, by=by, now_ms=_now()),
    )  # fmt: skip


@router.get("/andon/calls/{call_id}/audit", response_model=CallAudit)
def audit(
    call_id: str,
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: ScopeQ,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Return a call and every step of it: who, what and when."""
    ent = enterprise or settings.enterprise
    store = andon_store(request, historian)
    try:
        call = store.call(ent, call_id[:64])
        _call_in_scope(call, scope)
        return {"call": call, "audit": store.audit(ent, call_id[:64])}
    except DataError as exc:
        raise _bad(exc) from exc


# handover notes ------------------------------------------------------------------------------
class HandoverNote(BaseModel):
    """A note for the next shift."""

    text: str = Field(min_length=1, max_length=4000)


@router.post("/handover", status_code=201, response_model=Note)
def add_note(
    body: HandoverNote,
    request: Request,
    store: StoreDep,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Annotated[str, Q(description="The line site/area/line", max_length=200)],
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Write a handover note for a line; it belongs to the shift running now."""
    ent = enterprise or settings.enterprise
    line = scope.strip().strip("/")
    plant = store.effective(ent)
    if len(line.split("/")) != 3 or not plant.line_machines(line):
        raise HTTPException(422, f"scope {line!r} is not a configured line site/area/line")
    now = _now()
    label = None
    for spec in ("current", "last"):  # between shifts, the note is for the one that just ended
        try:
            label = find_window(plant, line, spec, now_ms=now).label
            break
        except DataError:
            continue
    if label is None:
        raise HTTPException(422, f"line {line!r} has no shift now or in the last three days")
    try:
        return HandoverNotes(historian).add(ent, line, label, who(request), body.text, now_ms=now)
    except DataError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.get("/handover", response_model=NoteList)
def notes(
    store: StoreDep,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Annotated[str, Q(description="Site or line", max_length=200)],
    hours: Annotated[float, Q(gt=0, le=24 * 400)] = 24,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Return the handover notes of lines under ``scope`` from the last ``hours``."""
    ent = enterprise or settings.enterprise
    now = _now()
    rows = HandoverNotes(historian).notes(ent, scope, start_ms=now - round(hours * 3.6e6))
    return {"notes": rows}


# display keys --------------------------------------------------------------------------------
class NewDisplayKey(BaseModel):
    """A wall screen's key: one scope, view-only."""

    scope: str = Field(min_length=1, max_length=200, description="site, site/area or line")
    name: str = Field("", max_length=200)


@router.post("/display-keys", status_code=201, response_model=IssuedDisplayKey)
def create_display_key(
    body: NewDisplayKey,
    historian: HistorianDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Issue a display key for a wall screen (the secret is shown once)."""
    ent = enterprise or settings.enterprise
    try:
        return DisplayKeys(historian).create(ent, body.scope, name=body.name, now_ms=_now())
    except DataError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.get("/display-keys", response_model=DisplayKeyList)
def display_keys(
    historian: HistorianDep, settings: SettingsDep, enterprise: EnterpriseQ = None
) -> dict[str, Any]:
    """List the enterprise's display keys (never their secrets)."""
    return {"keys": DisplayKeys(historian).list(enterprise or settings.enterprise)}


@router.delete("/display-keys/{key_id}", response_model=Revoked)
def revoke_display_key(
    key_id: str, historian: HistorianDep, settings: SettingsDep, enterprise: EnterpriseQ = None
) -> dict[str, Any]:
    """Revoke a display key at once: its screen shows the sign-in state."""
    ent = enterprise or settings.enterprise
    if not DisplayKeys(historian).revoke(ent, key_id[:32], now_ms=_now()):
        raise HTTPException(404, f"no live display key {key_id[:32]!r}")
    return {"revoked": key_id[:32]}


__all__ = ["andon_store", "router", "who"]
