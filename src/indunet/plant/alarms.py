"""ISA-18.2 alarms: rules on tags and derived values, the alarm lifecycle, shelving and floods.

Pure code: updates and the clock come in as arguments (``ts_ms``, ``now_ms``), lifecycle events
go out as values. Notification (`indunet.plant.notify`), storage and the API live elsewhere.

Semantics, in short (details in ``docs/alarms.md``):

* A rule targets one ``tag`` or a ``pattern`` over the namespace (``+`` = one level, ``#`` =
  the rest). Each (rule, source tag) pair is one alarm: it is raised once per occurrence, however
  many samples stay beyond the limit (flood containment).
* Limit rules (``high``, ``low``, ``below_target``, ``rate``) are evaluated at every sample and
  at every `AlarmEngine.tick`: the condition sets beyond the limit and clears only past the
  deadband; the alarm raises once the condition has held for ``on_delay_s`` and returns once it
  has been clear for ``off_delay_s``.
* ``stale`` is evaluated on ticks (no good update for ``max_age_s``); ``state_duration`` on state
  changes and ticks (machine in ``state`` for more than ``max_duration_s``, by default only while
  the shift is planned).
* Lifecycle: normal → unack → acked → normal, or unack → rtn_unack → normal; latching alarms wait
  in ``latched_*`` for an operator reset. Shelved and out-of-service alarms are tracked but not
  annunciated; at unshelve they come back as new alarms if their condition still holds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from indunet.errors import ConfigError, DataError, IndunetError
from indunet.model import Quality
from indunet.uns import TagPath, check_segment

__all__ = [
    "TRANSITIONS",
    "Alarm",
    "AlarmActionError",
    "AlarmEngine",
    "AlarmEvent",
    "AlarmRule",
    "AlarmRuleError",
    "AlarmState",
    "BelowTargetRule",
    "EventKind",
    "HighLimitRule",
    "LowLimitRule",
    "Priority",
    "RateRule",
    "RestoreReport",
    "StaleRule",
    "StateChange",
    "StateDurationRule",
    "check_rules",
    "load_rules",
    "pattern_matches",
]

DERIVED = "derived"


def derived_samples(tags: Sequence[str], ts: Sequence[int], values: Sequence[float]) -> pa.Table:
    """Return samples of derived tags (OEE, data quality, anomaly scores, RUL) as the table of
    tag, ts, value and quality (good) the engine evaluates."""
    return pa.table(
        {
            "tag": pa.array(tags, pa.string()),
            "ts": pa.array(ts, pa.int64()),
            "value": pa.array(values, pa.float64()),
            "quality": pa.array([0] * len(tags), pa.uint8()),
        }
    )


#: "never" for times; far enough from int64's ends that differences cannot overflow
NEVER = -(2**62)


# --------------------------------------------------------------------------- rules


class Priority(StrEnum):
    """Alarm priority, ISA-18.2 style (most urgent first)."""

    URGENT = "urgent"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Return 0 for urgent … 3 for low."""
        return _PRIORITY_ORDER.index(self)

    def raised(self) -> Priority:
        """Return the next higher priority (urgent stays urgent)."""
        return _PRIORITY_ORDER[max(0, self.rank - 1)]


_PRIORITY_ORDER = (Priority.URGENT, Priority.HIGH, Priority.MEDIUM, Priority.LOW)


def _check_tag(value: str) -> str:
    """Check a rule's tag: a full tag id site/area/line/machine/tag or ``derived/...``."""
    if not isinstance(value, str):
        raise ValueError("must be text")
    parts = [p.strip() for p in value.split("/")]
    if parts[0] == DERIVED:
        if len(parts) < 2:
            raise ValueError("a derived tag needs a name after 'derived/'")
        for part in parts[1:]:
            _segment(part, "derived name")
        return "/".join(parts)
    try:
        return str(TagPath.parse(value))
    except DataError as exc:
        raise ValueError(f"{exc} (or derived/NAME for a derived value)") from None


def _segment(part: str, level: str) -> str:
    try:
        return check_segment(part, level)
    except DataError as exc:
        raise ValueError(str(exc)) from None


def _check_pattern(value: str) -> str:
    """Check a namespace pattern: segments, ``+`` for one level, ``#`` for the rest (last)."""
    if not isinstance(value, str):
        raise ValueError("must be text")
    parts = [p.strip() for p in value.split("/")]
    for i, part in enumerate(parts):
        if part == "#":
            if i != len(parts) - 1:
                raise ValueError("'#' may only be the last level of a pattern")
        elif part != "+":
            if "+" in part or "#" in part:
                raise ValueError(f"level {part!r}: '+' and '#' must stand alone as a whole level")
            _segment(part, "pattern level")
    if "+" not in parts and "#" not in parts:
        raise ValueError("has no wildcard ('+' or '#'); use 'tag' for a single tag")
    return "/".join(parts)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for part in pattern.split("/"):
        out.append("[^/]+" if part == "+" else ".+" if part == "#" else re.escape(part))
    return re.compile("/".join(out))


def pattern_matches(pattern: str, tag: str) -> bool:
    """Tell whether ``tag`` falls under the namespace ``pattern`` (``+`` one level, ``#`` rest)."""
    return _pattern_regex(pattern).fullmatch(tag) is not None


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        description="Unique rule id: letters, digits, _ . : - (no '@', which separates sources).",
    )
    tag: str | None = Field(None, description="One tag, site/area/line/machine/tag or derived/…")
    pattern: str | None = Field(None, description="Tags under a pattern, e.g. s1/a1/l1/+/power_kw")
    priority: Priority = Priority.MEDIUM
    message: str = Field("", max_length=500)
    latching: bool = Field(False, description="After return, wait for an operator reset.")
    escalate_after_s: FiniteFloat | None = Field(
        None, gt=0, description="Escalate once when still unacknowledged after this long."
    )
    max_shelve_s: FiniteFloat = Field(8 * 3600.0, gt=0, description="Longest allowed shelving.")

    @field_validator("tag")
    @classmethod
    def _valid_tag(cls, value: str | None) -> str | None:
        return None if value is None else _check_tag(value)

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, value: str | None) -> str | None:
        return None if value is None else _check_pattern(value)

    @model_validator(mode="after")
    def _one_target(self) -> _Rule:
        if (self.tag is None) == (self.pattern is None):
            raise ValueError("give exactly one of 'tag' or 'pattern'")
        return self

    def watches(self, tag: str) -> bool:
        """Tell whether this rule applies to ``tag``."""
        if self.tag is not None:
            return tag == self.tag
        return pattern_matches(str(self.pattern), tag)


class _Limit(_Rule):
    deadband: FiniteFloat = Field(0.0, ge=0, description="Clear only this far inside the limit.")
    on_delay_s: FiniteFloat = Field(0.0, ge=0, description="Condition must hold this long.")
    off_delay_s: FiniteFloat = Field(0.0, ge=0, description="Clear condition must hold this long.")


