"""Anomaly monitors: configured like alarm rules, raised through the alarm lifecycle.

A monitor (``[[plant.monitors]]`` or ``POST /api/v1/monitors``) watches one tag, the tags under
a pattern, or a machine's tags together. `MonitorBank` feeds it the samples the alarm service
reads and turns its anomalies into derived values ``derived/anomaly/<monitor id>/<tag>``:
the score of the latest anomaly, held for ``hold_s`` (0 otherwise). Each monitor brings its own
high-limit rule ``anomaly.<monitor id>`` on those values, so an anomaly is an ordinary alarm:
priority, acknowledge, shelve, escalation, webhooks. The evidence (which tag, how far from
normal, since when) follows the rule's message in the raised event.

Pure code but for ``reader``, the function the caller gives to read history
(``reader(tags, start_ms, end_ms) -> {tag: (ts, values, texts)}``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError, model_validator

from indunet.condition.anomaly import (
    STOPPED_STATES,
    Anomaly,
    BaselineModel,
    DataQualityFinding,
    MultivariateModel,
    StreamParams,
    TagMonitor,
    fit_baseline,
    fit_multivariate,
    scan,
    score_baseline,
    score_multivariate,
)
from indunet.errors import ConfigError
from indunet.model import Quality
from indunet.plant.alarms import (
    DERIVED,
    AlarmRuleError,
    Priority,
    derived_samples,
    load_rules,
    pattern_matches,
)

__all__ = [
    "ANOMALY",
    "MonitorBank",
    "MonitorConfig",
    "MonitorError",
    "anomaly_asset",
    "load_monitors",
    "monitor_tags",
    "scan_history",
]

ANOMALY = f"{DERIVED}/anomaly/"
RULE_PREFIX = "anomaly."
Reader = Callable[[list[str], int, int], Mapping[str, tuple[np.ndarray, np.ndarray, list]]]
#: after a machine state change, a stream monitor keeps quiet this long (the process settles)
STATE_SETTLE_MS = 300_000
#: recent anomalies kept in the alarm snapshot (all tags together, the newest)
SNAPSHOT_RECENT = 2000
_DEFAULT_THRESHOLD = {"stream": StreamParams().alert, "baseline": 0.6, "multivariate": 0.6}


class MonitorConfig(BaseModel):
    """One anomaly monitor (``[[plant.monitors]]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", description="Unique monitor id.")
    kind: Literal["stream", "baseline", "multivariate"] = Field(
        "stream",
        description="stream: learns each tag's patterns; baseline: median/MAD per time of day "
        "and machine state; multivariate: a machine's tags together.",
    )
    tag: str | None = Field(None, description="One tag (stream, baseline).")
    pattern: str | None = Field(None, description="Every tag under a pattern (stream, baseline).")
    tags: list[str] = Field(default_factory=list, description="A machine's tags (multivariate).")
    machine: str | None = Field(
        None,
        description="Machine id site/area/line/machine: its state (stopped: never anomalous; "
        "baseline: one per state) or name (multivariate).",
    )
    priority: Priority = Priority.MEDIUM
    message: str = Field("", max_length=500)
    threshold: FiniteFloat | None = Field(
        None, gt=0, le=1, description="Score (0-1) that raises the alarm; default per kind."
    )
    min_history_s: FiniteFloat = Field(
        86_400.0, ge=0, description="History needed before the monitor may alarm."
    )
    history_s: FiniteFloat = Field(
        14 * 86_400.0, gt=0, description="History read to learn (and to warm up after a restart)."
    )
    hold_s: FiniteFloat = Field(600.0, ge=0, description="An anomaly's alarm stays active so long.")
    bucket_s: int = Field(3600, gt=0, description="Time-of-day bucket of the baseline.")
    latching: bool = False
    escalate_after_s: FiniteFloat | None = Field(None, gt=0)
    max_shelve_s: FiniteFloat = Field(8 * 3600.0, gt=0)

    @model_validator(mode="after")
    def _check_target(self) -> MonitorConfig:
        rule = {"id": "x", "kind": "high", "limit": 0.0}
        if self.kind == "multivariate":
            if self.tag is not None or self.pattern is not None:
                raise ValueError(
                    "a multivariate monitor takes 'tags' (and 'machine'), not tag/pattern"
                )
            if len(self.tags) < 2 or len(set(self.tags)) != len(self.tags):
                raise ValueError("a multivariate monitor needs at least two different 'tags'")
            for t in self.tags:
                _rule_target({**rule, "tag": t})
        else:
            if (self.tag is None) == (self.pattern is None):
                raise ValueError("give exactly one of 'tag' or 'pattern'")
            if self.tags:
                raise ValueError("'tags' is for multivariate monitors")
            target = {"tag": self.tag} if self.tag else {"pattern": self.pattern}
            _rule_target({**rule, **target})
        if 86_400 % self.bucket_s:
            raise ValueError("bucket_s must divide a day (e.g. 900, 3600)")
        if self.machine is not None:
            parts = self.machine.split("/")
            if len(parts) != 4 or not all(p.strip() for p in parts):
                raise ValueError("machine must be site/area/line/machine")
        return self

    @property
    def alarm_at(self) -> float:
        """The score at which an anomaly raises the alarm."""
        return self.threshold if self.threshold is not None else _DEFAULT_THRESHOLD[self.kind]

    @property
    def rule_id(self) -> str:
        """Id of the alarm rule this monitor brings."""
        return f"{RULE_PREFIX}{self.id}"

    def derived_tag(self, source: str | None = None) -> str:
        """The derived value carrying the score of ``source``: ``derived/anomaly/<id>/<path>``.

        The path is the tag (tag and pattern monitors) or the machine (multivariate), so an
        anomaly alarm counts for the machine it is about (`anomaly_asset`).
        """
        if self.kind == "multivariate":
            return f"{ANOMALY}{self.id}/{self.machine}" if self.machine else f"{ANOMALY}{self.id}"
        src = source if self.pattern is not None and source is not None else self.tag
        return f"{ANOMALY}{self.id}/{src}"

    def sources(self, tags: Iterable[str]) -> list[str]:
        """The tags this monitor scores, of those given."""
        if self.kind == "multivariate":
            return list(self.tags)
        if self.tag is not None:
            return [self.tag]
        return sorted(t for t in tags if pattern_matches(str(self.pattern), t))

    def rule(self) -> Any:
        """The high-limit alarm rule on this monitor's derived values."""
        doc: dict[str, Any] = {
            "id": self.rule_id,
            "kind": "high",
            "limit": self.alarm_at - 1e-9,
            "priority": self.priority.value,
            "message": self.message or f"anomaly ({self.kind} monitor {self.id})",
            "latching": self.latching,
            "max_shelve_s": self.max_shelve_s,
        }
        if self.escalate_after_s is not None:
            doc["escalate_after_s"] = self.escalate_after_s
        if self.pattern is not None:
            doc["pattern"] = f"{ANOMALY}{self.id}/#"
        else:
            doc["tag"] = self.derived_tag()
        return load_rules([doc])[0]


def anomaly_asset(source: str) -> str | None:
    """The plant path an anomaly alarm's source is about (its tag or machine), else None."""
    if not source.startswith(ANOMALY):
        return None
    _, _, path = source.removeprefix(ANOMALY).partition("/")
    return path or None


def _anomaly(doc: Mapping[str, Any]) -> Anomaly:
    """An `Anomaly` from its `Anomaly.to_dict` (None back to NaN)."""
    nan = float("nan")
    return Anomaly(
        str(doc["tag"]),
        int(doc["ts_ms"]),
        int(doc["since_ms"]),
        float(doc["score"]),
        nan if doc.get("value") is None else float(doc["value"]),
        nan if doc.get("median") is None else float(doc["median"]),
        nan if doc.get("z") is None else float(doc["z"]),
        str(doc["reason"]),
    )


def _machine_of(path: str | None) -> str | None:
    """The machine ``site/area/line/machine`` of a tag or machine path, else None."""
    parts = (path or "").split("/")
    return "/".join(parts[:4]) if len(parts) >= 4 and all(parts[:4]) else None


def _rule_target(doc: dict[str, Any]) -> None:
    """Check a tag or pattern as an alarm rule would (ValueError with the rule's sentence)."""
    try:
        load_rules([doc])
    except AlarmRuleError as exc:
        raise ValueError(exc.problems[0].removeprefix("alarm rule 'x' ")) from None


class MonitorError(ConfigError):
    """One or more monitors are invalid; ``problems`` lists each with monitor id and field."""

    def __init__(self, problems: list[str]) -> None:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}", detail="\n".join(problems))
        self.problems = problems


