"""The uplink contract: topics and payloads a plant sends to its regional instance.

Written down in docs/federation.md. Pure: no I/O, no clock. `build` makes a message, `parse`
checks one that arrived and refuses anything malformed with a `DataError` naming the field.
Topics are
``indunet/uplink/v1/{enterprise}/{kind}``; a payload is one JSON object::

    {"v": 1, "kind": "kwh_daily", "enterprise": "acme", "site": "s1", "period": "2026-06-01",
     "key": "acme/s1/2026-06-01", "computed_ms": 1780000000000, "rev": 17, "data": {...}}

``key`` (enterprise/site/period) is the idempotency key: the receiver keeps one record per key
and kind, and a record replaces the stored one only when its ``(computed_ms, rev)`` is not
older, so re-sent, duplicated and out-of-order messages never double or roll back a figure.
Only aggregates are in the contract; raw machine data is never part of it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from indunet.errors import DataError
from indunet.uns import check_segment

__all__ = [
    "KINDS",
    "MAX_ITEMS",
    "MAX_OFFERS",
    "MAX_PAYLOAD_BYTES",
    "OFFERS_PERIOD",
    "OFFERS_SITE",
    "ROOT",
    "STATE_NAMES",
    "VERSION",
    "Uplink",
    "build",
    "hour_period",
    "idempotency_key",
    "minute_period",
    "parse",
    "parse_topic",
    "period_start_ms",
    "topic",
]

ROOT = "indunet/uplink/v1"
VERSION = 1
KINDS = ("kwh_daily", "kwh_hourly", "states", "oee_daily", "offers", "inventory")
#: an ``offers`` (``inventory``) record is the whole plant's docking offers (declared items'
#: stock) now: this site and period
OFFERS_SITE, OFFERS_PERIOD = "*", "current"
MAX_OFFERS = 50  # about 250 bytes each: within MAX_PAYLOAD_BYTES
MAX_ITEMS = 60  # inventory items, about 200 bytes each
#: a business item id (no control characters), short enough for a ``cover-{item}`` offer id
_ITEM = re.compile(r"^[^\x00-\x1f\x7f]{1,120}$")
#: machine states counted in a ``states`` message (the overview's states, DESIGN §4)
STATE_NAMES = ("running", "idle", "off", "offline", "unknown")
MAX_PAYLOAD_BYTES = 16 * 1024
#: no site uses more in a day (the regional monitor's own limit is 50 GWh per enterprise)
MAX_KWH = 5.0e7
_MAX_COUNT = 10_000_000
_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000  # 2000-01-01 .. 2100-01-01
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:(00|15|30|45)Z$")
_MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z$")
_OEE_COUNTS = ("produced", "good", "scrap", "produced_without_ideal")
#: planned busy time of a site's day: up to 10 million machines × 25 h
_MAX_ELEMENT_MS = 25 * 3_600_000 * _MAX_COUNT


@dataclass(frozen=True, slots=True)
class Uplink:
    """One aggregate of one site and period, as sent and as received."""

    enterprise: str
    kind: str
    site: str
    period: str
    computed_ms: int
    rev: int
    data: dict[str, Any]

    @property
    def key(self) -> str:
        """Return the idempotency key ``enterprise/site/period``."""
        return idempotency_key(self.enterprise, self.site, self.period)

    @property
    def topic(self) -> str:
        """Return the topic the message is published on."""
        return topic(self.enterprise, self.kind)

    def newer_than(self, computed_ms: int, rev: int) -> bool:
        """Return whether this record may replace a stored one (same or newer revision)."""
        return (self.computed_ms, self.rev) >= (computed_ms, rev)

    def payload(self) -> bytes:
        """Return the JSON payload."""
        return orjson.dumps(
            {
                "v": VERSION,
                "kind": self.kind,
                "enterprise": self.enterprise,
                "site": self.site,
                "period": self.period,
                "key": self.key,
                "computed_ms": self.computed_ms,
                "rev": self.rev,
                "data": self.data,
            }
        )


def idempotency_key(enterprise: str, site: str, period: str) -> str:
    """Return the idempotency key of a record."""
    return f"{enterprise}/{site}/{period}"


def topic(enterprise: str, kind: str) -> str:
    """Return ``indunet/uplink/v1/{enterprise}/{kind}`` after checking both."""
    _segment(enterprise, "enterprise")
    if kind not in KINDS:
        raise DataError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    return f"{ROOT}/{enterprise}/{kind}"


def parse_topic(name: str) -> tuple[str, str]:
    """Return (enterprise, kind) of an uplink topic, or raise `DataError`."""
    if not isinstance(name, str) or not name.startswith(ROOT + "/"):
        raise DataError(f"topic {str(name)[:200]!r} is not under {ROOT}/")
    parts = name[len(ROOT) + 1 :].split("/")
    if len(parts) != 2:
        raise DataError(f"topic {name[:200]!r} is not {ROOT}/{{enterprise}}/{{kind}}")
    enterprise, kind = parts
    _segment(enterprise, "enterprise")
    if kind not in KINDS:
        raise DataError(f"topic {name[:200]!r}: kind {kind[:50]!r} is not one of {KINDS}")
    return enterprise, kind


def hour_period(hour_ms: int) -> str:
    """Return the period text of a site-local hour: its start in UTC (``2026-06-01T13:00Z``).

    A site in a zone with a half- or quarter-hour offset has hours starting at :30 or :45 UTC.
    """
    if hour_ms % 900_000:
        raise DataError(f"an hour starting at {hour_ms} is not on a quarter of a UTC hour")
    return datetime.fromtimestamp(hour_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


def minute_period(ms: int) -> str:
    """Return the period text of the UTC minute ``ms`` falls in (``2026-06-01T13:05Z``)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


