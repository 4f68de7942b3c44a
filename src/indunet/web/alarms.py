"""The Alarms page, its live fragment and the operators' acknowledge / shelve / unshelve forms.

Alarms come from the running `AlarmService` (``app.state.alarms``) or, when none runs, from the
stored engine snapshot, exactly as ``/api/v1/alarms``; the history reads the events table like
``/api/v1/alarms/history``. Forms post ``application/x-www-form-urlencoded`` with the session's
``csrf_token`` (checked by `indunet.auth.web.authorise`) to ``/alarms/{action}?site=SITE``: the
``site`` lets a site-limited operator grant pass, and the alarm must lie on that site.
``/parts/alarms?machine=SITE/AREA/LINE/MACHINE`` (or without ``machine``: all) is the list alone,
for the machine page and for this page's live refresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from indunet.api.deps import SettingsDep
from indunet.auth.model import Need, Principal, PrincipalKind, decide
from indunet.auth.web import PrincipalDep
from indunet.condition.config import RUL_TAG
from indunet.condition.monitors import anomaly_asset
from indunet.config import Settings
from indunet.errors import DataError
from indunet.model import DataType
from indunet.plant.alarm_service import (
    DATA_QUALITY,
    DERIVED_OEE,
    AlarmNotFound,
    AlarmService,
    AlarmStore,
)
from indunet.plant.alarms import Alarm, AlarmActionError, AlarmRuleError, AlarmState, Priority
from indunet.uns import MachinePath, check_segment
from indunet.web.data import MAX_LIMIT, MAX_OFFSET, Pager
from indunet.web.plant_tree import format_age, format_value, machine_url, scope_url

__all__ = ["AlarmFilter", "AlarmRow", "alarm_rows", "router"]

router = APIRouter(include_in_schema=False, tags=["web"])

#: how often the alarm list is fetched again when no live event came, s
ALARM_POLL_S = 5
#: shelving durations offered, minutes (only those within the rule's ``max_shelve_s``)
SHELVE_MINUTES = (15, 60, 240, 480)
#: history events scanned at most per page when a filter skips events
HISTORY_SCAN = 20_000

_S = AlarmState
_NUM = DataType.NUMBER
#: what the page calls each lifecycle state
STATE_LABELS = {
    _S.UNACK: "active, unacknowledged",
    _S.ACKED: "active, acknowledged",
    _S.RTN_UNACK: "cleared, unacknowledged",
    _S.LATCHED_UNACK: "latched, unacknowledged",
    _S.LATCHED_ACKED: "latched, acknowledged (needs reset)",
    _S.SHELVED: "shelved",
    _S.OUT_OF_SERVICE: "out of service",
    _S.NORMAL: "normal",
}
#: the state filter's choices: name -> (label, test)
STATE_FILTERS: dict[str, tuple[str, Callable[[Alarm], bool]]] = {
    "unack": (
        "unacknowledged",
        lambda a: a.state in (_S.UNACK, _S.RTN_UNACK, _S.LATCHED_UNACK),
    ),
    "acked": ("acknowledged", lambda a: a.state in (_S.ACKED, _S.LATCHED_ACKED)),
    "shelved": ("shelved", lambda a: a.state in (_S.SHELVED, _S.OUT_OF_SERVICE)),
    "cleared": (
        "cleared",
        lambda a: a.state in (_S.RTN_UNACK, _S.LATCHED_UNACK, _S.LATCHED_ACKED),
    ),
}
_ACKABLE = (_S.UNACK, _S.RTN_UNACK, _S.LATCHED_UNACK)
_SHELVABLE = (_S.UNACK, _S.ACKED, _S.RTN_UNACK, _S.LATCHED_UNACK, _S.LATCHED_ACKED)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)


# ------------------------------------------------------------------------------ the view
def asset_of(source: str) -> str:
    """Return the plant path an alarm source belongs to (a derived OEE, data-quality or anomaly
    tag's)."""
    for prefix in (DERIVED_OEE, DATA_QUALITY):
        if source.startswith(prefix):
            return source.removeprefix(prefix)
    if source.startswith(RUL_TAG):  # derived/rul/<asset class>/<machine id>
        return source.removeprefix(RUL_TAG).split("/", 1)[-1]
    return anomaly_asset(source) or source


CHAIN_PREFIX = "derived/chain/"
#: which alarms a list shows: the plant's (default), the supply chain's, or both
KINDS = ("plant", "chain", "all")


def is_chain(source: str) -> bool:
    """Return whether an alarm source is a supply-chain alert (``derived/chain/…``)."""
    return source.startswith(CHAIN_PREFIX)


def source_url(source: str) -> str | None:
    """Return the page an alarm source belongs to: its machine, line, area, site or chain."""
    if is_chain(source):
        network = source.removeprefix(CHAIN_PREFIX).split("/", 1)[0]
        return "/chain/" + quote(network, safe="") if network else "/chain"
    machine = machine_of(source)
    if machine is not None:
        return machine_url(machine)
    asset = asset_of(source)
    if source.startswith(DERIVED_OEE) or source.startswith(DATA_QUALITY):
        parts = [p for p in asset.split("/") if p]
        try:
            return scope_url(*(check_segment(p, "scope") for p in parts)) if parts else None
        except DataError:
            return None
    return None


def _num(x: float, unit: str | None) -> str:
    text = format_value(x, None, _NUM)
    return f"{text} {unit}" if unit else text


def plain_message(alarm: Alarm, rule: Any, unit: str | None = None) -> str:
    """Return what an alarm says in plain words, with units: "OEE 49 % < 50 % for 10 min".

    Derived OEE is a share (shown in %); chain alerts say days down or days left; a tag's
    value carries the tag's unit from the historian's metadata.
    """
    src = alarm.source
    v = alarm.value
    kind = getattr(rule, "kind", None)
    delay = getattr(rule, "on_delay_s", 0.0) or 0.0
    held = f" for {format_age(int(delay * 1000))}" if delay else ""
    if is_chain(src):
        parts = src.removeprefix(CHAIN_PREFIX).split("/")
        net, what, name = [*parts, "", "", ""][:3]
        if what == "site":
            days = "" if v is None else f" {v:.1f} days" if v >= 0.1 else " just now"
            return f"Supplier site {name} of chain {net} is down{days}"
        if what == "runout":
            left = "" if v is None else f" in {v:.1f} days"
            limit = getattr(rule, "limit", None)
            under = f" (alert under {limit:g} days)" if limit is not None else ""
            return f"{name} runs out{left}{under} (chain {net})"
    if src.startswith(DERIVED_OEE):
        scope = src.removeprefix(DERIVED_OEE)
        target = getattr(rule, "target", getattr(rule, "limit", None))
        now = "" if v is None else f" {v * 100:.0f} %"
        goal = f" < {target * 100:.0f} %" if target is not None else ""
        return f"OEE of {scope}{now}{goal}{held}"
    if src.startswith(RUL_TAG):
        left = "" if v is None else f" {v:.0f} cycles"
        limit = getattr(rule, "limit", None)
        under = f" < {limit:g} cycles" if limit is not None else ""
        return f"Remaining useful life of {asset_of(src)}{left}{under}"
    if src.startswith(DATA_QUALITY):
        n = "" if v is None else f"{v:.0f} "
        return f"{asset_of(src)}: {n}OEE figures cannot be true (check counters and cycle times)"
    if anomaly_asset(src) is not None:
        score = "" if v is None else f" (score {v:.2f})"
        return f"{asset_of(src).rsplit('/', 1)[-1]}: anomaly{score}"
    name = src.rsplit("/", 1)[-1]
    value = "" if v is None else f" {_num(v, unit)}"
    if kind in ("high", "low"):
        sign = ">" if kind == "high" else "<"
        return f"{name}{value} {sign} {_num(rule.limit, unit)}{held}"
    if kind == "below_target":
        return f"{name}{value} < target {_num(rule.target, unit)}{held}"
    if kind == "rate":
        per = format_age(int(rule.per_s * 1000))
        return f"{name} changes faster than {_num(rule.max_rate, unit)} per {per}"
    if kind == "stale":
        return f"{name}: no value for {format_age(int(rule.max_age_s * 1000))}"
    if kind == "state_duration":
        longest = format_age(int(rule.max_duration_s * 1000))
        return f"{asset_of(src)} {rule.state} for more than {longest}"
    return getattr(rule, "message", "") or alarm.rule_id


def machine_of(source: str) -> MachinePath | None:
    """Return the machine of an alarm source, or None (a line or site scope, a chain, …)."""
    if is_chain(source):
        return None
    parts = asset_of(source).split("/")
    if len(parts) < 4:
        return None
    try:
        return MachinePath(*parts[:4])
    except DataError:
        return None


@dataclass(frozen=True)
class AlarmFilter:
    """What the list shows: a priority, a state group, a site and/or one machine."""

    priority: Priority | None = None
    state: str | None = None
    site: str | None = None
    machine: MachinePath | None = None
    kind: str = "plant"  # plant alarms, chain alerts or all

    @classmethod
    def parse(
        cls,
        priority: str = "",
        state: str = "",
        site: str = "",
        machine: str = "",
        kind: str = "",
    ) -> AlarmFilter:
        """Build a filter from query values ('' = any); DataError names a bad one."""
        try:
            prio = Priority(priority) if priority else None
        except ValueError:
            names = ", ".join(p.value for p in Priority)
            raise DataError(f"priority {priority[:50]!r} is not one of {names}") from None
        if state and state not in STATE_FILTERS:
            names = ", ".join(STATE_FILTERS)
            raise DataError(f"state {state[:50]!r} is not one of {names}")
        if kind and kind not in KINDS:
            raise DataError(f"kind {kind[:50]!r} is not one of {', '.join(KINDS)}")
        site = site.strip()
        return cls(
            prio,
            state or None,
            check_segment(site, "site") if site else None,
            MachinePath.parse(machine.strip("/")) if machine.strip() else None,
            kind or "plant",
        )

    def query(self) -> str:
        """Return the filter as a query string (without '?')."""
        pairs = [
            ("priority", self.priority.value if self.priority else ""),
            ("state", self.state or ""),
            ("site", self.site or ""),
            ("machine", str(self.machine) if self.machine else ""),
            ("kind", "" if self.kind == "plant" else self.kind),
        ]
        return urlencode([(k, v) for k, v in pairs if v])

    def keeps_source(self, source: str) -> bool:
        """Return whether an alarm (or event) source is of the filter's kind, site and machine."""
        if self.kind != "all" and is_chain(source) != (self.kind == "chain"):
            return False
        asset = asset_of(source)
        if self.site and not (asset == self.site or asset.startswith(self.site + "/")):
            return False
        if self.machine:
            m = str(self.machine)
            return asset == m or asset.startswith(m + "/")
        return True

    def keeps(self, alarm: Alarm) -> bool:
        """Return whether the list shows ``alarm``."""
        if self.priority and alarm.priority != self.priority:
            return False
        if self.state and not STATE_FILTERS[self.state][1](alarm):
            return False
        return self.keeps_source(alarm.source)


@dataclass(frozen=True)
class AlarmRow:
    """One alarm as the list shows it, with the actions its state allows."""

    alarm_id: str
    rule_id: str
    source: str
    site: str
    machine: str | None
    machine_url: str | None
    priority: str
    source_url: str | None
    state: str
    state_label: str
    active: bool
    message: str
    detail: str
    value: str | None
    limit: str | None
    age: str | None
    raised: str | None
    acked_by: str | None
    shelved_until: str | None
    shelved_by: str | None
    can_ack: bool
    shelve_minutes: tuple[int, ...]
    can_unshelve: bool
    rest: str = ""  # the source's path below its machine ("/temp_c"), shown after the link


def _limit_text(rule: Any) -> str | None:
    kind = getattr(rule, "kind", None)
    if kind in ("high", "low"):
        return f"{'>' if kind == 'high' else '<'} {format_value(rule.limit, None, _NUM)}"
    if kind == "below_target":
        return f"< {format_value(rule.target, None, _NUM)} (target)"
    if kind == "rate":
        return f"{format_value(rule.max_rate, None, _NUM)} per {format_age(int(rule.per_s * 1000))}"
    if kind == "stale":
        return f"no value for {format_age(int(rule.max_age_s * 1000))}"
    if kind == "state_duration":
        return f"{rule.state} > {format_age(int(rule.max_duration_s * 1000))}"
    return None


def alarm_rows(
    alarms: Iterable[Alarm],
    rules: dict[str, Any],
    flt: AlarmFilter,
    now_ms: int,
    may_act: Callable[[str], bool],
    units: Callable[[str], str | None] = lambda source: None,
    evidence: Callable[[str], str | None] = lambda source: None,
) -> list[AlarmRow]:
    """Return the rows of the alarms ``flt`` keeps, most urgent first, then newest first.

    ``may_act(site)`` says whether the caller may act on alarms of that site (operator role);
    ``units(source)`` returns a source tag's unit (the historian's tag metadata);
    ``evidence(source)`` the evidence behind an anomaly alarm (shown as its detail).
    """
    kept = [a for a in alarms if a.state != _S.NORMAL and flt.keeps(a)]
    kept.sort(key=lambda a: (a.priority.rank, -(a.raised_ms or 0), a.alarm_id))
    rows = []
    for a in kept:
        rule = rules.get(a.rule_id)
        machine = machine_of(a.source)
        site = asset_of(a.source).split("/", 1)[0]
        act = may_act(site)
        max_min = (getattr(rule, "max_shelve_s", 8 * 3600.0) or 0) / 60
        rows.append(
            AlarmRow(
                alarm_id=a.alarm_id,
                rule_id=a.rule_id,
                source=a.source,
                site=site,
                machine=str(machine) if machine else None,
                machine_url=machine_url(machine) if machine else None,
                priority=a.priority.value,
                source_url=source_url(a.source),
                state=a.state.value,
                state_label=STATE_LABELS.get(a.state, a.state.value),
                active=a.active,
                message=plain_message(a, rule, units(a.source)),
                detail=evidence(a.source) or getattr(rule, "message", "") or a.rule_id,
                value=None if a.value is None else _num(a.value, units(a.source)),
                limit=_limit_text(rule),
                age=None if a.raised_ms is None else format_age(now_ms - a.raised_ms),
                raised=_iso(a.raised_ms),
                acked_by=a.acked_by,
                shelved_until=_iso(a.shelved_until_ms) if a.state == _S.SHELVED else None,
                shelved_by=a.shelved_by if a.state == _S.SHELVED else None,
                can_ack=act and a.state in _ACKABLE,
                shelve_minutes=tuple(m for m in SHELVE_MINUTES if m <= max_min)
                if act and a.state in _SHELVABLE
                else (),
                can_unshelve=act and a.state == _S.SHELVED,
                rest=asset_of(a.source)[len(str(machine)) :] if machine else "",
            )
        )
    return rows


# ------------------------------------------------------------------------------ helpers
def _service(request: Request) -> AlarmService:
    """Return the running alarm service, or one over the stored snapshot (as the API does)."""
    running = getattr(request.app.state, "alarms", None)
    if running is not None:
        return running
    return AlarmService(request.app.state.historian, request.app.state.settings)


def _may_act(settings: Settings, principal: Principal | None) -> Callable[[str], bool]:
    """Return whether the caller may act on a site's alarms (operator of this server's plant)."""
    if not settings.auth.required:
        return lambda site: True
    enterprise = settings.enterprise
    cache: dict[str, bool] = {}

    def may(site: str) -> bool:
        if site not in cache:
            d = decide(Need.operator, principal, enterprise=enterprise, asset_names={"site": site})
            cache[site] = d.allowed
        return cache[site]

    return may


def _by(principal: Principal | None) -> str:
    """Return who acts: the user's name, or the API key's id (no sign-in when auth is off)."""
    if principal is None:
        return "web page"
    return principal.name if principal.kind is PrincipalKind.user else f"key {principal.name}"


def _whole(settings: Settings, principal: Principal | None) -> bool:
    """Return whether the caller may view the whole enterprise (not a site-limited grant)."""
    if not settings.auth.required:
        return True
    return decide(Need.viewer, principal, enterprise=settings.enterprise).allowed


def _csrf(principal: Principal | None) -> str:
    return principal.csrf_token or "" if principal and principal.session_id else ""


def _units(request: Request, enterprise: str) -> Callable[[str], str | None]:
    """Return a lookup of alarm sources' units (the historian's tag metadata), memoised."""
    memo: dict[str, str | None] = {}

    def unit(source: str) -> str | None:
        if source not in memo:
            try:
                memo[source] = request.app.state.historian.tag(enterprise, source).unit
            except DataError:  # a derived source, or a tag not stored yet
                memo[source] = None
        return memo[source]

    return unit


def _list_context(
    request: Request, settings: Settings, principal: Principal | None, flt: AlarmFilter
) -> dict[str, Any]:
    notice = None
    kinds = {"plant": 0, "chain": 0}
    try:
        service = _service(request)
    except AlarmRuleError as exc:  # no service runs and the stored rules do not load
        rules: dict[str, Any] = {}
        rows: list[AlarmRow] = []
        notice = f"The alarm rules cannot be loaded: {'; '.join(exc.problems)[:1000]}"
    else:
        rules = {r.id: r for r in service.rules()}
        alarms = service.alarms()
        rows = alarm_rows(
            alarms, rules, flt, _now_ms(), _may_act(settings, principal),
            units=_units(request, settings.enterprise), evidence=service.bank.explain,
        )  # fmt: skip
        for a in alarms:
            if a.state != _S.NORMAL:
                kinds["chain" if is_chain(a.source) else "plant"] += 1
    return {
        "rows": rows,
        "kinds": kinds,
        "filter": flt,
        "back": flt.query(),
        "csrf_token": _csrf(principal),
        "running": getattr(request.app.state, "alarms", None) is not None,
        "rule_count": len(rules),
        "notice": notice,
    }


def history_page(
    store: AlarmStore,
    enterprise: str,
    keep: Callable[[dict[str, Any]], bool] | None,
    offset: int,
    limit: int,
    chunk: int = 1000,
) -> tuple[list[dict[str, Any]], bool]:
    """Return a page of lifecycle events, newest first, and whether older ones follow.

    Walks the event sequence backwards from the newest in windows of ``chunk``; with a filter
    it scans at most `HISTORY_SCAN` events.
    """
    hi = store.last_seq(enterprise)
    need = offset + limit + 1
    found: list[dict[str, Any]] = []
    if keep is None:  # sequence numbers are contiguous per enterprise: read the window itself
        lo = max(hi - need, 0)
        rows = store.events(enterprise, after_seq=lo, limit=hi - lo) if hi > lo else []
        found = list(reversed(rows))
    else:
        scanned = 0
        while hi > 0 and len(found) < need and scanned < HISTORY_SCAN:
            lo = max(hi - chunk, 0)
            rows = store.events(enterprise, after_seq=lo, limit=hi - lo)
            found.extend(r for r in reversed(rows) if keep(r))
            scanned += hi - lo
            hi = lo
    return found[offset : offset + limit], len(found) > offset + limit


def _history_row(row: dict[str, Any], now_ms: int) -> dict[str, Any]:
    machine = machine_of(row["source"])
    return {
        **row,
        "time": _iso(row["ts_ms"]),
        "age": format_age(now_ms - int(row["ts_ms"])),
        "machine_url": machine_url(machine) if machine else None,
        "value_text": None if row["value"] is None else format_value(row["value"], None, _NUM),
    }


def _sites(request: Request, settings: Settings, rows: list[AlarmRow]) -> list[str]:
    names = set(settings.plant.sites) | {m.site for m in settings.plant.machines}
    names |= {r.site for r in rows}
    return sorted(n for n in names if n)


# ------------------------------------------------------------------------------ pages
FilterQ = Annotated[str, Query(max_length=400)]


@router.get("/alarms", response_class=HTMLResponse)
def alarms_page(
    request: Request,
    settings: SettingsDep,
    principal: PrincipalDep,
    priority: FilterQ = "",
    state: FilterQ = "",
    site: FilterQ = "",
    kind: FilterQ = "",
    hoffset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="History rows to skip")] = 0,
    hlimit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="History rows per page")] = 25,
) -> HTMLResponse:
    """Show open plant alarms (or chain alerts: ``kind``) with filters, actions and history."""
    flt = AlarmFilter.parse(priority, state, site, kind=kind)
    context = _list_context(request, settings, principal, flt)
    keep = None
    if flt.priority or flt.site or flt.kind != "all":

        def keep(row: dict[str, Any]) -> bool:
            if flt.priority and row["priority"] != flt.priority.value:
                return False
            return flt.keeps_source(row["source"])

    store = AlarmStore(request.app.state.historian)
    events, more = history_page(store, settings.enterprise, keep, hoffset, hlimit)
    now = _now_ms()
    pager = Pager(
        hoffset,
        hlimit,
        len(events),
        more,
        params=tuple(parse_qsl(flt.query())),
        offset_name="hoffset",
        limit_name="hlimit",
    )
    sites = _sites(request, settings, context["rows"])
    if not _whole(settings, principal):  # a site-limited grant: its own site only
        sites = [flt.site] if flt.site else []
    context.update(
        nav_here="/alarms",
        enterprise=settings.enterprise,
        priorities=[p.value for p in Priority],
        states=[(k, v[0]) for k, v in STATE_FILTERS.items()],
        sites=sites,
        history=[_history_row(e, now) for e in events],
        history_pager=pager,
        poll_s=ALARM_POLL_S,
    )
    return _render(request, "alarms.html", context)