class HighLimitRule(_Limit):
    """Alarm when the value goes above ``limit``; clears at or below ``limit - deadband``."""

    kind: Literal["high"] = "high"
    limit: FiniteFloat


class LowLimitRule(_Limit):
    """Alarm when the value goes below ``limit``; clears at or above ``limit + deadband``."""

    kind: Literal["low"] = "low"
    limit: FiniteFloat


class BelowTargetRule(_Limit):
    """Alarm when a (usually derived, e.g. ``derived/oee/...``) value falls below ``target``."""

    kind: Literal["below_target"] = "below_target"
    target: FiniteFloat


class RateRule(_Limit):
    """Alarm when the value changes faster than ``max_rate`` per ``per_s`` seconds."""

    kind: Literal["rate"] = "rate"
    max_rate: FiniteFloat = Field(gt=0)
    per_s: FiniteFloat = Field(60.0, gt=0, description="Time unit of max_rate (60 = per minute).")
    direction: Literal["up", "down", "both"] = "both"


class StaleRule(_Rule):
    """Alarm when a tag has had no good update for ``max_age_s`` (checked on ticks)."""

    kind: Literal["stale"] = "stale"
    max_age_s: FiniteFloat = Field(gt=0)


class StateDurationRule(_Rule):
    """Alarm when a machine stays in ``state`` longer than ``max_duration_s``."""

    kind: Literal["state_duration"] = "state_duration"
    state: str = Field(min_length=1, max_length=64)
    max_duration_s: FiniteFloat = Field(gt=0)
    planned_only: bool = Field(True, description="Count time only while the shift is planned.")


AlarmRule = Annotated[
    HighLimitRule | LowLimitRule | BelowTargetRule | RateRule | StaleRule | StateDurationRule,
    Field(discriminator="kind"),
]
_RULE_ADAPTER: TypeAdapter[Any] = TypeAdapter(AlarmRule)


class AlarmRuleError(ConfigError):
    """One or more alarm rules are invalid; ``problems`` lists each with rule id and field."""

    def __init__(self, problems: list[str]) -> None:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}", detail="\n".join(problems))
        self.problems = problems


def _rule_label(raw: Any, index: int) -> str:
    rid = raw.get("id") if isinstance(raw, Mapping) else None
    return f"alarm rule {rid!r}" if isinstance(rid, str) and rid else f"alarm rule #{index + 1}"


def check_rules(rules: Sequence[Any], known_tags: Iterable[str] | None = None) -> list[str]:
    """Return the problems of a rule set: duplicate ids, unknown tags, patterns matching nothing.

    With ``known_tags`` (the namespace plus the ``derived/...`` names the caller feeds), a rule
    on an unknown tag or a pattern that matches no known tag is a problem naming rule and field.
    """
    problems = []
    seen: set[str] = set()
    known = None if known_tags is None else set(known_tags)
    for rule in rules:
        if rule.id in seen:
            problems.append(f"alarm rule {rule.id!r} field 'id': the id is used twice")
        seen.add(rule.id)
        if known is None:
            continue
        if rule.tag is not None and rule.tag not in known:
            problems.append(f"alarm rule {rule.id!r} field 'tag': unknown tag {rule.tag!r}")
        if rule.pattern is not None:
            rx = _pattern_regex(rule.pattern)
            if not any(rx.fullmatch(t) for t in known):
                problems.append(
                    f"alarm rule {rule.id!r} field 'pattern': {rule.pattern!r} matches no known tag"
                )
    return problems


def load_rules(items: Iterable[Any], known_tags: Iterable[str] | None = None) -> list[AlarmRule]:
    """Validate rules from config or the API (dicts or models); raise `AlarmRuleError` listing all.

    Every problem names the rule (its id, or its position when the id is missing) and the field.
    """
    rules: list[AlarmRule] = []
    problems: list[str] = []
    if isinstance(items, str | bytes | Mapping):
        raise AlarmRuleError(["alarm rules must be a list of rules, one table per rule"])
    for i, raw in enumerate(items):
        label = _rule_label(raw, i)
        if isinstance(raw, _Rule):
            rules.append(raw)  # type: ignore[arg-type]
            continue
        try:
            rules.append(_RULE_ADAPTER.validate_python(raw))
        except ValidationError as exc:
            for err in exc.errors():
                loc = [str(p) for p in err["loc"]]
                if loc and loc[0] in _KIND_TAGS:  # drop the discriminator's own level
                    loc = loc[1:]
                if err["type"].startswith("union_tag"):
                    loc = ["kind"]
                where = f"field {'.'.join(loc)!r}" if loc else "rule"
                msg = err["msg"].removeprefix("Value error, ")
                if err["type"] == "union_tag_invalid":
                    msg = f"unknown kind {err['input'].get('kind')!r}; use one of {_KINDS}"
                elif err["type"] == "union_tag_not_found":
                    msg = f"missing; use one of {_KINDS}"
                problems.append(f"{label} {where}: {msg}")
    problems.extend(check_rules(rules, known_tags))
    if problems:
        raise AlarmRuleError(problems)
    return rules


_KIND_TAGS = ("high", "low", "below_target", "rate", "stale", "state_duration")
_KINDS = ", ".join(_KIND_TAGS)


# --------------------------------------------------------------------------- lifecycle


class AlarmState(StrEnum):
    """Where an alarm is in its ISA-18.2 lifecycle."""

    NORMAL = "normal"
    UNACK = "unack"
    ACKED = "acked"
    RTN_UNACK = "rtn_unack"
    LATCHED_UNACK = "latched_unack"
    LATCHED_ACKED = "latched_acked"
    SHELVED = "shelved"
    OUT_OF_SERVICE = "out_of_service"


class EventKind(StrEnum):
    """What happened to an alarm."""

    RAISED = "raised"
    RETURNED = "returned"
    ACKNOWLEDGED = "acknowledged"
    RESET = "reset"
    SHELVED = "shelved"
    UNSHELVED = "unshelved"
    OUT_OF_SERVICE = "out_of_service"
    IN_SERVICE = "in_service"
    ESCALATED = "escalated"


_S = AlarmState
_E = EventKind
_ANNUNCIATED = (_S.NORMAL, _S.UNACK, _S.ACKED, _S.RTN_UNACK, _S.LATCHED_UNACK, _S.LATCHED_ACKED)


def _both(state: AlarmState, trigger: str, result: tuple[AlarmState, EventKind]) -> dict:
    return {(state, trigger, False): result, (state, trigger, True): result}


