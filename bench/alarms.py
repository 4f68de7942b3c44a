"""Alarm evaluation benchmark: tag updates per second through 10,000 rules.

The rule set (default 10,000 rules over 5,000 tags ``s1/aNN/lNN/mNN/power_kw``):

* one high limit per tag (deadband 2, on/off delay 5 s),
* a rate-of-change rule on 60 % of the tags, a low limit on 20 %,
* stale rules to fill up to ``--rules`` minus the pattern rules, and
* one pattern rule per line (``s1/aNN/lNN/+/power_kw``, high limit), each matching many tags.

Updates are a per-tag random walk (uniform random tag per update, 1 ms apart), fed to
`AlarmEngine.update` in batches of ``--batch`` with a `tick` after each batch. Only the
`update`/`tick` calls are timed. The same run measures two peers on a prefix of the same updates:

* ``naive``: for every update, loop over all rules, match the rule's tag or pattern, evaluate a
  scalar state machine (what a first implementation would do);
* ``indexed``: a per-update Python loop with rules indexed by tag (dict), the same scalar state.

Both peers implement the same semantics for high/low/rate rules; the script checks that they
raise and return the same alarms as the engine on the prefix, and fails if not.

    .venv/bin/python bench/alarms.py                      # ~1 min on 2 cores
    .venv/bin/python bench/alarms.py --updates 200000 --naive 500
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from indunet.plant.alarms import (
    AlarmEngine,
    HighLimitRule,
    LowLimitRule,
    RateRule,
    StaleRule,
    load_rules,
)

NEVER = -(2**62)


def make_rules(n_tags: int, n_rules: int, rng: np.random.Generator) -> tuple[list[str], list]:
    tags = [
        f"s1/a{i // 1000:02d}/l{i // 100 % 10:02d}/m{i % 100:02d}/power_kw" for i in range(n_tags)
    ]
    rules: list = []
    for i, tag in enumerate(tags):
        rules.append(
            HighLimitRule(id=f"hi{i}", tag=tag, limit=80, deadband=2, on_delay_s=5, off_delay_s=5)
        )
    for i in rng.choice(n_tags, int(0.6 * n_tags), replace=False):
        rules.append(RateRule(id=f"roc{i}", tag=tags[i], max_rate=30, per_s=60, on_delay_s=2))
    for i in rng.choice(n_tags, int(0.2 * n_tags), replace=False):
        rules.append(LowLimitRule(id=f"lo{i}", tag=tags[i], limit=5, deadband=1, on_delay_s=5))
    lines = sorted({t.rsplit("/", 2)[0] for t in tags})
    patterns = [
        {"id": f"line{j}", "kind": "high", "pattern": f"{line}/+/power_kw", "limit": 90}
        for j, line in enumerate(lines)
    ]
    i = 0
    while len(rules) + len(patterns) < n_rules:
        rules.append(StaleRule(id=f"st{i}", tag=tags[i % n_tags], max_age_s=600 + i % 7))
        i += 1
    rules += load_rules(patterns)
    return tags, rules[:n_rules]


def make_updates(
    n_tags: int, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = rng.integers(0, n_tags, n)
    steps = rng.normal(0, 0.8, n)
    start = rng.uniform(40, 95, n_tags)
    order = np.argsort(idx, kind="stable")
    walked = np.cumsum(steps[order])
    group = np.r_[0, np.flatnonzero(np.diff(idx[order])) + 1]
    offset = np.repeat(walked[group] - steps[order][group], np.diff(np.r_[group, n]))
    values = np.empty(n)
    values[order] = start[idx[order]] + walked - offset
    ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64)
    return idx, ts, values


# ----------------------------------------------------------------------------- scalar peers


@dataclass
class Scalar:
    """Scalar state of one (rule, tag) pair: the same semantics as the engine."""

    cond: int = 0
    start: int = NEVER
    active: int = 0
    last_ts: int = NEVER
    last_v: float = float("nan")


def scalar_step(rule, st: Scalar, ts: int, v: float) -> int | None:
    if ts < st.last_ts:
        return None
    if rule.kind == "rate":
        x = (v - st.last_v) / (ts - st.last_ts) * rule.per_s * 1000 if ts > st.last_ts else None
        if x is not None and st.last_ts == NEVER:
            x = None
        y = None if x is None or x != x else (abs(x) if rule.direction == "both" else x)
        limit, clear = rule.max_rate, rule.max_rate - rule.deadband
    elif rule.kind == "high":
        y, limit, clear = v, rule.limit, rule.limit - rule.deadband
    else:
        y, limit, clear = -v, -rule.limit, -(rule.limit + rule.deadband)
    st.last_ts, st.last_v = ts, v
    if y is not None:
        code = 1 if y > limit else 0 if y <= clear else st.cond
        if code != st.cond:
            st.cond, st.start = code, ts
    want = st.active
    if st.cond == 1 and ts - st.start >= rule.on_delay_s * 1000:
        want = 1
    elif st.cond == 0 and ts - st.start >= rule.off_delay_s * 1000:
        want = 0
    if want != st.active:
        st.active = want
        return want
    return None


def limit_rules(rules):
    return [r for r in rules if r.kind in ("high", "low", "rate")]


def run_naive(rules, tags, idx, ts, values) -> Counter:
    rules = limit_rules(rules)
    compiled = [
        (r, re.compile(r.pattern.replace("+", "[^/]+")) if r.pattern else None) for r in rules
    ]
    state: dict = {}
    out: Counter = Counter()
    for k in range(len(idx)):
        tag = tags[idx[k]]
        for rule, rx in compiled:
            if (rule.tag == tag) if rx is None else rx.fullmatch(tag) is not None:
                st = state.setdefault((rule.id, tag), Scalar())
                got = scalar_step(rule, st, int(ts[k]), float(values[k]))
                if got is not None:
                    out["raised" if got else "returned"] += 1
    return out


def run_indexed(rules, tags, idx, ts, values) -> Counter:
    by_tag: dict[str, list] = {}
    for r in limit_rules(rules):
        targets = [r.tag] if r.tag else [t for t in tags if r.watches(t)]
        for t in targets:
            by_tag.setdefault(t, []).append((r, Scalar()))
    out: Counter = Counter()
    for k in range(len(idx)):
        for rule, st in by_tag.get(tags[idx[k]], ()):
            got = scalar_step(rule, st, int(ts[k]), float(values[k]))
            if got is not None:
                out["raised" if got else "returned"] += 1
    return out


def engine_counts(rules, tags, idx, ts, values) -> Counter:
    e = AlarmEngine(limit_rules(rules))
    out: Counter = Counter()
    for ev in e.update(pa.array(tags).take(pa.array(idx)), ts, values):
        out[ev.kind.value] += 1
    return out


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tags", type=int, default=5_000)
    ap.add_argument("--rules", type=int, default=10_000)
    ap.add_argument("--updates", type=int, default=2_000_000)
    ap.add_argument("--batch", type=int, default=50_000)
    ap.add_argument("--naive", type=int, default=1_000, help="updates for the naive peer")
    ap.add_argument("--indexed", type=int, default=200_000, help="updates for the indexed peer")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    tags, rules = make_rules(args.tags, args.rules, rng)
    idx, ts, values = make_updates(args.tags, args.updates, rng)
    tag_array = pa.array(tags)
    print(
        f"alarms bench: {len(rules):,} rules ({dict(Counter(r.kind for r in rules))}, "
        f"{sum(1 for r in rules if r.pattern)} patterns) over {args.tags:,} tags; "
        f"{args.updates:,} updates in batches of {args.batch:,}"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pyarrow {pa.__version__}, "
        f"{os.cpu_count()} cpus, {platform.processor() or platform.machine()}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )

    t0 = time.perf_counter()
    engine = AlarmEngine(rules)
    build_s = time.perf_counter() - t0
    batches = [
        (
            tag_array.take(pa.array(idx[i : i + args.batch])),
            ts[i : i + args.batch],
            values[i : i + args.batch],
        )
        for i in range(0, args.updates, args.batch)
    ]
    per_batch, events = [], Counter()
    total = 0.0
    for tg, bts, bval in batches:
        s = time.perf_counter()
        out = engine.update(tg, bts, bval)
        out += engine.tick(int(bts[-1]))
        dt = time.perf_counter() - s
        total += dt
        per_batch.append(len(bval) / dt)
        events.update(e.kind.value for e in out)
    rate = args.updates / total
    print(f"engine build: {build_s * 1000:.0f} ms for {len(rules):,} rules")
    print(
        f"engine:  {rate:,.0f} updates/s overall; per batch median "
        f"{statistics.median(per_batch):,.0f}, min {min(per_batch):,.0f} "
        f"({engine.stats['evaluated']:,} rule evaluations, events {dict(events)})"
    )

    n = min(args.naive, args.updates)
    s = time.perf_counter()
    naive = run_naive(rules, tags, idx[:n], ts[:n], values[:n])
    naive_rate = n / (time.perf_counter() - s)
    m = min(args.indexed, args.updates)
    s = time.perf_counter()
    indexed = run_indexed(rules, tags, idx[:m], ts[:m], values[:m])
    indexed_rate = m / (time.perf_counter() - s)
    print(f"naive:   {naive_rate:,.0f} updates/s (per-update loop over all rules, {n:,} updates)")
    print(f"indexed: {indexed_rate:,.0f} updates/s (per-update loop, rules by tag, {m:,} updates)")
    print(
        f"speed-up: engine/naive {rate / naive_rate:,.0f}x, engine/indexed "
        f"{rate / indexed_rate:,.1f}x"
    )

    ok = True
    for name, count, k in (("naive", naive, n), ("indexed", indexed, m)):
        want = engine_counts(rules, tags, idx[:k], ts[:k], values[:k])
        same = {x: want.get(x, 0) for x in ("raised", "returned")} == {
            x: count.get(x, 0) for x in ("raised", "returned")
        }
        verdict = "same" if same else "DIFFERENT"
        print(f"check {name}: engine {dict(want)} vs {name} {dict(count)} -> {verdict}")
        ok &= same
    target = rate >= 200_000
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    verdict = "met" if target else "NOT met"
    print(f"target >= 200,000 updates/s through {len(rules):,} rules: {verdict}")
    return 0 if ok and target else 1


if __name__ == "__main__":
    sys.exit(main())