def load_monitors(items: Iterable[Any]) -> list[MonitorConfig]:
    """Validate monitors from config or the API; raise `MonitorError` naming id and field."""
    if isinstance(items, str | bytes | Mapping):
        raise MonitorError(["monitors must be a list of monitors, one table per monitor"])
    out: list[MonitorConfig] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(items):
        rid = raw.get("id") if isinstance(raw, Mapping) else getattr(raw, "id", None)
        label = f"monitor {rid!r}" if isinstance(rid, str) and rid else f"monitor #{i + 1}"
        try:
            m = raw if isinstance(raw, MonitorConfig) else MonitorConfig.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                where = f"field {loc!r}" if loc else "monitor"
                problems.append(f"{label} {where}: {err['msg'].removeprefix('Value error, ')}")
            continue
        if m.id in seen:
            problems.append(f"monitor {m.id!r} field 'id': the id is used twice")
        seen.add(m.id)
        out.append(m)
    if problems:
        raise MonitorError(problems)
    return out


def monitor_tags(monitors: Sequence[MonitorConfig], tags: Iterable[str]) -> set[str]:
    """The derived anomaly tags the monitors feed, given the namespace's tags."""
    known = list(tags)
    out: set[str] = set()
    for m in monitors:
        if m.pattern is None:
            out.add(m.derived_tag())
        else:
            out |= {m.derived_tag(s) for s in m.sources(known)}
    return out