#: (state, trigger, latching) -> (next state, event); a missing key means "no change" for the
#: process triggers ``active``/``clear`` and "refused" for the operator triggers ``ack``/``reset``.
TRANSITIONS: dict[tuple[AlarmState, str, bool], tuple[AlarmState, EventKind]] = {
    **_both(_S.NORMAL, "active", (_S.UNACK, _E.RAISED)),
    **_both(_S.RTN_UNACK, "active", (_S.UNACK, _E.RAISED)),
    **_both(_S.LATCHED_UNACK, "active", (_S.UNACK, _E.RAISED)),
    **_both(_S.LATCHED_ACKED, "active", (_S.UNACK, _E.RAISED)),
    (_S.UNACK, "clear", False): (_S.RTN_UNACK, _E.RETURNED),
    (_S.UNACK, "clear", True): (_S.LATCHED_UNACK, _E.RETURNED),
    (_S.ACKED, "clear", False): (_S.NORMAL, _E.RETURNED),
    (_S.ACKED, "clear", True): (_S.LATCHED_ACKED, _E.RETURNED),
    **_both(_S.UNACK, "ack", (_S.ACKED, _E.ACKNOWLEDGED)),
    **_both(_S.RTN_UNACK, "ack", (_S.NORMAL, _E.ACKNOWLEDGED)),
    **_both(_S.LATCHED_UNACK, "ack", (_S.LATCHED_ACKED, _E.ACKNOWLEDGED)),
    **_both(_S.LATCHED_ACKED, "reset", (_S.NORMAL, _E.RESET)),
}


class AlarmActionError(IndunetError):
    """An operator action (acknowledge, shelve, …) does not apply to the alarm in its state."""