@router.get("/parts/alarms", response_class=HTMLResponse)
def alarms_part(
    request: Request,
    settings: SettingsDep,
    principal: PrincipalDep,
    machine: FilterQ = "",
    priority: FilterQ = "",
    state: FilterQ = "",
    site: FilterQ = "",
    kind: FilterQ = "",
) -> HTMLResponse:
    """Return the alarm list alone (of one machine, or all), with the operators' buttons."""
    flt = AlarmFilter.parse(priority, state, site, machine, kind)
    return _render(request, "_alarm_list.html", _list_context(request, settings, principal, flt))


# ------------------------------------------------------------------------------ actions
def _back_filter(back: str) -> AlarmFilter:
    """Return the filter a form came from (an unreadable one shows everything)."""
    values = dict(parse_qsl(back[:1000]))
    try:
        return AlarmFilter.parse(
            values.get("priority", ""),
            values.get("state", ""),
            values.get("site", ""),
            values.get("machine", ""),
            values.get("kind", ""),
        )
    except DataError:
        return AlarmFilter()


def _visible_filter(
    settings: Settings, principal: Principal | None, flt: AlarmFilter, site: str
) -> AlarmFilter:
    """Return ``flt`` if the caller may view it, else the same narrowed to the action's site.

    The form's ``back`` is not checked by the route table (only ``?site=`` is): a site-limited
    user must not get another site's alarms back by naming it there.
    """
    if not settings.auth.required:
        return flt
    names = {"site": flt.site or "", "machine": str(flt.machine) if flt.machine else ""}
    names = {k: v for k, v in names.items() if v}
    decision = decide(Need.viewer, principal, enterprise=settings.enterprise, asset_names=names)
    if decision.allowed:
        return flt
    return AlarmFilter(flt.priority, flt.state, site or None, None, flt.kind)