# --------------------------------------------------------------------------- live bank


@dataclass(slots=True)
class _BaselineTrack:
    model: BaselineModel | None = None
    fitted_ms: int = -(2**62)
    since_ms: int | None = None
    problem: str = "insufficient history"


@dataclass(slots=True)
class _MultiTrack:
    model: MultivariateModel | None = None
    fitted_ms: int = -(2**62)
    latest: dict[str, tuple[int, float]] = field(default_factory=dict)
    since_ms: int | None = None
    problem: str = "insufficient history"


@dataclass(slots=True)
class _Held:
    score: float = 0.0
    until_ms: int = -(2**62)


class MonitorBank:
    """The monitors of an enterprise, fed with the samples the alarm service reads.

    ``evidence`` maps a derived tag to the latest `Anomaly` behind it; ``findings`` maps a tag
    to its recent data-quality findings; `status` reports each source's model.
    """

    def __init__(self, monitors: Sequence[MonitorConfig], *, refit_s: float = 86_400.0) -> None:
        self.monitors = list(monitors)
        self.refit_ms = int(refit_s * 1000)
        self._stream: dict[tuple[str, str], TagMonitor] = {}
        self._baseline: dict[tuple[str, str], _BaselineTrack] = {}
        self._multi: dict[str, _MultiTrack] = {}
        self._held: dict[str, _Held] = {}
        self._states: dict[str, str] = {}  # machine id -> current state
        self._state_since: dict[str, int] = {}
        self.evidence: dict[str, Anomaly] = {}
        self.recent: dict[str, deque[Anomaly]] = {}  # by anomalous tag, the last 50
        self.findings: dict[str, deque[DataQualityFinding]] = {}
        self._warm: set[tuple[str, str]] = set()
        self.current: dict[str, float] = {}  # derived tag -> its value at the last round

    # persistence --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """What a restart cannot relearn from history: the held scores (an active anomaly
        alarm's value), the evidence behind them, the runs in progress ("since") and the recent
        anomalies. JSON-ready; the learnt models themselves are refitted from history."""
        return {
            "version": 1,
            "held": {d: [h.score, h.until_ms] for d, h in self._held.items()},
            "evidence": {d: a.to_dict() for d, a in self.evidence.items()},
            "recent": self._recent_to_keep(),
            "since": {
                **{f"baseline\t{k[0]}\t{k[1]}": t.since_ms for k, t in self._baseline.items()},
                **{f"multivariate\t{k}": t.since_ms for k, t in self._multi.items()},
            },
        }

    def _recent_to_keep(self) -> dict[str, list[dict[str, Any]]]:
        """The recent anomalies worth keeping over a restart (the machine page shows 24 h):
        those of the last day before the newest, at most `SNAPSHOT_RECENT` of them."""
        every = sorted((a for items in self.recent.values() for a in items), key=lambda a: a.ts_ms)
        if every:
            newest = every[-1].ts_ms
            every = [a for a in every[-SNAPSHOT_RECENT:] if a.ts_ms >= newest - 86_400_000]
        out: dict[str, list[dict[str, Any]]] = {}
        for a in every:
            out.setdefault(a.tag, []).append(a.to_dict())
        return out

    def restore(self, snap: Mapping[str, Any] | None) -> None:
        """Take back a `snapshot` (of monitors still configured; others are dropped)."""
        if not snap:
            return
        ids = {m.id for m in self.monitors}

        def ours(derived: str) -> bool:
            return derived.removeprefix(ANOMALY).split("/", 1)[0] in ids

        for d, (score, until) in (snap.get("held") or {}).items():
            if ours(d):
                self._held[d] = _Held(float(score), int(until))
        for d, doc in (snap.get("evidence") or {}).items():
            if ours(d):
                self.evidence[d] = _anomaly(doc)
        for tag, docs in (snap.get("recent") or {}).items():
            self.recent[tag] = deque((_anomaly(x) for x in docs), maxlen=50)
        for key, since in (snap.get("since") or {}).items():
            kind, _, rest = key.partition("\t")
            if kind == "baseline":
                mid, _, src = rest.partition("\t")
                if mid in ids:
                    self._baseline.setdefault((mid, src), _BaselineTrack()).since_ms = since
            elif kind == "multivariate" and rest in ids:
                self._multi.setdefault(rest, _MultiTrack()).since_ms = since

    # state --------------------------------------------------------------------------------
    def state_tags(self) -> set[str]:
        """The machine state tags the monitors need (those with a ``machine``)."""
        return {f"{m.machine}/state" for m in self.monitors if m.machine}

    def on_state(self, machine: str, state: str | None, ts_ms: int | None = None) -> None:
        """Take a machine's current state (``site/area/line/machine``) and since when."""
        new = "" if state is None else str(state)
        if self._states.get(machine) != new:
            self._state_since[machine] = -(2**62) if ts_ms is None else int(ts_ms)
        self._states[machine] = new

    def _quiet_for_state(self, m: MonitorConfig, ts_ms: int) -> bool:
        """A stopped machine is never anomalous, nor one just started again (it settles)."""
        if m.machine is None:
            return False
        state = self._states.get(m.machine, "")
        if state.lower() in STOPPED_STATES:
            return True
        return ts_ms < self._state_since.get(m.machine, -(2**62)) + STATE_SETTLE_MS

    # feeding ------------------------------------------------------------------------------
    def feed(
        self,
        points: pa.Table,
        now_ms: int,
        *,
        tags: Iterable[str] = (),
        reader: Reader | None = None,
    ) -> pa.Table | None:
        """Score new points (columns tag, ts, value[, quality]); return derived values.

        Bad and stale samples count as gaps (data quality), never as anomalies.

        ``tags`` are the namespace's tags (for patterns); ``reader`` reads history to fit
        baselines and warm up new stream monitors. Each derived value is the score held for
        ``hold_s`` after the latest anomaly (0 when none).
        """
        by_tag: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if points.num_rows:
            tag_col = np.asarray(points.column("tag").to_pylist(), dtype=object)
            ts = points.column("ts").to_numpy()
            val = points.column("value").to_numpy(zero_copy_only=False).astype(np.float64)
            if "quality" in points.column_names:  # bad or stale samples are gaps, not values
                q = points.column("quality").to_numpy(zero_copy_only=False)
                val = np.where((q == Quality.BAD) | (q == Quality.STALE), np.nan, val)
            for t in np.unique(tag_col):
                sel = tag_col == t
                order = np.argsort(ts[sel], kind="stable")
                by_tag[str(t)] = (ts[sel][order], val[sel][order])
        known = set(tags) | set(by_tag)
        names: list[str] = []
        values: list[float] = []
        for m in self.monitors:
            sources = m.sources(known)
            if m.kind == "stream":
                self._feed_stream(m, sources, by_tag, now_ms, reader)
            elif m.kind == "baseline":
                self._feed_baseline(m, sources, by_tag, now_ms, reader)
            else:
                self._feed_multi(m, by_tag, now_ms, reader)
            derived = (
                {m.derived_tag()} if m.pattern is None else {m.derived_tag(s) for s in sources}
            )
            for d in sorted(derived):
                held = self._held.get(d)
                names.append(d)
                values.append(held.score if held is not None and held.until_ms > now_ms else 0.0)
        self.current = dict(zip(names, values, strict=True))
        if not names:
            return None
        return derived_samples(names, [now_ms] * len(names), values)

    def _raise(self, m: MonitorConfig, source: str, a: Anomaly) -> None:
        if a.score < m.alarm_at:
            return
        d = m.derived_tag(source)
        held = self._held.setdefault(d, _Held())
        until = a.ts_ms + int(m.hold_s * 1000)
        if held.until_ms <= a.ts_ms:
            held.score = a.score
        else:
            held.score = max(held.score, a.score)
        held.until_ms = max(held.until_ms, until)
        if d not in self.evidence or self.evidence[d].ts_ms < a.ts_ms:
            self.evidence[d] = a
        self.recent.setdefault(a.tag, deque(maxlen=50)).append(a)

    def _note(self, tag: str, found: Iterable[DataQualityFinding]) -> None:
        for f in found:
            self.findings.setdefault(tag, deque(maxlen=50)).append(f)

    def _feed_stream(self, m, sources, by_tag, now_ms, reader) -> None:
        for src in sources:
            key = (m.id, src)
            mon = self._stream.get(key)
            if mon is None:
                mon = self._stream[key] = TagMonitor(src, min_history_s=m.min_history_s)
            if key not in self._warm and reader is not None:  # learn from history, no alarms
                self._warm.add(key)
                first = int(by_tag[src][0][0]) if src in by_tag else now_ms
                hist = reader([src], first - int(m.history_s * 1000), first).get(src)
                if hist is not None:
                    for t, v in zip(hist[0].tolist(), hist[1].tolist(), strict=True):
                        mon.update(t, v)
                    mon.findings.clear()
            if src not in by_tag:
                continue
            before = len(mon.findings)
            for t, v in zip(by_tag[src][0].tolist(), by_tag[src][1].tolist(), strict=True):
                a = mon.update(t, v)
                if a is not None and not self._quiet_for_state(m, t):
                    self._raise(m, src, a)
            self._note(src, mon.findings[before:])
            del mon.findings[: max(0, len(mon.findings) - 50)]

    def _fit_due(self, fitted_ms: int, now_ms: int) -> bool:
        return now_ms - fitted_ms >= self.refit_ms

    def _feed_baseline(self, m, sources, by_tag, now_ms, reader) -> None:
        for src in sources:
            track = self._baseline.setdefault((m.id, src), _BaselineTrack())
            if reader is not None and self._fit_due(track.fitted_ms, now_ms):
                track.fitted_ms = now_ms
                track.model, track.problem = _fit_baseline(m, src, reader, now_ms)
                if m.machine and m.machine not in self._states:  # the state it was last in
                    st = reader([f"{m.machine}/state"], now_ms - int(m.history_s * 1000), now_ms)
                    texts = st.get(f"{m.machine}/state", (None, None, []))[2]
                    if texts and texts[-1] is not None:
                        self._states[m.machine] = str(texts[-1])
            if src not in by_tag:
                continue
            ts, vals = by_tag[src]
            if track.model is None:
                continue
            states = None
            if m.machine is not None:
                states = [self._states.get(m.machine, "")] * len(ts)
            out = score_baseline(track.model, ts, vals, states)
            for i in range(len(ts)):
                score = float(out["score"][i])
                if score < m.alarm_at:
                    track.since_ms = None
                    continue
                if track.since_ms is None:
                    track.since_ms = int(ts[i])
                state = states[i] if states else ""
                reason = "far from its baseline" + (f" for state {state!r}" if state else "")
                a = Anomaly(
                    src,
                    int(ts[i]),
                    track.since_ms,
                    score,
                    float(vals[i]),
                    float(out["median"][i]),
                    float(out["z"][i]),
                    reason,
                )
                self._raise(m, src, a)

    def _feed_multi(self, m, by_tag, now_ms, reader) -> None:
        track = self._multi.setdefault(m.id, _MultiTrack())
        if reader is not None and self._fit_due(track.fitted_ms, now_ms):
            track.fitted_ms = now_ms
            track.model, track.problem = _fit_multi(m, reader, now_ms)
        events: list[tuple[int, str, float]] = []
        for t in m.tags:
            if t in by_tag:
                events += [(int(a), t, float(b)) for a, b in zip(*by_tag[t], strict=True)]
        if not events or track.model is None:
            for ts_, t, v in sorted(events):
                track.latest[t] = (ts_, v)
            return
        events.sort()
        rows, stamps = [], []
        for ts_, t, v in events:
            track.latest[t] = (ts_, v)
            if len(track.latest) == len(m.tags):
                rows.append([track.latest[x][1] for x in m.tags])
                stamps.append(ts_)
        if not rows:
            return
        out = score_multivariate(track.model, np.asarray(rows))
        for i, ts_ in enumerate(stamps):
            score = float(out["score"][i])
            if score < m.alarm_at:
                track.since_ms = None
                continue
            if track.since_ms is None:
                track.since_ms = ts_
            j = int(out["main"][i])
            a = Anomaly(
                m.tags[j],
                ts_,
                track.since_ms,
                score,
                rows[i][j],
                float(track.model.median[j]),
                float(out["z"][i][j]),
                f"relation between {m.machine or m.id}'s tags broken "
                f"(Mahalanobis d² {float(out['d2'][i]):.1f} over {len(m.tags)} tags)",
            )
            self._raise(m, m.tags[j], a)

    # reporting ----------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        """Each monitor source's model status and latest evidence."""
        out: list[dict[str, Any]] = []
        for m in self.monitors:
            if m.kind == "stream":
                for (mid, src), mon in self._stream.items():
                    if mid == m.id:
                        out.append(self._row(m, src, mon.status))
            elif m.kind == "baseline":
                for (mid, src), tr in self._baseline.items():
                    if mid == m.id:
                        out.append(self._row(m, src, "ok" if tr.model else tr.problem))
            else:
                tr = self._multi.get(m.id)
                status = (
                    "ok"
                    if tr is not None and tr.model is not None
                    else (tr.problem if tr else "insufficient history")
                )
                out.append(self._row(m, None, status))
        return out

    def _row(self, m: MonitorConfig, src: str | None, status: str) -> dict[str, Any]:
        d = m.derived_tag(src)
        ev = self.evidence.get(d)
        return {
            "monitor": m.id,
            "kind": m.kind,
            "source": src if src is not None else ",".join(m.tags),
            "derived_tag": d,
            "status": status,
            "evidence": None if ev is None else {**ev.to_dict(), "text": ev.explain()},
            "data_quality": [f.to_dict() for f in self.findings.get(src or "", ())],
        }

    def machine_scores(self) -> dict[str, float]:
        """Each monitored machine's current anomaly score: the highest of its derived values at
        the last round (0 when nothing is anomalous). Monitors without a machine are left out."""
        out: dict[str, float] = {}
        for derived, score in self.current.items():
            machine = _machine_of(anomaly_asset(derived))
            if machine is not None:
                out[machine] = max(out.get(machine, 0.0), score)
        return out

    def anomalies_under(self, prefix: str, since_ms: int = 0) -> list[Anomaly]:
        """The recent anomalies of tags under ``prefix`` (e.g. a machine), oldest first."""
        p = prefix.strip("/") + "/"
        out = [
            a
            for tag, items in self.recent.items()
            if tag.startswith(p)
            for a in items
            if a.ts_ms >= since_ms
        ]
        return sorted(out, key=lambda a: a.ts_ms)

    def explain(self, derived_tag: str) -> str | None:
        """The evidence line for an alarm on ``derived_tag`` (None when there is none)."""
        ev = self.evidence.get(derived_tag)
        return None if ev is None else ev.explain()