@dataclass(slots=True)
class Alarm:
    """One alarm: a rule on one source tag, with its lifecycle state."""

    alarm_id: str
    rule_id: str
    source: str
    state: AlarmState = AlarmState.NORMAL
    priority: Priority = Priority.MEDIUM
    active: bool = False  # process condition (after delays)
    value: float | None = None  # evaluated value at the last raise
    raised_ms: int | None = None
    returned_ms: int | None = None
    acked_ms: int | None = None
    acked_by: str | None = None
    comment: str | None = None
    shelved_until_ms: int | None = None
    shelved_by: str | None = None
    escalated: bool = False
    #: re-triggers not annunciated (raw crossings while active or filtered, hits while shelved)
    suppressed: int = 0
    hidden: int = 0  # condition hits while shelved / out of service (part of ``suppressed``)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out = asdict(self)
        out["state"] = str(self.state)
        out["priority"] = str(self.priority)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alarm:
        """Build an alarm from `to_dict` output."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        kw["state"] = AlarmState(kw.get("state", "normal"))
        kw["priority"] = Priority(kw.get("priority", "medium"))
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """A lifecycle event: raised, returned, acknowledged, shelved, escalated, …."""

    kind: EventKind
    alarm_id: str
    rule_id: str
    source: str
    ts_ms: int
    state: AlarmState
    priority: Priority
    value: float | None = None
    message: str = ""
    by: str | None = None
    comment: str | None = None
    suppressed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (NaN and infinities become None)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["kind"] = str(self.kind)
        out["state"] = str(self.state)
        out["priority"] = str(self.priority)
        if out["value"] is not None and not math.isfinite(out["value"]):
            out["value"] = None
        return out


@dataclass(frozen=True, slots=True)
class StateChange:
    """A machine state change for state-duration rules; ``planned`` = inside a planned shift."""

    tag: str
    ts_ms: int
    state: str | None
    planned: bool = True


@dataclass(slots=True)
class _StateTrack:
    cond: bool = False
    since_ms: int = NEVER
    active: bool = False
    last_ts_ms: int = NEVER
    state: str | None = None
    planned: bool = False


@dataclass(slots=True)
class RestoreReport:
    """What `AlarmEngine.restore` could not carry over (rules removed or changed)."""

    restored_alarms: int = 0
    skipped: list[str] = field(default_factory=list)


def _alarm_id(rule_id: str, source: str) -> str:
    return f"{rule_id}@{source}"


# --------------------------------------------------------------------------- engine

_HIGH, _LOW, _RATE, _STALE = 0, 1, 2, 3
_KIND_CODE = {"high": _HIGH, "low": _LOW, "below_target": _LOW, "rate": _RATE, "stale": _STALE}

# per-binding columns: (name, dtype, initial value)
_COLUMNS: tuple[tuple[str, Any, Any], ...] = (
    ("rule", np.int32, -1),
    ("tag", np.int32, -1),
    ("kind", np.int8, 0),
    ("sign", np.float64, 1.0),
    ("absolute", np.bool_, False),
    ("limit", np.float64, 0.0),
    ("clear", np.float64, 0.0),  # in sign space: the condition clears at or below this
    ("on_delay", np.int64, 0),
    ("off_delay", np.int64, 0),
    ("per_ms", np.float64, 1.0),
    ("max_age", np.int64, 0),
    # carried state
    ("cond", np.int8, 0),
    ("run_start", np.int64, NEVER),
    ("active", np.bool_, False),
    ("last_ts", np.int64, NEVER),
    ("last_value", np.float64, np.nan),
    ("last_x", np.float64, np.nan),
    ("raw", np.bool_, False),
    ("crossings", np.int64, 0),
    ("raises", np.int64, 0),
)
_CARRIED = ("cond", "run_start", "active", "last_ts", "last_value", "last_x", "raw")


def _ffill(values: np.ndarray, decided: np.ndarray) -> np.ndarray:
    """Forward-fill ``values`` from the rows where ``decided`` (row 0 of each group is decided)."""
    idx = np.where(decided, np.arange(len(values)), 0)
    np.maximum.accumulate(idx, out=idx)
    return values[idx]


class AlarmEngine:
    """Evaluate alarm rules over batches of tag updates and run each alarm's lifecycle.

    Updates go in as columns (`update`) or state changes (`update_states`); time-driven checks
    (delays without new samples, stale data, state duration, shelving expiry, escalation) run in
    `tick`. Every call returns the lifecycle events it caused, in time order.
    """

    def __init__(self, rules: Sequence[AlarmRule], *, known_tags: Iterable[str] | None = None):
        problems = check_rules(rules, known_tags)
        if problems:
            raise AlarmRuleError(problems)
        self._rules: list[AlarmRule] = list(rules)
        self._rule_index = {r.id: i for i, r in enumerate(self._rules)}
        self._exact: dict[str, list[int]] = {}
        self._patterns: list[tuple[re.Pattern[str], int]] = []
        self._state_exact: dict[str, list[int]] = {}
        self._state_patterns: list[tuple[re.Pattern[str], int]] = []
        for i, rule in enumerate(self._rules):
            is_state = isinstance(rule, StateDurationRule)
            if rule.tag is not None:
                (self._state_exact if is_state else self._exact).setdefault(rule.tag, []).append(i)
            else:
                target = self._state_patterns if is_state else self._patterns
                target.append((_pattern_regex(str(rule.pattern)), i))
        self._tag_ids: dict[str, int] = {}
        self._tag_names: list[str] = []
        self._n = 0
        self._cap = 0
        self._col: dict[str, np.ndarray] = {}
        self._grow(max(16, sum(len(v) for v in self._exact.values())))
        self._binding_of: dict[tuple[int, int], int] = {}
        self._csr_dirty = True
        self._csr_ptr = np.zeros(1, np.int64)
        self._csr_idx = np.zeros(0, np.int64)
        self._state_rules_of: dict[str, list[int]] = {}
        self._tracks: dict[tuple[int, str], _StateTrack] = {}
        self._alarms: dict[str, Alarm] = {}
        self._watch_start_ms: int | None = None
        self._clock_ms: int | None = None  # latest tick
        self.stats: dict[str, int] = dict.fromkeys(
            ("updates", "evaluated", "bad_rows", "bad_values", "late", "unmatched"), 0
        )
        for tag in self._exact:
            self._tag_id(tag)

    # ----------------------------------------------------------------- bindings

    @property
    def rules(self) -> list[AlarmRule]:
        """Return the rule set (in the order given)."""
        return list(self._rules)

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = max(need, 2 * self._cap)
        for name, dtype, init in _COLUMNS:
            new = np.full(cap, init, dtype=dtype)
            if name in self._col:
                new[: self._n] = self._col[name][: self._n]
            self._col[name] = new
        self._cap = cap

    def _tag_id(self, tag: str) -> int:
        tid = self._tag_ids.get(tag)
        if tid is not None:
            return tid
        tid = len(self._tag_names)
        self._tag_ids[tag] = tid
        self._tag_names.append(tag)
        rules = list(self._exact.get(tag, ()))
        rules += [i for rx, i in self._patterns if rx.fullmatch(tag)]
        for ri in rules:
            self._bind(ri, tid)
        return tid

    def _bind(self, ri: int, tid: int) -> int:
        rule = self._rules[ri]
        b = self._n
        self._grow(b + 1)
        self._n += 1
        c = self._col
        c["rule"][b] = ri
        c["tag"][b] = tid
        kind = _KIND_CODE[rule.kind]
        c["kind"][b] = kind
        if isinstance(rule, StaleRule):
            c["max_age"][b] = round(rule.max_age_s * 1000)
        else:
            assert isinstance(rule, _Limit)
            c["on_delay"][b] = round(rule.on_delay_s * 1000)
            c["off_delay"][b] = round(rule.off_delay_s * 1000)
            if isinstance(rule, RateRule):
                c["limit"][b] = rule.max_rate
                c["clear"][b] = _minus(rule.max_rate, rule.deadband)
                c["per_ms"][b] = rule.per_s * 1000.0
                c["sign"][b] = -1.0 if rule.direction == "down" else 1.0
                c["absolute"][b] = rule.direction == "both"
            else:
                limit = rule.target if isinstance(rule, BelowTargetRule) else rule.limit
                sign = 1.0 if kind == _HIGH else -1.0
                c["sign"][b] = sign
                c["limit"][b] = sign * limit
                c["clear"][b] = sign * _minus(limit, sign * rule.deadband)
        self._binding_of[(ri, tid)] = b
        self._csr_dirty = True
        return b

    def _csr(self) -> tuple[np.ndarray, np.ndarray]:
        if self._csr_dirty:
            n = self._n
            tags = self._col["tag"][:n]
            self._csr_idx = np.argsort(tags, kind="stable").astype(np.int64)
            counts = np.bincount(tags, minlength=len(self._tag_names))
            self._csr_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            self._csr_dirty = False
        if len(self._csr_ptr) < len(self._tag_names) + 1:  # tags without bindings since
            pad = np.full(len(self._tag_names) + 1 - len(self._csr_ptr), self._csr_ptr[-1])
            self._csr_ptr = np.concatenate([self._csr_ptr, pad])
        return self._csr_ptr, self._csr_idx

    # ----------------------------------------------------------------- input columns

    def _columns(
        self, tags: Any, ts_ms: Any, values: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return tag ids (-1 = bad), ts, values and a good-row mask."""
        quality = None
        if isinstance(tags, pa.Table | pa.RecordBatch):
            names = tags.schema.names
            ts_name = next((n for n in ("ts", "ts_ms", "timestamp_ms") if n in names), None)
            for need, have in (("tag", "tag"), ("ts", ts_name), ("value", "value")):
                if have is None or have not in names:
                    raise DataError(
                        f"alarm update table has no {need!r} column (columns: {', '.join(names)})"
                    )
            if "quality" in names:
                quality = tags.column("quality")
            tags, ts_ms, values = tags.column("tag"), tags.column(ts_name), tags.column("value")
        if ts_ms is None or values is None:
            raise DataError("alarm update needs tags, ts_ms and values (or one Arrow table)")
        tag_arr = _string_array(tags)
        ts, ts_ok = _int_array(ts_ms)
        val = _float_array(values)
        n = len(tag_arr)
        for name, arr in (("ts_ms", ts), ("values", val)):
            if len(arr) != n:
                raise DataError(f"alarm update: {name!r} has {len(arr)} entries but 'tags' has {n}")
        good = ts_ok
        if quality is not None:
            q = _float_array(quality)
            bad_q = (q == Quality.BAD) | (q == Quality.STALE)
            val = np.where(bad_q, np.nan, val)
        enc = tag_arr.dictionary_encode()
        names_ = enc.dictionary.to_pylist()
        lut = np.fromiter((self._tag_id(t) for t in names_), dtype=np.int64, count=len(names_))
        lut = np.append(lut, -1)
        codes = pc.fill_null(enc.indices, len(names_)).to_numpy(zero_copy_only=False)
        tid = lut[codes.astype(np.int64)]
        good = good & (tid >= 0)
        return tid, ts, val, good

    # ----------------------------------------------------------------- updates

    def update(self, tags: Any, ts_ms: Any = None, values: Any = None) -> list[AlarmEvent]:
        """Evaluate a batch of updates: columns, or one Arrow table (tag, ts, value[, quality]).

        Non-finite or missing values, bad-quality rows, unknown tags and samples older than the
        last one evaluated for a rule are counted in `stats` and never raise.
        """
        tid, ts, val, good = self._columns(tags, ts_ms, values)
        n_rows = len(tid)
        self.stats["updates"] += n_rows
        self.stats["bad_rows"] += int(n_rows - np.count_nonzero(good))
        if n_rows == 0:
            return []
        finite = np.isfinite(val)
        self.stats["bad_values"] += int(np.count_nonzero(good & ~finite))
        rows = np.flatnonzero(good)
        ptr, idx = self._csr()
        t = tid[rows]
        cnt = ptr[t + 1] - ptr[t]
        self.stats["unmatched"] += int(np.count_nonzero(cnt == 0))
        total = int(cnt.sum())
        if total == 0:
            return []
        rep_rows = np.repeat(rows, cnt)
        starts = np.repeat(ptr[t], cnt)
        offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        b = idx[starts + offs]
        e_ts = ts[rep_rows]
        e_val = val[rep_rows]
        e_ok = finite[rep_rows]
        kind = self._col["kind"][b]
        events: list[tuple[int, int, AlarmEvent]] = []
        stale = (kind == _STALE) & e_ok
        if stale.any():
            events += self._stale_updates(b[stale], e_ts[stale], rep_rows[stale], e_val[stale])
        num = (kind != _STALE) & e_ok
        if num.any():
            nb, nts, nval, nrow = b[num], e_ts[num], e_val[num], rep_rows[num]
            late = nts < self._col["last_ts"][nb]
            if late.any():
                self.stats["late"] += int(np.count_nonzero(late))
                keep = ~late
                nb, nts, nval, nrow = nb[keep], nts[keep], nval[keep], nrow[keep]
            if len(nb):
                self.stats["evaluated"] += len(nb)
                events += self._evaluate(nb, nts, nval, nrow)
        events.sort(key=lambda e: (e[0], e[1]))
        return [e for _, _, e in events]

    def _evaluate(
        self, b: np.ndarray, ts: np.ndarray, v: np.ndarray, row: np.ndarray
    ) -> list[tuple[int, int, AlarmEvent]]:
        """Run limit/rate rules over rows of (binding, ts, value), vectorised per batch."""
        c = self._col
        if len(ts) > 1 and bool(np.all(ts[1:] >= ts[:-1])):
            order = np.argsort(b, kind="stable")
        else:
            order = np.lexsort((row, ts, b))
        b, ts, v, row = b[order], ts[order], v[order], row[order]
        n = len(b)
        first = np.empty(n, np.bool_)
        first[0] = True
        np.not_equal(b[1:], b[:-1], out=first[1:])
        last = np.empty(n, np.bool_)
        last[-1] = True
        last[:-1] = first[1:]
        fb = b[first]

        x = v
        kind = c["kind"][b]
        is_rate = kind == _RATE
        if is_rate.any():
            prev_v = np.empty(n)
            prev_v[1:] = v[:-1]
            prev_v[first] = c["last_value"][fb]
            prev_t = np.empty(n, np.int64)
            prev_t[1:] = ts[:-1]
            prev_t[first] = c["last_ts"][fb]
            dt = (ts - prev_t).astype(np.float64)
            with np.errstate(all="ignore"):
                rate = (v - prev_v) / dt * c["per_ms"][b]
            rate[(dt <= 0) | (prev_t == NEVER)] = np.nan
            x = np.where(is_rate, rate, v)
        y = x * c["sign"][b]
        absolute = c["absolute"][b]
        if absolute.any():
            y = np.where(absolute, np.abs(x), y)
        limit = c["limit"][b]
        with np.errstate(invalid="ignore"):
            raw = y > limit
            off = y <= c["clear"][b]
        # 1. the condition with hysteresis (deadband): set beyond the limit, clear past deadband
        code = np.where(raw, 1, np.where(off, 0, -1)).astype(np.int8)
        carry = c["cond"][fb]
        head = code[first]
        code[first] = np.where(head >= 0, head, carry)
        cond = _ffill(code, code >= 0)
        prev = np.empty_like(cond)
        prev[1:] = cond[:-1]
        prev[first] = carry
        change = cond != prev
        # 2. when the current condition run began
        rs = ts.copy()
        keep = first & ~change
        rs[keep] = c["run_start"][b[keep]]
        rs = _ffill(rs, change | first)
        dur = ts - rs
        # 3. on/off delays: the debounced alarm condition
        code2 = np.where(
            (cond == 1) & (dur >= c["on_delay"][b]),
            1,
            np.where((cond == 0) & (dur >= c["off_delay"][b]), 0, -1),
        ).astype(np.int8)
        carry2 = c["active"][fb].astype(np.int8)
        head2 = code2[first]
        code2[first] = np.where(head2 >= 0, head2, carry2)
        act = _ffill(code2, code2 >= 0)
        prev_act = np.empty_like(act)
        prev_act[1:] = act[:-1]
        prev_act[first] = carry2
        trans = np.flatnonzero(act != prev_act)
        # 4. raw crossings, to count re-triggers that were not annunciated
        prev_raw = np.empty_like(raw)
        prev_raw[1:] = raw[:-1]
        prev_raw[first] = c["raw"][fb]
        cross = raw & ~prev_raw
        nb = self._n
        c["crossings"][:nb] += np.bincount(b[cross], minlength=nb)
        ups = trans[act[trans] == 1]
        c["raises"][:nb] += np.bincount(b[ups], minlength=nb)
        # 5. carry the last row of each binding into the next batch
        lb = b[last]
        c["cond"][lb] = cond[last]
        c["run_start"][lb] = rs[last]
        c["active"][lb] = act[last] == 1
        c["last_ts"][lb] = ts[last]
        c["last_value"][lb] = v[last]
        c["last_x"][lb] = x[last]
        c["raw"][lb] = raw[last]
        out = []
        for i in trans:
            bi = int(b[i])
            rule = self._rules[int(c["rule"][bi])]
            source = self._tag_names[int(c["tag"][bi])]
            for ev in self._condition(rule, source, int(ts[i]), bool(act[i]), float(x[i]), bi):
                out.append((int(ts[i]), int(row[i]), ev))
        return out

    def _stale_updates(
        self, b: np.ndarray, ts: np.ndarray, row: np.ndarray, v: np.ndarray
    ) -> list[tuple[int, int, AlarmEvent]]:
        """Note good updates for stale rules; an active stale alarm returns at a fresh update.

        A sample older than ``max_age_s`` before the last tick (backfilled data) does not
        end staleness.
        """
        c = self._col
        self.stats["evaluated"] += len(b)
        out = []
        sel = np.flatnonzero(c["active"][b])
        for i in sel[np.argsort(ts[sel], kind="stable")]:
            bi = int(b[i])
            if not c["active"][bi]:
                continue  # already returned by an earlier row of this batch
            if self._clock_ms is not None and ts[i] < self._clock_ms - c["max_age"][bi]:
                continue
            c["active"][bi] = False
            rule = self._rules[int(c["rule"][bi])]
            source = self._tag_names[int(c["tag"][bi])]
            alarm = self._alarms.get(_alarm_id(rule.id, source))
            t = int(ts[i])
            if alarm is not None and alarm.raised_ms is not None:
                t = max(t, alarm.raised_ms)
            for ev in self._condition(rule, source, t, False, float(v[i]), bi):
                out.append((t, int(row[i]), ev))
        np.maximum.at(c["last_ts"], b, ts)
        return out

    def update_states(self, changes: Iterable[StateChange | tuple[Any, ...]]) -> list[AlarmEvent]:
        """Feed machine state changes (tag, ts_ms, state, planned) to state-duration rules."""
        out: list[AlarmEvent] = []
        for item in changes:
            self.stats["updates"] += 1
            try:
                ch = item if isinstance(item, StateChange) else StateChange(*item)
            except TypeError:
                self.stats["bad_rows"] += 1
                continue
            bad_ts = not _is_int(ch.ts_ms) or not -(2**62) < int(ch.ts_ms) < 2**62
            bad_state = ch.state is not None and not isinstance(ch.state, str)
            bad_plan = not isinstance(ch.planned, bool | np.bool_)
            if not isinstance(ch.tag, str) or bad_ts or bad_state or bad_plan:
                self.stats["bad_rows"] += 1
                continue
            rules = self._state_rules(ch.tag)
            if not rules:
                self.stats["unmatched"] += 1
                continue
            ts = int(ch.ts_ms)
            for ri in rules:
                track = self._tracks.setdefault((ri, ch.tag), _StateTrack())
                if ts < track.last_ts_ms:
                    self.stats["late"] += 1
                    continue
                self.stats["evaluated"] += 1
                track.last_ts_ms = ts
                track.state, track.planned = ch.state, bool(ch.planned)
                out += self._state_step(ri, ch.tag, track, ts)
        return out

    def _state_rules(self, tag: str) -> list[int]:
        rules = self._state_rules_of.get(tag)
        if rules is None:
            rules = list(self._state_exact.get(tag, ()))
            rules += [i for rx, i in self._state_patterns if rx.fullmatch(tag)]
            self._state_rules_of[tag] = rules
        return rules

    def _state_step(self, ri: int, tag: str, track: _StateTrack, now: int) -> list[AlarmEvent]:
        rule = self._rules[ri]
        assert isinstance(rule, StateDurationRule)
        cond = track.state == rule.state and (track.planned or not rule.planned_only)
        if cond and not track.cond:
            track.since_ms = now
        track.cond = cond
        want = cond and now - track.since_ms > round(rule.max_duration_s * 1000)
        if want == track.active:
            return []
        track.active = want
        value = (now - track.since_ms) / 1000.0 if want else None
        return self._condition(rule, tag, now, want, value, -1)

    # ----------------------------------------------------------------- clock

    def tick(self, now_ms: int) -> list[AlarmEvent]:
        """Run the time-driven checks: delays, stale data, durations, shelving, escalation.

        Stale rules measure from the later of a tag's last good update and the first tick.
        """
        now = int(now_ms)
        if self._watch_start_ms is None:
            self._watch_start_ms = now
        self._clock_ms = now if self._clock_ms is None else max(self._clock_ms, now)
        c = self._col
        n = self._n
        out: list[AlarmEvent] = []
        kind = c["kind"][:n]
        # delays that expire without a new sample
        pending = np.flatnonzero((kind != _STALE) & (c["cond"][:n] != c["active"][:n]))
        if len(pending):
            cond = c["cond"][pending]
            delay = np.where(cond == 1, c["on_delay"][pending], c["off_delay"][pending])
            for bi in pending[now - c["run_start"][pending] >= delay]:
                up = bool(c["cond"][bi] == 1)
                c["active"][bi] = up
                c["raises"][bi] += up
                out += self._binding_condition(int(bi), now, up, float(c["last_x"][bi]))
        # stale data
        stale = np.flatnonzero(kind == _STALE)
        if len(stale):
            base = np.maximum(c["last_ts"][stale], self._watch_start_ms)
            age = now - base
            hit = stale[(age > c["max_age"][stale]) & ~c["active"][stale]]
            for bi in hit:
                c["active"][bi] = True
                c["raises"][bi] += 1
                age_s = (now - max(int(c["last_ts"][bi]), self._watch_start_ms)) / 1000.0
                out += self._binding_condition(int(bi), now, True, age_s)
        # state duration
        for (ri, tag), track in self._tracks.items():
            if track.cond and not track.active:
                out += self._state_step(ri, tag, track, now)
        # shelving expiry and escalation
        for alarm in list(self._alarms.values()):
            until = alarm.shelved_until_ms
            if alarm.state == _S.SHELVED and (until is None or until <= now):
                out += self._unshelve(alarm, now, by=None, comment="shelving expired")
            elif alarm.state == _S.UNACK and not alarm.escalated:
                rule = self._rules[self._rule_index[alarm.rule_id]]
                after = rule.escalate_after_s
                since = alarm.raised_ms if alarm.raised_ms is not None else now
                if after is not None and now - since >= after * 1000:
                    alarm.escalated = True
                    alarm.priority = alarm.priority.raised()
                    out.append(self._event(alarm, _E.ESCALATED, now))
        out.sort(key=lambda e: e.ts_ms)
        return out

    def _binding_condition(self, bi: int, ts: int, active: bool, value: float) -> list[AlarmEvent]:
        c = self._col
        rule = self._rules[int(c["rule"][bi])]
        return self._condition(rule, self._tag_names[int(c["tag"][bi])], ts, active, value, bi)

    # ----------------------------------------------------------------- lifecycle

    def _alarm(self, rule: AlarmRule, source: str) -> Alarm:
        aid = _alarm_id(rule.id, source)
        alarm = self._alarms.get(aid)
        if alarm is None:
            alarm = Alarm(aid, rule.id, source, priority=rule.priority)
            self._alarms[aid] = alarm
        return alarm

    def _suppressed(self, alarm: Alarm, bi: int | None = None) -> int:
        if bi is None:
            rule_idx = self._rule_index.get(alarm.rule_id)
            tid = self._tag_ids.get(alarm.source)
            bi = (
                -1 if rule_idx is None or tid is None else self._binding_of.get((rule_idx, tid), -1)
            )
        if bi is None or bi < 0:
            return alarm.hidden
        c = self._col
        return max(0, int(c["crossings"][bi]) - int(c["raises"][bi])) + alarm.hidden

    def _condition(
        self,
        rule: AlarmRule,
        source: str,
        ts: int,
        active: bool,
        value: float | None,
        bi: int | None,
    ) -> list[AlarmEvent]:
        alarm = self._alarm(rule, source)
        alarm.active = active
        alarm.suppressed = self._suppressed(alarm, bi)
        if alarm.state not in _ANNUNCIATED:
            if active:
                alarm.hidden += 1
                alarm.suppressed += 1
            return []
        step = TRANSITIONS.get((alarm.state, "active" if active else "clear", rule.latching))
        if step is None:
            return []
        alarm.state, kind = step
        if kind == _E.RAISED:
            alarm.raised_ms, alarm.value, alarm.escalated = ts, value, False
            alarm.returned_ms = alarm.acked_ms = alarm.acked_by = alarm.comment = None
            alarm.priority = rule.priority
        else:
            alarm.returned_ms = ts
        return [self._event(alarm, kind, ts, value=value)]

    def _event(
        self,
        alarm: Alarm,
        kind: EventKind,
        ts: int,
        *,
        value: float | None = None,
        by: str | None = None,
        comment: str | None = None,
    ) -> AlarmEvent:
        rule = self._rules[self._rule_index[alarm.rule_id]]
        return AlarmEvent(
            kind=kind,
            alarm_id=alarm.alarm_id,
            rule_id=alarm.rule_id,
            source=alarm.source,
            ts_ms=ts,
            state=alarm.state,
            priority=alarm.priority,
            value=value,
            message=rule.message,
            by=by,
            comment=comment,
            suppressed=alarm.suppressed,
        )

    def _lookup(self, alarm_id: str, *, create: bool) -> Alarm:
        alarm = self._alarms.get(alarm_id)
        if alarm is not None:
            return alarm
        rule_id, sep, source = str(alarm_id).partition("@")
        ri = self._rule_index.get(rule_id)
        if not sep or ri is None:
            raise AlarmActionError(
                f"alarm {alarm_id!r} does not exist: expected RULE@TAG with a known rule id"
            )
        rule = self._rules[ri]
        if not rule.watches(source):
            raise AlarmActionError(
                f"alarm {alarm_id!r}: rule {rule_id!r} does not watch {source!r}"
            )
        if not create:
            raise AlarmActionError(f"alarm {alarm_id!r} is normal; there is nothing to do")
        return self._alarm(rule, source)

    @staticmethod
    def _who(by: str, comment: str | None) -> tuple[str, str | None]:
        if not isinstance(by, str) or not by.strip():
            raise AlarmActionError("the operator's name ('by') is missing")
        if comment is not None and len(comment) > 1000:
            raise AlarmActionError("comment is longer than 1000 characters")
        return by.strip()[:200], comment

    def _operator(self, alarm_id: str, trigger: str, by: str, now_ms: int, comment: str | None):
        by, comment = self._who(by, comment)
        alarm = self._lookup(alarm_id, create=False)
        rule = self._rules[self._rule_index[alarm.rule_id]]
        step = TRANSITIONS.get((alarm.state, trigger, rule.latching))
        if step is None:
            hint = " (acknowledge it first)" if alarm.state == _S.LATCHED_UNACK else ""
            raise AlarmActionError(
                f"alarm {alarm_id!r} is {alarm.state.value}; cannot {trigger} it{hint}"
            )
        alarm.state, kind = step
        if kind == _E.ACKNOWLEDGED:
            alarm.acked_ms, alarm.acked_by, alarm.comment = int(now_ms), by, comment
        return [self._event(alarm, kind, int(now_ms), by=by, comment=comment)]

    def acknowledge(
        self, alarm_id: str, *, by: str, now_ms: int, comment: str | None = None
    ) -> list[AlarmEvent]:
        """Acknowledge an unacknowledged alarm (raise `AlarmActionError` otherwise)."""
        return self._operator(alarm_id, "ack", by, now_ms, comment)

    def reset(
        self, alarm_id: str, *, by: str, now_ms: int, comment: str | None = None
    ) -> list[AlarmEvent]:
        """Reset a latched alarm that has returned and been acknowledged."""
        return self._operator(alarm_id, "reset", by, now_ms, comment)

    def shelve(
        self, alarm_id: str, *, until_ms: int, by: str, now_ms: int, comment: str | None = None
    ) -> list[AlarmEvent]:
        """Shelve an alarm until ``until_ms`` (at most the rule's ``max_shelve_s`` ahead)."""
        by, comment = self._who(by, comment)
        alarm = self._lookup(alarm_id, create=True)
        rule = self._rules[self._rule_index[alarm.rule_id]]
        if alarm.state == _S.OUT_OF_SERVICE:
            raise AlarmActionError(f"alarm {alarm_id!r} is out of service; return it first")
        if not _is_int(until_ms) or int(until_ms) <= now_ms:
            raise AlarmActionError(f"alarm {alarm_id!r}: shelve 'until_ms' must be after now")
        if int(until_ms) - now_ms > rule.max_shelve_s * 1000:
            raise AlarmActionError(
                f"alarm {alarm_id!r}: shelving is limited to {rule.max_shelve_s:g} s by rule "
                f"{rule.id!r} (field 'max_shelve_s')"
            )
        alarm.state = _S.SHELVED
        alarm.shelved_until_ms, alarm.shelved_by = int(until_ms), by
        return [self._event(alarm, _E.SHELVED, int(now_ms), by=by, comment=comment)]

    def unshelve(self, alarm_id: str, *, by: str, now_ms: int) -> list[AlarmEvent]:
        """Unshelve an alarm before its expiry; it is raised again if its condition holds."""
        by, _ = self._who(by, None)
        alarm = self._lookup(alarm_id, create=False)
        if alarm.state != _S.SHELVED:
            raise AlarmActionError(f"alarm {alarm_id!r} is {alarm.state.value}, not shelved")
        return self._unshelve(alarm, int(now_ms), by=by, comment=None)

    def _unshelve(
        self, alarm: Alarm, now: int, *, by: str | None, comment: str | None
    ) -> list[AlarmEvent]:
        alarm.shelved_until_ms = alarm.shelved_by = None
        return self._back(alarm, now, _E.UNSHELVED, by, comment)

    def _back(
        self, alarm: Alarm, now: int, kind: EventKind, by: str | None, comment: str | None
    ) -> list[AlarmEvent]:
        alarm.state = _S.NORMAL
        out = [self._event(alarm, kind, now, by=by, comment=comment)]
        if alarm.active:  # still in alarm: annunciate it as a new occurrence
            rule = self._rules[self._rule_index[alarm.rule_id]]
            alarm.active = False
            out += self._condition(rule, alarm.source, now, True, alarm.value, None)
        return out

    def remove_from_service(
        self, alarm_id: str, *, by: str, now_ms: int, comment: str | None = None
    ) -> list[AlarmEvent]:
        """Take an alarm out of service (maintenance): tracked, never annunciated."""
        by, comment = self._who(by, comment)
        alarm = self._lookup(alarm_id, create=True)
        if alarm.state == _S.OUT_OF_SERVICE:
            raise AlarmActionError(f"alarm {alarm_id!r} is already out of service")
        alarm.state = _S.OUT_OF_SERVICE
        alarm.shelved_until_ms = alarm.shelved_by = None
        return [self._event(alarm, _E.OUT_OF_SERVICE, int(now_ms), by=by, comment=comment)]

    def return_to_service(self, alarm_id: str, *, by: str, now_ms: int) -> list[AlarmEvent]:
        """Return an out-of-service alarm; it is raised again if its condition holds."""
        by, _ = self._who(by, None)
        alarm = self._lookup(alarm_id, create=False)
        if alarm.state != _S.OUT_OF_SERVICE:
            raise AlarmActionError(f"alarm {alarm_id!r} is {alarm.state.value}, not out of service")
        return self._back(alarm, int(now_ms), _E.IN_SERVICE, by, None)

    # ----------------------------------------------------------------- views and persistence

    def alarms(self, *, include_normal: bool = False) -> list[Alarm]:
        """Return copies of the alarms (by default only those not in the normal state)."""
        out = []
        for alarm in self._alarms.values():
            if include_normal or alarm.state != _S.NORMAL:
                copy = Alarm.from_dict(alarm.to_dict())
                copy.suppressed = self._suppressed(alarm)
                out.append(copy)
        return out

    def alarm(self, alarm_id: str) -> Alarm:
        """Return a copy of one alarm (normal if it never fired)."""
        alarm = self._lookup(alarm_id, create=True)
        copy = Alarm.from_dict(alarm.to_dict())
        copy.suppressed = self._suppressed(alarm)
        return copy

    def snapshot(self) -> dict[str, Any]:
        """Return the engine's state as plain JSON-ready dicts, for `restore`."""
        c = self._col
        n = self._n
        touched = np.flatnonzero(
            (c["last_ts"][:n] != NEVER) | c["active"][:n] | (c["crossings"][:n] > 0)
        )
        bindings = []
        for bi in touched:
            row: dict[str, Any] = {
                "rule": self._rules[int(c["rule"][bi])].id,
                "source": self._tag_names[int(c["tag"][bi])],
            }
            for name in (*_CARRIED, "crossings", "raises"):
                value = c[name][bi].item()
                if isinstance(value, float) and not math.isfinite(value):
                    value = None
                row[name] = value
            bindings.append(row)
        tracks = [
            {"rule": self._rules[ri].id, "source": tag, **asdict(track)}
            for (ri, tag), track in self._tracks.items()
        ]
        return {
            "version": 1,
            "watch_start_ms": self._watch_start_ms,
            "clock_ms": self._clock_ms,
            "bindings": bindings,
            "states": tracks,
            "alarms": [a.to_dict() for a in self._alarms.values()],
            "stats": dict(self.stats),
        }

    def restore(self, snapshot: Mapping[str, Any]) -> RestoreReport:
        """Load a `snapshot` into this (fresh) engine; entries of removed rules are reported."""
        if not isinstance(snapshot, Mapping) or snapshot.get("version") != 1:
            raise DataError("alarm snapshot is not a version 1 snapshot from AlarmEngine.snapshot")
        report = RestoreReport()
        self._watch_start_ms = snapshot.get("watch_start_ms")
        self._clock_ms = snapshot.get("clock_ms")
        c = self._col
        for row in snapshot.get("bindings", []):
            ri = self._rule_index.get(row.get("rule"))
            rule = None if ri is None else self._rules[ri]
            if (
                rule is None
                or isinstance(rule, StateDurationRule)
                or not rule.watches(row["source"])
            ):
                report.skipped.append(f"binding {row.get('rule')}@{row.get('source')}")
                continue
            self._tag_id(row["source"])
            bi = self._binding_of[(ri, self._tag_ids[row["source"]])]
            for name in (*_CARRIED, "crossings", "raises"):
                value = row.get(name)
                c[name][bi] = np.nan if value is None else value
        for row in snapshot.get("states", []):
            ri = self._rule_index.get(row.get("rule"))
            if ri is None or not isinstance(self._rules[ri], StateDurationRule):
                report.skipped.append(f"state {row.get('rule')}@{row.get('source')}")
                continue
            names = {f.name for f in fields(_StateTrack)}
            self._tracks[(ri, row["source"])] = _StateTrack(
                **{k: v for k, v in row.items() if k in names}
            )
        for row in snapshot.get("alarms", []):
            alarm = Alarm.from_dict(row)
            ri = self._rule_index.get(alarm.rule_id)
            if ri is None or not self._rules[ri].watches(alarm.source):
                report.skipped.append(f"alarm {alarm.alarm_id} ({alarm.state.value})")
                continue
            self._alarms[alarm.alarm_id] = alarm
            report.restored_alarms += 1
        for key, value in snapshot.get("stats", {}).items():
            if key in self.stats and isinstance(value, int):
                self.stats[key] = value
        return report