def _act(
    request: Request,
    settings: Settings,
    principal: Principal | None,
    site: str,
    alarm_id: str,
    back: str,
    verb: str,
    action: Callable[[AlarmService, str], Any],
) -> Response:
    """Check the alarm lies on ``site``, act, and answer with the refreshed list (or a redirect)."""
    try:
        service = _service(request)
    except AlarmRuleError as exc:
        raise HTTPException(409, f"the alarm rules cannot be loaded: {exc}") from exc
    found = next((a for a in service.alarms(include_normal=True) if a.alarm_id == alarm_id), None)
    notice: str | None = None
    status = 200
    if found is None:
        notice, status = f"Alarm {alarm_id} does not exist (any more).", 404
    elif site and asset_of(found.source).split("/", 1)[0] != site:
        raise HTTPException(403, f"alarm {alarm_id} is not on site {site}")
    else:
        by = _by(principal)
        try:
            action(service, by)
        except (AlarmNotFound, AlarmActionError, DataError) as exc:
            notice = f"Could not {verb}: {exc}"
            status = 404 if isinstance(exc, AlarmNotFound) else 409
    flt = _visible_filter(settings, principal, _back_filter(back), site)
    if request.headers.get("hx-request"):
        context = _list_context(request, settings, principal, flt)
        context["notice"] = notice or context["notice"]
        return _render(request, "_alarm_list.html", context)  # 200: htmx swaps it in
    if notice is None:
        query = flt.query()
        return RedirectResponse("/alarms" + (f"?{query}" if query else ""), status_code=303)
    raise HTTPException(status, notice)