def period_start_ms(kind: str, period: str) -> int:
    """Return the start (epoch ms, UTC) of an hour or minute period; days are site-local."""
    if kind in ("kwh_daily", "oee_daily"):
        raise DataError(f"a {kind} period is a site-local day; it has no UTC start")
    parsed = datetime.strptime(period, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def build(
    enterprise: str,
    kind: str,
    site: str,
    period: str,
    data: dict[str, Any],
    *,
    computed_ms: int,
    rev: int,
) -> Uplink:
    """Return a checked record (the same checks a receiver makes)."""
    record = _check(Uplink(enterprise, kind, site, period, int(computed_ms), int(rev), dict(data)))
    size = len(record.payload())
    if size > MAX_PAYLOAD_BYTES:
        raise DataError(f"a {kind} payload of {size} bytes is over {MAX_PAYLOAD_BYTES}")
    return record


def parse(topic_name: str, payload: bytes) -> Uplink:
    """Return the record of a received message, or raise `DataError` naming what is wrong."""
    enterprise, kind = parse_topic(topic_name)
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise DataError("payload must be bytes")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DataError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    try:
        doc = orjson.loads(bytes(payload))
    except orjson.JSONDecodeError as exc:
        raise DataError(f"payload is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise DataError(f"payload must be a JSON object, got {type(doc).__name__}")
    version = doc.get("v")
    if type(version) is not int:
        raise DataError("field v: missing or not an integer (the contract version)")
    if version != VERSION:
        raise DataError(f"field v: version {version} is not understood (this receiver: {VERSION})")
    for name, want in (("kind", kind), ("enterprise", enterprise)):
        if doc.get(name) != want:
            raise DataError(
                f"field {name}: {str(doc.get(name))[:80]!r} does not match the topic's {want!r}"
            )
    site, period = doc.get("site"), doc.get("period")
    if not isinstance(site, str) or not isinstance(period, str):
        raise DataError("fields site and period must be text")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise DataError("field data: missing or not an object")
    record = Uplink(
        enterprise, kind, site, period, _int(doc, "computed_ms"), _int(doc, "rev"), data
    )
    record = _check(record)
    if doc.get("key") != record.key:
        raise DataError(f"field key: {str(doc.get('key'))[:200]!r} is not {record.key!r}")
    return record


# ---------------------------------------------------------------------- checks
def _segment(value: object, what: str) -> str:
    if not isinstance(value, str) or check_segment(value, what) != value:
        raise DataError(f"{what} name {str(value)[:80]!r} has leading or trailing blanks")
    if "/" in value:  # check_segment forbids it too; said here for the reader
        raise DataError(f"{what} name {value[:80]!r} contains '/'")
    return value


def _int(doc: dict[str, Any], name: str, lo: int = 0, hi: int = 2**62) -> int:
    value = doc.get(name)
    if type(value) is not int:
        raise DataError(f"field {name}: missing or not an integer")
    if not lo <= value <= hi:
        raise DataError(f"field {name}: {value} is out of range [{lo}, {hi}]")
    return value


def _number(doc: dict[str, Any], name: str, lo: float, hi: float, *, optional: bool = False):
    value = doc.get(name)
    if value is None and optional:
        return None
    if type(value) not in (int, float):
        raise DataError(f"field data.{name}: missing or not a number")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise DataError(f"field data.{name}: {value} is out of range [{lo:g}, {hi:g}]")
    return float(value)


def _day(text: str) -> date:
    if not _DAY.match(text):
        raise DataError(f"field period: {text[:40]!r} is not a day (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DataError(f"field period: {text!r} is not a calendar day") from None


def _check(record: Uplink) -> Uplink:
    _segment(record.enterprise, "enterprise")
    _segment(record.site, "site")
    if record.kind not in KINDS:
        raise DataError(f"kind {record.kind!r} is not one of {', '.join(KINDS)}")
    if not _MIN_MS <= record.computed_ms <= _MAX_MS:
        raise DataError(f"field computed_ms: {record.computed_ms} is not a time of this century")
    if not 0 <= record.rev <= 2**62:
        raise DataError(f"field rev: {record.rev} is out of range")
    data = record.data
    if record.kind in ("kwh_daily", "oee_daily"):
        _day(record.period)
    elif record.kind in ("offers", "inventory"):
        if (record.site, record.period) != (OFFERS_SITE, OFFERS_PERIOD):
            raise DataError(
                f"fields site and period of {record.kind} must be {OFFERS_SITE!r} and "
                f"{OFFERS_PERIOD!r}"
            )
    else:
        pattern = _HOUR if record.kind == "kwh_hourly" else _MINUTE
        if not pattern.match(record.period):
            form = "YYYY-MM-DDTHH:MMZ" + (", MM 00/15/30/45" if record.kind == "kwh_hourly" else "")
            raise DataError(f"field period: {record.period[:40]!r} is not {form}")
        try:
            period_start_ms(record.kind, record.period)
        except ValueError:
            raise DataError(f"field period: {record.period!r} is not a UTC time") from None
    clean: dict[str, Any]
    if record.kind in ("kwh_daily", "kwh_hourly"):
        clean = {
            "kwh": _number(data, "kwh", 0.0, MAX_KWH),
            "coverage": _number(data, "coverage", 0.0, 1.0),
        }
        if record.kind == "kwh_daily":
            sites = data.get("sites")
            if not isinstance(sites, list) or not sites or len(sites) > 1000:
                raise DataError("field data.sites: must list the enterprise's sites (1 to 1000)")
            for s in sites:
                _segment(s, "site")
            if record.site not in sites:
                raise DataError(f"field data.sites: does not name the record's site {record.site}")
            if len(set(sites)) != len(sites):
                raise DataError("field data.sites: names a site twice")
            clean["sites"] = sorted(sites)
            tz = data.get("timezone")
            if not isinstance(tz, str) or not 0 < len(tz) <= 64:
                raise DataError("field data.timezone: missing or not an IANA zone name")
            clean["timezone"] = tz
    elif record.kind == "offers":
        clean = {"offers": _offers(data.get("offers"))}
    elif record.kind == "inventory":
        clean = {"items": _items(data.get("items"))}
    elif record.kind == "states":
        counts = {s: _count(data, s) for s in STATE_NAMES}
        machines = _count(data, "machines")
        if sum(counts.values()) != machines:
            raise DataError(
                f"field data.machines: {machines} is not the sum of the state counts "
                f"({sum(counts.values())})"
            )
        clean = {"machines": machines, **counts}
        clean["at_ms"] = _int(data, "at_ms", _MIN_MS, _MAX_MS)
    else:  # oee_daily: ISO 22400 elements only; ratios are derived from sums, never sent
        clean = {n: _count(data, n, hi=_MAX_ELEMENT_MS) for n in ("pbt_ms", "apt_ms")}
        clean["ideal_ms"] = _number(data, "ideal_ms", 0.0, float(_MAX_ELEMENT_MS))
        clean.update({n: _number(data, n, 0.0, 1e15) for n in _OEE_COUNTS})
        clean["machines"] = _count(data, "machines")
        if clean["apt_ms"] > clean["pbt_ms"]:
            raise DataError("field data.apt_ms: over pbt_ms (ISO 22400: APT <= PBT)")
        if clean["good"] > clean["produced"] or clean["produced_without_ideal"] > clean["produced"]:
            raise DataError("field data.good / produced_without_ideal: over produced")
        complete = data.get("complete")
        if type(complete) is not bool:
            raise DataError("field data.complete: missing or not true/false")
        clean["complete"] = complete
        clean["end_ms"] = _int(data, "end_ms", _MIN_MS, _MAX_MS)
    return Uplink(
        record.enterprise,
        record.kind,
        record.site,
        record.period,
        record.computed_ms,
        record.rev,
        clean,
    )


def _offers(value: Any) -> list[dict[str, Any]]:
    """Return docking offers checked as `indunet.docking.problem.Offer` (ids unique)."""
    from pydantic import ValidationError

    from indunet.docking.problem import Offer

    if not isinstance(value, list) or len(value) > MAX_OFFERS:
        raise DataError(f"field data.offers: must be a list of at most {MAX_OFFERS} offers")
    out, ids = [], set()
    for n, doc in enumerate(value):
        try:
            offer = Offer.model_validate(doc)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(offer)"
            raise DataError(f"field data.offers[{n}].{where}: {first['msg']}") from None
        if offer.id in ids:
            raise DataError(f"field data.offers[{n}].id: {offer.id[:80]!r} is listed twice")
        ids.add(offer.id)
        out.append(offer.model_dump(mode="json", exclude_none=True))
    return out


def _items(value: Any) -> list[dict[str, Any]]:
    """Return declared items' stock and days of cover, checked (items unique, cover consistent)."""
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise DataError(f"field data.items: must be a list of at most {MAX_ITEMS} items")
    out, seen = [], set()
    for n, doc in enumerate(value):
        where = f"items[{n}]"
        if not isinstance(doc, dict):
            raise DataError(f"field data.{where}: not an object")
        item = doc.get("item")
        if not isinstance(item, str) or not _ITEM.match(item):
            raise DataError(f"field data.{where}.item: missing or not an item id")
        if item in seen:
            raise DataError(f"field data.{where}.item: {item!r} is listed twice")
        seen.add(item)
        clean: dict[str, Any] = {"item": item}
        try:
            clean["quantity"] = _number(doc, "quantity", 0.0, 1e15)
            clean["daily_use"] = _number(doc, "daily_use", 0.0, 1e15, optional=True)
            clean["days_of_cover"] = _number(doc, "days_of_cover", 0.0, 1e9, optional=True)
            clean["cover_target_days"] = _number(doc, "cover_target_days", 0.0, 3650.0)
            as_of = _int(doc, "as_of_ms", _MIN_MS, _MAX_MS)
        except DataError as exc:
            raise DataError(
                str(exc)
                .replace("field data.", f"field data.{where}.", 1)
                .replace("field as_of_ms", f"field data.{where}.as_of_ms", 1)
            ) from None
        below = doc.get("below_cover")
        if type(below) is not bool:
            raise DataError(f"field data.{where}.below_cover: missing or not true/false")
        cover = clean["days_of_cover"]
        if (cover is None) != (not clean["daily_use"]):
            raise DataError(f"field data.{where}.days_of_cover: given exactly when daily_use > 0")
        if cover is not None and not math.isclose(
            cover, clean["quantity"] / clean["daily_use"], rel_tol=1e-3, abs_tol=1e-3
        ):
            raise DataError(f"field data.{where}.days_of_cover: is not quantity / daily_use")
        if below != (cover is not None and cover < clean["cover_target_days"]):
            raise DataError(f"field data.{where}.below_cover: does not match the cover")
        clean["below_cover"] = below
        unit = doc.get("unit")
        if unit is not None and (not isinstance(unit, str) or len(unit) > 32):
            raise DataError(f"field data.{where}.unit: not a text of at most 32 characters")
        clean["unit"] = unit
        clean["as_of_ms"] = as_of
        out.append(clean)
    return out


def _count(data: dict[str, Any], name: str, hi: int = _MAX_COUNT) -> int:
    value = data.get(name)
    if type(value) is not int:
        raise DataError(f"field data.{name}: missing or not an integer")
    if not 0 <= value <= hi:
        raise DataError(f"field data.{name}: {value} is out of range [0, {hi}]")
    return value
