"""The Data page: tag browser, dead letters and the health of the connectors.

Shows what the historian knows (``historian.tags`` / ``latest`` / ``dead_letters``, the calls
behind ``/api/v1/tags`` and ``/api/v1/deadletters``), the MQTT ingest counters of ``/health``
and the edge agents' health tags (``…/edge_connected``, ``edge_errors`` … per device).
Also holds `Pager`, the limit/offset pagination the other pages share.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from indunet.api.deps import HistorianDep, SettingsDep
from indunet.auth.model import Need, decide
from indunet.auth.web import PrincipalDep
from indunet.edge.reading import HEALTH_TAGS
from indunet.errors import DataError
from indunet.model import DataType, Quality
from indunet.store import Historian
from indunet.uns import TagPath, parse_prefix
from indunet.web.plant_tree import format_age, format_value, machine_url

__all__ = ["EdgeDevice", "Pager", "TagRow", "edge_devices", "router", "tag_rows"]

router = APIRouter(include_in_schema=False, tags=["web"])

#: rows per page the pages accept (a bigger ``limit`` is a clear 422)
MAX_LIMIT = 500
#: furthest ``offset`` the pages accept (pages scan this far at most)
MAX_OFFSET = 100_000
#: dead letters the store can list at once (``/api/v1/deadletters`` caps ``limit`` here too)
MAX_DEAD_LETTERS = 10_000
#: the edge agent's health tags start with this
EDGE_PREFIX = "edge_"
#: an edge device whose health tags are older than this is shown stale
EDGE_STALE_MS = 5 * 60_000

LimitQ = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")]
OffsetQ = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip.")]


@dataclass(frozen=True)
class Pager:
    """Where a page of rows sits: ``offset``/``limit`` and whether more rows follow."""

    offset: int
    limit: int
    shown: int
    more: bool
    params: tuple[tuple[str, str], ...] = ()
    offset_name: str = "offset"
    limit_name: str = "limit"

    def _url(self, offset: int) -> str:
        query = [(k, v) for k, v in self.params if v != ""]
        query += [(self.offset_name, str(offset)), (self.limit_name, str(self.limit))]
        return "?" + urlencode(query)

    @property
    def first(self) -> int:
        """Return the 1-based number of the first row shown (0 when none)."""
        return self.offset + 1 if self.shown else 0

    @property
    def last(self) -> int:
        """Return the 1-based number of the last row shown."""
        return self.offset + self.shown

    @property
    def prev_url(self) -> str | None:
        """Return the address of the previous page, or None on the first."""
        return self._url(max(self.offset - self.limit, 0)) if self.offset > 0 else None

    @property
    def next_url(self) -> str | None:
        """Return the address of the next page, or None on the last."""
        return self._url(self.offset + self.limit) if self.more else None

    @property
    def first_url(self) -> str:
        """Return the address of the first page."""
        return self._url(0)

    @property
    def past_end(self) -> bool:
        """Return whether the offset lies beyond the last row."""
        return self.offset > 0 and self.shown == 0


def paginate(rows: list[Any], offset: int, limit: int, **kw: Any) -> tuple[list[Any], Pager]:
    """Return one page of ``rows`` and its pager."""
    page = rows[offset : offset + limit]
    return page, Pager(offset, limit, len(page), len(rows) > offset + limit, **kw)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)


@dataclass(frozen=True)
class TagRow:
    """One tag of the browser: its metadata, latest value and age."""

    path: str
    name: str
    data_type: str
    unit: str | None
    description: str | None
    source: str | None
    value: str | None
    age: str | None
    quality: str
    machine: str | None
    machine_url: str | None


def _machine_of(path: str) -> tuple[str | None, str | None]:
    try:
        machine = TagPath.parse(path).machine_path
    except DataError:
        return None, None
    return str(machine), machine_url(machine)


def _latest_for(historian: Historian, enterprise: str, paths: list[str]) -> dict[str, dict]:
    """Return the latest row of each tag in ``paths`` (one query per machine, or per site)."""
    groups = sorted({p.rsplit("/", 1)[0] for p in paths})
    if len(groups) > 12:  # many machines on one page: one query per site instead
        groups = sorted({p.split("/", 1)[0] for p in paths})
    wanted = set(paths)
    out: dict[str, dict] = {}
    for prefix in groups:
        for row in historian.latest(enterprise, prefix).to_pylist():
            if row["tag"] in wanted:
                out[row["tag"]] = row
    return out


def tag_rows(historian: Historian, enterprise: str, tags: list[Any], now_ms: int) -> list[TagRow]:
    """Return the browser rows of ``tags`` (`TagInfo`) with their latest values."""
    latest = _latest_for(historian, enterprise, [t.path for t in tags])
    rows = []
    for t in tags:
        row = latest.get(t.path)
        machine, url = _machine_of(t.path)
        value = age = None
        quality = "none"
        if row is not None:
            value = format_value(row["value"], row["text"], DataType(t.data_type))
            age = format_age(now_ms - int(row["ts"]))
            quality = Quality(row["quality"]).name.lower()
        rows.append(
            TagRow(
                path=t.path,
                name=t.path.rsplit("/", 1)[-1],
                data_type=str(t.data_type),
                unit=t.unit,
                description=t.description,
                source=t.source,
                value=value,
                age=age,
                quality=quality,
                machine=machine,
                machine_url=url,
            )
        )
    return rows


@dataclass(frozen=True)
class EdgeDevice:
    """One device an edge agent reads, as its health tags tell."""

    machine: str
    machine_url: str | None
    connected: bool | None
    errors: str | None
    latency_ms: str | None
    last_error: str | None
    last_good_age: str | None
    age: str | None
    stale: bool


def edge_devices(historian: Historian, enterprise: str, now_ms: int) -> list[EdgeDevice]:
    """Return the devices whose edge agent publishes health tags, by machine."""
    tags = historian.tags(enterprise, search=f"/{EDGE_PREFIX}", limit=MAX_OFFSET)
    machines: dict[str, dict[str, dict]] = defaultdict(dict)
    wanted = {t.path for t in tags if t.path.rsplit("/", 1)[-1] in HEALTH_TAGS}
    if not wanted:
        return []
    for path, row in _latest_for(historian, enterprise, sorted(wanted)).items():
        machine, name = path.rsplit("/", 1)
        machines[machine][name] = row
    out = []
    for machine, health in sorted(machines.items()):
        newest = max(int(r["ts"]) for r in health.values())

        def num(name: str, health: dict[str, dict] = health) -> float | None:
            row = health.get(name)
            return None if row is None or row["value"] is None else float(row["value"])

        connected = num("edge_connected")
        errors = num("edge_errors")
        latency = num("edge_latency_ms")
        last_good = num("edge_last_good_ms")
        last_error = health.get("edge_last_error", {}).get("text") or None
        _, url = _machine_of(f"{machine}/x")
        out.append(
            EdgeDevice(
                machine=machine,
                machine_url=url,
                connected=None if connected is None else bool(connected),
                errors=None if errors is None else format_value(errors, None, DataType.NUMBER),
                latency_ms=None
                if latency is None
                else format_value(latency, None, DataType.NUMBER),
                last_error=last_error,
                last_good_age=None if last_good is None else format_age(now_ms - int(last_good)),
                age=format_age(now_ms - newest),
                stale=now_ms - newest > EDGE_STALE_MS,
            )
        )
    return out


def _mqtt(request: Request) -> dict[str, Any] | None:
    mqtt = getattr(request.app.state, "mqtt", None)
    return asdict(mqtt.stats) if mqtt is not None else None


@router.get("/data", response_class=HTMLResponse)
def data_page(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    q: Annotated[str, Query(max_length=200, description="Tag path contains this")] = "",
    prefix: Annotated[str, Query(max_length=400, description="Tags under this path")] = "",
    offset: OffsetQ = 0,
    limit: LimitQ = 50,
    dl_offset: Annotated[int, Query(ge=0, le=MAX_DEAD_LETTERS)] = 0,
    dl_limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> HTMLResponse:
    """Show the tag browser, the latest dead letters and the connectors' health."""
    enterprise = settings.enterprise
    now = _now_ms()
    prefix = parse_prefix(prefix)  # a bad prefix is a DataError: a clear 422
    # a grant limited to one site passed the route table with ?prefix= under its site: show
    # it only that site's tags and edge devices, and no dead letters (they are enterprise-wide)
    whole = (
        not settings.auth.required or decide(Need.viewer, principal, enterprise=enterprise).allowed
    )
    search = q.strip()
    found = historian.tags(enterprise, prefix, search=search or None, limit=offset + limit + 1)
    page, pager = paginate(found, offset, limit, params=(("q", search), ("prefix", prefix),
                                                         ("dl_offset", str(dl_offset)),
                                                         ("dl_limit", str(dl_limit))))  # fmt: skip
    letters = (
        historian.dead_letters(enterprise, limit=min(dl_offset + dl_limit + 1, MAX_DEAD_LETTERS))
        if whole
        else []
    )
    dl_page, dl_pager = paginate(
        letters,
        dl_offset,
        dl_limit,
        params=(("q", search), ("prefix", prefix), ("offset", str(offset)), ("limit", str(limit))),
        offset_name="dl_offset",
        limit_name="dl_limit",
    )
    context = {
        "nav_here": "/data",
        "enterprise": enterprise,
        "q": search,
        "prefix": prefix,
        "tags": tag_rows(historian, enterprise, page, now),
        "pager": pager,
        "letters": [
            {**r, "age": format_age(now - int(r["received_ms"])), "payload": _short(r["payload"])}
            for r in dl_page
        ],
        "dl_pager": dl_pager,
        "mqtt": _mqtt(request),
        "edge": [
            d
            for d in edge_devices(historian, enterprise, now)
            if whole or d.machine == prefix or d.machine.startswith(prefix + "/")
        ],
        "whole": whole,
        "historian": {
            "backend": historian.backend,
            "where": _where(settings),
        },
    }
    return _render(request, "data.html", context)


def _short(payload: Any, size: int = 300) -> str:
    if payload is None:
        return ""
    if isinstance(payload, bytes | bytearray | memoryview):
        payload = bytes(payload).decode("utf-8", "replace")
    text = str(payload)
    return text if len(text) <= size else text[:size] + "…"


def _where(settings: Any) -> str:
    if settings.db and settings.db.startswith(("postgresql://", "postgres://")):
        host = settings.db.split("@", 1)[-1].split("?", 1)[0]  # never show credentials
        return f"PostgreSQL {host}, schema {settings.pg_schema}"
    return f"DuckDB file {settings.duckdb_path.name}"