def _series(reader: Reader, tags: list[str], start: int, end: int) -> Mapping[str, Any]:
    return reader(tags, start, end)


def _fit_baseline(
    m: MonitorConfig, src: str, reader: Reader, now_ms: int
) -> tuple[BaselineModel | None, str]:
    start = now_ms - int(m.history_s * 1000)
    tags = [src] + ([f"{m.machine}/state"] if m.machine else [])
    data = _series(reader, tags, start, now_ms)
    if src not in data or not len(data[src][0]):
        return None, "insufficient history: no samples"
    ts, vals, _ = data[src]
    if (ts[-1] - ts[0]) / 1000 < m.min_history_s:
        return None, f"insufficient history: {(ts[-1] - ts[0]) / 3_600_000:.1f} h of data"
    states = None
    if m.machine:
        st = data.get(f"{m.machine}/state")
        states = _states_at(ts, st) if st is not None else [""] * len(ts)
    return fit_baseline(ts, vals, states, bucket_s=m.bucket_s), "ok"


def _states_at(ts: np.ndarray, st: tuple) -> list[str]:
    s_ts, _, texts = st
    if not len(s_ts):
        return [""] * len(ts)
    idx = np.searchsorted(s_ts, ts, side="right") - 1
    return ["" if i < 0 or texts[i] is None else str(texts[i]) for i in idx.tolist()]