# --------------------------------------------------------------------------- input helpers


def _minus(a: float, b: float) -> float:
    """Return a - b computed on the decimal forms, so 0.65 + 0.05 is exactly 0.7."""
    return float(Decimal(repr(a)) - Decimal(repr(b)))


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _string_array(tags: Any) -> pa.Array:
    if isinstance(tags, pa.ChunkedArray):
        tags = tags.combine_chunks()
    if isinstance(tags, pa.Array):
        if pa.types.is_dictionary(tags.type):
            tags = tags.cast(pa.string())
        if pa.types.is_string(tags.type) or pa.types.is_large_string(tags.type):
            return tags.cast(pa.string())
        tags = tags.to_pylist()
    try:
        return pa.array(tags, type=pa.string())
    except (pa.ArrowException, TypeError, ValueError):
        return pa.array([t if isinstance(t, str) else None for t in tags], type=pa.string())


def _as_array(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    try:
        arr = np.asarray(values)
    except (OverflowError, ValueError, TypeError):
        arr = None
    if arr is None or arr.ndim != 1:
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
    return arr


def _int_array(ts: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return int64 timestamps and a mask of usable ones."""
    if isinstance(ts, pa.ChunkedArray | pa.Array):
        if pa.types.is_timestamp(ts.type):
            ts = pc.cast(ts, pa.timestamp("ms")).cast(pa.int64())
        ts = ts.to_numpy(zero_copy_only=False)
    arr = _as_array(ts)
    if arr.dtype.kind == "i":
        arr = arr.astype(np.int64, copy=False)
        return arr, (arr > -(2**62)) & (arr < 2**62)
    if arr.dtype.kind in "uf":
        with np.errstate(invalid="ignore"):
            f = arr.astype(np.float64)
            ok = np.isfinite(f) & (np.abs(f) < 2**62) & (f == np.floor(f))
        return np.where(ok, f, 0).astype(np.int64), ok
    out = np.zeros(len(arr), np.int64)
    ok = np.zeros(len(arr), np.bool_)
    for i, v in enumerate(arr.tolist()):
        if _is_int(v) and abs(int(v)) < 2**62:
            out[i], ok[i] = int(v), True
    return out, ok


def _float_array(values: Any) -> np.ndarray:
    """Return float64 values; anything that is not a number (or bool) becomes NaN."""
    if isinstance(values, pa.ChunkedArray | pa.Array):
        t = values.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        values = values.to_pylist()
    arr = _as_array(values)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64)
    out = np.full(len(arr), np.nan)
    for i, v in enumerate(arr.tolist()):
        if isinstance(v, int | float):
            try:
                out[i] = float(v)
            except OverflowError:
                out[i] = math.copysign(math.inf, v)
    return out