AlarmIdF = Annotated[str, Form(min_length=1, max_length=1000)]
BackF = Annotated[str, Form(max_length=1000)]
SiteQ = Annotated[str, Query(max_length=200, description="Site of the alarm")]


@router.post("/alarms/acknowledge")
def acknowledge_form(
    request: Request,
    settings: SettingsDep,
    principal: PrincipalDep,
    alarm_id: AlarmIdF,
    back: BackF = "",
    site: SiteQ = "",
) -> Response:
    """Acknowledge an alarm from the page (operators)."""
    return _act(
        request, settings, principal, site, alarm_id, back, "acknowledge",
        lambda s, by: s.acknowledge(alarm_id, by=by),
    )  # fmt: skip


@router.post("/alarms/shelve")
def shelve_form(
    request: Request,
    settings: SettingsDep,
    principal: PrincipalDep,
    alarm_id: AlarmIdF,
    minutes: Annotated[int, Form(ge=1, le=7 * 24 * 60, description="Shelve for this long")],
    back: BackF = "",
    site: SiteQ = "",
) -> Response:
    """Shelve an alarm for ``minutes`` from the page (operators)."""
    until = _now_ms() + minutes * 60_000
    return _act(
        request, settings, principal, site, alarm_id, back, "shelve",
        lambda s, by: s.shelve(alarm_id, until_ms=until, by=by, comment="shelved on the web page"),
    )  # fmt: skip


@router.post("/alarms/unshelve")
def unshelve_form(
    request: Request,
    settings: SettingsDep,
    principal: PrincipalDep,
    alarm_id: AlarmIdF,
    back: BackF = "",
    site: SiteQ = "",
) -> Response:
    """Unshelve an alarm from the page (operators)."""
    return _act(
        request, settings, principal, site, alarm_id, back, "unshelve",
        lambda s, by: s.unshelve(alarm_id, by=by),
    )  # fmt: skip