def _fit_multi(
    m: MonitorConfig, reader: Reader, now_ms: int
) -> tuple[MultivariateModel | None, str]:
    start = now_ms - int(m.history_s * 1000)
    data = _series(reader, list(m.tags), start, now_ms)
    missing = [t for t in m.tags if t not in data or not len(data[t][0])]
    if missing:
        return None, f"insufficient history: no samples of {', '.join(missing)}"
    matrix = _aligned(m.tags, data)
    try:
        return fit_multivariate(m.tags, matrix), "ok"
    except ValueError as exc:
        return None, str(exc)


def _aligned(tags: Sequence[str], data: Mapping[str, tuple]) -> np.ndarray:
    """Rows at every sample instant of any tag, each tag's latest value carried forward."""
    stamps = np.unique(np.concatenate([np.asarray(data[t][0]) for t in tags]))
    cols = []
    for t in tags:
        ts, vals = np.asarray(data[t][0]), np.asarray(data[t][1], dtype=np.float64)
        idx = np.searchsorted(ts, stamps, side="right") - 1
        cols.append(np.where(idx >= 0, vals[np.maximum(idx, 0)], np.nan))
    return np.column_stack(cols)


# --------------------------------------------------------------------------- on demand


def scan_history(
    m: MonitorConfig, reader: Reader, start_ms: int, end_ms: int, tags: Iterable[str] = ()
) -> dict[str, Any]:
    """Score a monitor over history ``[start_ms, end_ms)``: anomalies, data quality, status.

    Stream monitors learn from the window itself (the first ``min_history_s`` only learns);
    baseline and multivariate monitors learn from the ``history_s`` before ``start_ms``.
    """
    if end_ms <= start_ms:
        raise ValueError("end must be after start")
    sources = m.sources(tags)
    out: dict[str, Any] = {"monitor": m.id, "kind": m.kind, "start_ms": start_ms, "end_ms": end_ms}
    results = []
    if m.kind == "stream":
        data = reader(sources, start_ms, end_ms)
        for src in sources:
            if src not in data:
                results.append(
                    {"tag": src, "status": "no data", "anomalies": [], "data_quality": []}
                )
                continue
            ts, vals, _ = data[src]
            anomalies, findings, status = scan(src, ts, vals, min_history_s=m.min_history_s)
            results.append(_result(src, status, anomalies, findings, m.alarm_at))
    elif m.kind == "baseline":
        for src in sources:
            model, problem = _fit_baseline(m, src, reader, start_ms)
            data = reader([src] + ([f"{m.machine}/state"] if m.machine else []), start_ms, end_ms)
            if model is None or src not in data:
                results.append({"tag": src, "status": problem, "anomalies": [], "data_quality": []})
                continue
            ts, vals, _ = data[src]
            states = None
            if m.machine:
                st = data.get(f"{m.machine}/state")
                states = _states_at(ts, st) if st is not None else [""] * len(ts)
            scored = score_baseline(model, ts, vals, states)
            hit = scored["score"] >= m.alarm_at
            since = _run_starts(hit, ts)
            anomalies = []
            for i in np.flatnonzero(hit):
                anomalies.append(
                    Anomaly(
                        src,
                        int(ts[i]),
                        int(since[i]),
                        float(scored["score"][i]),
                        float(vals[i]),
                        float(scored["median"][i]),
                        float(scored["z"][i]),
                        "far from its baseline",
                    )
                )
            results.append(_result(src, "ok", anomalies, [], m.alarm_at))
    else:
        model, problem = _fit_multi(m, reader, start_ms)
        data = reader(list(m.tags), start_ms, end_ms)
        if model is None or any(t not in data for t in m.tags):
            results.append(
                {"tag": ",".join(m.tags), "status": problem, "anomalies": [], "data_quality": []}
            )
        else:
            matrix = _aligned(m.tags, data)
            stamps = np.unique(np.concatenate([np.asarray(data[t][0]) for t in m.tags]))
            scored = score_multivariate(model, matrix)
            hit = scored["score"] >= m.alarm_at
            since = _run_starts(hit, stamps)
            anomalies = []
            for i in np.flatnonzero(hit):
                j = int(scored["main"][i])
                anomalies.append(
                    Anomaly(
                        m.tags[j],
                        int(stamps[i]),
                        int(since[i]),
                        float(scored["score"][i]),
                        float(matrix[i, j]),
                        float(model.median[j]),
                        float(scored["z"][i, j]),
                        "relation between the tags broken",
                    )
                )
            results.append(_result(",".join(m.tags), "ok", anomalies, [], m.alarm_at))
    out["results"] = results
    out["anomalies"] = sum(len(r["anomalies"]) for r in results)
    return out


def _run_starts(hit: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """For each sample, the time of the first sample of its run of consecutive hits (as the
    live monitors' "since"): ``hit`` marks anomalous samples, ``stamps`` their times."""
    idx = np.arange(len(hit))
    start = np.r_[True, ~hit[:-1]] if len(hit) else np.zeros(0, dtype=bool)
    first = np.maximum.accumulate(np.where(hit & start, idx, 0))
    return np.asarray(stamps, dtype=np.int64)[first] if len(hit) else np.zeros(0, np.int64)


def _result(src: str, status: str, anomalies: list[Anomaly], findings: list, at: float) -> dict:
    kept = [a for a in anomalies if a.score >= at]
    return {
        "tag": src,
        "status": status,
        "anomalies": [{**a.to_dict(), "text": a.explain()} for a in kept],
        "data_quality": [f.to_dict() for f in findings],
    }
