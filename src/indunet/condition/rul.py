"""Remaining useful life (RUL) for a fleet of similar assets, learnt from run-to-failure histories.

Pure functions: `fit_rul_model` takes the histories of assets of one class that ran until they
failed and returns a `RulModel`; `predict_rul` takes that model and the history so far of a running
asset and returns an `RulEstimate` (cycles left, with a low/high band).

Method (no deep learning, after the common C-MAPSS recipe): the target is a piecewise-linear RUL,
capped at `cap` cycles (an asset early in life is "healthy", not "350 cycles from failure");
sensors constant across the training fleet are dropped; the rest are standardised with the fleet's
mean and spread; each cycle's features are taken over a trailing window (mean, slope, last
smoothed value, min, max, spread) plus the drift of the recent mean from the asset's own first
cycles and the cycle count. Gradient-boosted trees (LightGBM) learn the point estimate. The band
comes from out-of-fold errors: the same trees fitted with whole runs held out predict those
runs, and the quantiles of their errors, per range of predicted RUL, are the band's offsets
(quantile regression trees were tried first: started from the capped target's upper quantile,
every gradient is equal, so the upper edge never left the cap). Training is deterministic: fixed
seed, one thread, LightGBM's deterministic mode, row-wise histograms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_CAP = 125
DEFAULT_WINDOW = 30
DEFAULT_MIN_CYCLES = 10
# How many first cycles make an asset's own baseline (its "as new" level).
BASELINE_CYCLES = 10
# The band: out-of-fold errors from this many folds of whole runs, quantiles per bin of
# predicted RUL (a bin with fewer errors than BAND_MIN_ROWS uses all errors).
OOF_FOLDS = 4
BAND_BINS = 6
BAND_MIN_ROWS = 50


class RulInputError(ValueError):
    """A history the model cannot use; the message says what is wrong and what to do."""


class InsufficientHistory(RulInputError):
    """Too few cycles to say anything; the estimate waits for more data instead of guessing."""


@dataclass(frozen=True)
class CycleHistory:
    """One asset's sensor readings, one row per cycle (flight, production run or fixed period).

    `values[i, j]` is sensor `sensors[j]` in cycle `cycles[i]`. NaN marks a missing reading.
    """

    asset: str
    cycles: np.ndarray
    values: np.ndarray
    sensors: tuple[str, ...]

    def __post_init__(self) -> None:
        cycles = np.asarray(self.cycles, dtype=float)
        values = np.asarray(self.values, dtype=float)
        if values.ndim == 1:
            values = values.reshape(-1, 1)
        if cycles.ndim != 1 or values.ndim != 2:
            raise RulInputError(f"{self.asset}: cycles must be 1-D and values 2-D (cycle × sensor)")
        if values.shape[0] != cycles.shape[0]:
            raise RulInputError(
                f"{self.asset}: {cycles.shape[0]} cycles but {values.shape[0]} rows of values"
            )
        if values.shape[1] != len(self.sensors):
            raise RulInputError(
                f"{self.asset}: {len(self.sensors)} sensor names, {values.shape[1]} value columns"
            )
        if len(set(self.sensors)) != len(self.sensors):
            raise RulInputError(f"{self.asset}: a sensor name appears twice")
        object.__setattr__(self, "cycles", cycles)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "sensors", tuple(self.sensors))


@dataclass(frozen=True)
class RulEstimate:
    """Remaining cycles of one asset at its latest cycle, with an uncertainty band.

    `rul` is capped at the model's cap: `rul == cap` reads "healthy, at least cap cycles left".
    `low`/`high` are the band's edges; `band` gives their quantile levels (of the errors the
    model made on runs held out of its fit).
    """

    asset: str
    cycle: float
    cycles_seen: int
    rul: float
    low: float
    high: float
    band: tuple[float, float]
    cap: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RulModel:
    """A fitted degradation model for one asset class."""

    sensors: tuple[str, ...]  # sensors the model reads, in column order
    mean: np.ndarray
    scale: np.ndarray
    dropped: tuple[str, ...]  # constant, absent or never read in some training run
    cap: int
    window: int
    min_cycles: int
    band: tuple[float, float]
    booster: object = field(repr=False)  # lightgbm.Booster of the point estimate
    band_edges: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    band_offsets: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 2)))
    training_assets: int = 0
    training_rows: int = 0


# ---------------------------------------------------------------------------------------------
# scores from the literature


def rmse(predicted: ArrayLike, true: ArrayLike) -> float:
    """Root mean squared error in cycles."""
    d = np.asarray(predicted, dtype=float) - np.asarray(true, dtype=float)
    return float(np.sqrt(np.mean(d * d)))


def phm08_score(predicted: ArrayLike, true: ArrayLike) -> float:
    """The PHM08 challenge score (Saxena et al. 2008): late predictions cost more than early ones.

    With d = predicted − true: e^(−d/13) − 1 for d < 0, e^(d/10) − 1 for d ≥ 0, summed over assets.
    """
    d = np.asarray(predicted, dtype=float) - np.asarray(true, dtype=float)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def rul_target(cycles: np.ndarray, cap: int = DEFAULT_CAP) -> np.ndarray:
    """Piecewise-linear RUL of a run that failed after its last cycle: min(cap, last − cycle)."""
    cycles = np.asarray(cycles, dtype=float)
    return np.minimum(float(cap), cycles.max() - cycles)


# ---------------------------------------------------------------------------------------------
# cleaning and features


def clean_history(
    history: CycleHistory, sensors: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Cycles and values of `sensors` ready for features, and notes on what was repaired.

    Sorts by cycle, keeps the last reading of a cycle logged twice, fills a missing reading with
    the sensor's previous one (or its next, at the start). Raises `RulInputError` when a sensor the
    model needs is absent or never read, or when cycles are not finite numbers.
    """
    notes: list[str] = []
    index = {name: j for j, name in enumerate(history.sensors)}
    missing = [s for s in sensors if s not in index]
    if missing:
        raise RulInputError(
            f"{history.asset}: sensor(s) {', '.join(missing)} missing; the model for this asset "
            "class needs them (map the tags in the configuration or refit without them)"
        )
    cycles = history.cycles
    if not np.all(np.isfinite(cycles)):
        raise RulInputError(f"{history.asset}: a cycle number is missing or not a number")
    values = history.values[:, [index[s] for s in sensors]]
    order = np.argsort(cycles, kind="stable")
    cycles, values = cycles[order], values[order]
    if cycles.size:
        # keep the last row of each cycle (a re-sent reading replaces the first one)
        last_of_cycle = np.append(cycles[1:] != cycles[:-1], True)
        duplicates = int(cycles.size - last_of_cycle.sum())
        if duplicates:
            notes.append(f"{duplicates} duplicate cycle(s): kept the last reading of each")
            cycles, values = cycles[last_of_cycle], values[last_of_cycle]
    values = values.copy()
    for j, name in enumerate(sensors):
        column = values[:, j]
        bad = ~np.isfinite(column)
        if not bad.any():
            continue
        if bad.all():
            raise RulInputError(f"{history.asset}: sensor {name} has no reading in any cycle")
        notes.append(f"sensor {name}: {int(bad.sum())} missing reading(s) filled from neighbours")
        idx = np.where(~bad, np.arange(column.size), 0)
        np.maximum.accumulate(idx, out=idx)
        filled = column[idx]
        first = int(np.argmax(~bad))
        filled[:first] = column[first]
        values[:, j] = filled
    return cycles, values, notes


def _trailing(z: np.ndarray, window: int) -> np.ndarray:
    """Trailing windows of the rows of z, padded at the start with the first row: (n, window, k)."""
    pad = np.repeat(z[:1], window - 1, axis=0)
    padded = np.concatenate([pad, z], axis=0)
    return np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # (n, k, window)


def cycle_features(z: np.ndarray, window: int) -> np.ndarray:
    """Features for every cycle of one standardised history `z` (cycles × sensors), from the
    readings up to and including that cycle only (no look-ahead)."""
    n = z.shape[0]
    count = np.arange(1, n + 1, dtype=float)
    w = _trailing(z, window)  # (n, k, window); early cycles padded with the first reading
    # the true length of each window (before padding), to weight the slope fit correctly
    length = np.minimum(count, window)
    t = np.arange(window, dtype=float)
    valid = t[None, :] >= (window - length)[:, None]  # (n, window)
    wv = np.where(valid[:, None, :], w, np.nan)
    mean = np.nanmean(wv, axis=2)
    std = np.nanstd(wv, axis=2)
    low = np.nanmin(wv, axis=2)
    high = np.nanmax(wv, axis=2)
    tc = np.where(valid, t[None, :], np.nan)
    tc = tc - np.nanmean(tc, axis=1, keepdims=True)
    denom = np.nansum(tc * tc, axis=1)
    denom = np.where(denom > 0, denom, 1.0)
    slope = np.nansum(tc[:, None, :] * (wv - mean[..., None]), axis=2) / denom[:, None]
    # exponentially smoothed level (last value without the noise)
    alpha = 0.3
    ewm = np.empty_like(z)
    ewm[0] = z[0]
    for i in range(1, n):
        ewm[i] = alpha * z[i] + (1 - alpha) * ewm[i - 1]
    base_n = min(BASELINE_CYCLES, n)
    base = np.cumsum(z, axis=0) / count[:, None]
    base[base_n - 1 :] = base[base_n - 1]  # the asset's own first-cycles level, once known
    drift = mean - base
    # health index: the mean over sensors of the smoothed level (signs set by the fleet fit)
    return np.column_stack(
        [mean, slope * window, ewm, low, high, std, drift, count[:, None], np.log1p(count)[:, None]]
    )


def _standardise(values: np.ndarray, model_mean: np.ndarray, model_scale: np.ndarray) -> np.ndarray:
    return (values - model_mean) / model_scale


# ---------------------------------------------------------------------------------------------
# fit and predict


def _lgb_params(seed: int) -> dict[str, object]:
    return {
        "objective": "regression",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 40,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbose": -1,
    }


def fit_rul_model(
    runs: Sequence[CycleHistory],
    *,
    cap: int = DEFAULT_CAP,
    window: int = DEFAULT_WINDOW,
    min_cycles: int = DEFAULT_MIN_CYCLES,
    band: tuple[float, float] = (0.05, 0.95),
    rounds: int = 400,
    seed: int = 0,
) -> RulModel:
    """Fit a degradation model for one asset class from run-to-failure histories.

    Each run's last cycle is taken as its failure. Sensors constant across the fleet (or never
    read in some run) are dropped. Raises `RulInputError` for too few runs, runs shorter than
    `min_cycles`, or no varying sensor.
    """
    import lightgbm as lgb

    if len(runs) < 3:
        raise RulInputError(
            f"{len(runs)} run-to-failure histories; fitting a model needs at least 3"
        )
    if not 0.0 < band[0] < 0.5 < band[1] < 1.0:
        raise RulInputError(f"band {band}: give a low quantile below 0.5 and a high one above it")
    every = list(dict.fromkeys(s for run in runs for s in run.sensors))
    names = [s for s in every if all(s in run.sensors for run in runs)]
    if not names:
        raise RulInputError("the runs share no sensor")
    cleaned = []
    for run in runs:  # a sensor never read in some run cannot be learnt from
        present = [s for s in names if np.isfinite(run.values[:, run.sensors.index(s)]).any()]
        names = [s for s in names if s in present]
    if not names:
        raise RulInputError("no sensor is read in every run")
    for run in runs:
        cycles, values, _ = clean_history(run, names)
        if cycles.size < min_cycles:
            raise InsufficientHistory(
                f"{run.asset}: {cycles.size} cycles; a run to failure needs at least {min_cycles}"
            )
        cleaned.append((cycles, values))
    stacked = np.concatenate([v for _, v in cleaned], axis=0)
    mean = stacked.mean(axis=0)
    scale = stacked.std(axis=0)
    spread = np.maximum(np.abs(mean), 1.0) * 1e-6
    keep = scale > spread
    sensors = tuple(s for s, k in zip(names, keep, strict=True) if k)
    dropped = tuple(s for s in every if s not in sensors)
    if not sensors:
        raise RulInputError("every sensor is constant in the training runs; nothing to learn from")
    mean, scale = mean[keep], scale[keep]
    features, targets = [], []
    for cycles, values in cleaned:
        z = _standardise(values[:, keep], mean, scale)
        features.append(cycle_features(z, window))
        targets.append(rul_target(cycles, cap))
    x = np.concatenate(features, axis=0)
    y = np.concatenate(targets, axis=0)
    runs_of_rows = np.concatenate([np.full(len(c), i) for i, (c, _) in enumerate(cleaned)])
    booster = lgb.train(_lgb_params(seed), lgb.Dataset(x, label=y), num_boost_round=rounds)
    # the band: quantiles of out-of-fold errors (whole runs held out), by predicted RUL
    folds = min(OOF_FOLDS, len(runs))
    oof = np.empty_like(y)
    for k in range(folds):
        held = runs_of_rows % folds == k
        fold = lgb.train(
            _lgb_params(seed), lgb.Dataset(x[~held], label=y[~held]), num_boost_round=rounds
        )
        oof[held] = fold.predict(x[held])
    edges, offsets = band_offsets(np.clip(oof, 0.0, cap), y - oof, band, cap)
    return RulModel(
        sensors=sensors,
        mean=mean,
        scale=scale,
        dropped=dropped,
        cap=cap,
        window=window,
        min_cycles=min_cycles,
        band=band,
        booster=booster,
        band_edges=edges,
        band_offsets=offsets,
        training_assets=len(runs),
        training_rows=int(y.size),
    )


def band_offsets(
    predicted: np.ndarray, errors: np.ndarray, band: tuple[float, float], cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges of predicted RUL and, per bin, the band's error quantiles (low, high).

    Errors (true − predicted) grow with the predicted RUL, so each of `BAND_BINS` equal bins
    over [0, cap] gets its own quantiles; a bin with fewer than `BAND_MIN_ROWS` errors takes
    those of all errors.
    """
    edges = np.linspace(0.0, float(cap), BAND_BINS + 1)
    which = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, BAND_BINS - 1)
    overall = np.quantile(errors, band)
    offsets = np.empty((BAND_BINS, 2))
    for b in range(BAND_BINS):
        mine = errors[which == b]
        offsets[b] = np.quantile(mine, band) if mine.size >= BAND_MIN_ROWS else overall
    return edges, offsets


def predict_rul(model: RulModel, history: CycleHistory) -> RulEstimate:
    """RUL of a running asset at its latest cycle, from its history so far.

    Raises `InsufficientHistory` below the model's `min_cycles` (after dropping duplicate cycles),
    `RulInputError` when a sensor the model reads is absent or never read.
    """
    return predict_rul_many(model, [history])[0]


def predict_rul_many(model: RulModel, histories: Sequence[CycleHistory]) -> list[RulEstimate]:
    """`predict_rul` for many assets at once (one call per booster, not per asset)."""
    rows, meta = [], []
    for history in histories:
        cycles, values, notes = clean_history(history, model.sensors)
        if cycles.size < model.min_cycles:
            raise InsufficientHistory(
                f"{history.asset}: insufficient history, {cycles.size} cycle(s) seen; "
                f"the model needs at least {model.min_cycles} before it estimates RUL"
            )
        z = _standardise(values, model.mean, model.scale)
        rows.append(cycle_features(z, model.window)[-1])
        meta.append((history.asset, float(cycles[-1]), int(cycles.size), tuple(notes)))
    if not rows:
        return []
    x = np.vstack(rows)
    point = np.clip(np.asarray(model.booster.predict(x)), 0.0, float(model.cap))  # type: ignore[attr-defined]
    which = np.clip(
        np.searchsorted(model.band_edges, point, side="right") - 1, 0, len(model.band_offsets) - 1
    )
    low = point + model.band_offsets[which, 0]
    high = point + model.band_offsets[which, 1]
    cap = float(model.cap)
    estimates = []
    for i, (asset, cycle, seen, notes) in enumerate(meta):
        rul = float(np.clip(point[i], 0.0, cap))
        lo = float(np.clip(min(low[i], rul), 0.0, cap))
        hi = float(np.clip(max(high[i], rul), 0.0, cap))
        estimates.append(
            RulEstimate(
                asset=asset,
                cycle=cycle,
                cycles_seen=seen,
                rul=_round(rul),
                low=_round(lo),
                high=_round(hi),
                band=model.band,
                cap=model.cap,
                notes=notes,
            )
        )
    return estimates


def _round(x: float) -> float:
    return math.floor(x * 10 + 0.5) / 10


# ---------------------------------------------------------------------------------------------
# from historian samples to cycles


def cycles_from_samples(
    asset: str,
    samples: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    now_ms: int,
    cycle_s: float | None = None,
    counter: tuple[np.ndarray, np.ndarray] | None = None,
) -> CycleHistory:
    """One row per completed cycle: the mean of each sensor's readings in that cycle.

    `samples` maps sensor → (timestamps ms, values). A cycle is either a fixed period of `cycle_s`
    seconds (aligned to the epoch; numbered from the first period with a reading) or, with
    `counter` (timestamps ms, counter values), the span during which the counter holds one value
    (a production run, a flight). The cycle still running at `now_ms` is left out. A sensor with
    no reading in a cycle gets NaN there (filled later by `clean_history`).
    """
    if (cycle_s is None) == (counter is None):
        raise RulInputError(f"{asset}: give exactly one of cycle_s or a cycle counter")
    sensors = tuple(samples)
    if cycle_s is not None:
        if not cycle_s > 0:
            raise RulInputError(f"{asset}: cycle_s must be > 0")
        period = float(cycle_s) * 1000.0
        current = math.floor(now_ms / period)

        def cycle_of(ts: np.ndarray) -> np.ndarray:
            return np.floor(ts / period)

    else:
        assert counter is not None
        cts = np.asarray(counter[0], dtype=float)
        cval = np.asarray(counter[1], dtype=float)
        ok = np.isfinite(cts) & np.isfinite(cval)
        order = np.argsort(cts[ok], kind="stable")
        cts, cval = cts[ok][order], cval[ok][order]
        if cts.size == 0:
            return CycleHistory(asset, np.empty(0), np.empty((0, len(sensors))), sensors)
        current = cval[-1]

        def cycle_of(ts: np.ndarray) -> np.ndarray:
            at = np.searchsorted(cts, ts, side="right") - 1
            return np.where(at >= 0, cval[np.maximum(at, 0)], np.nan)

    per_sensor: list[tuple[np.ndarray, np.ndarray]] = []
    every: list[np.ndarray] = []
    for name in sensors:
        ts = np.asarray(samples[name][0], dtype=float)
        val = np.asarray(samples[name][1], dtype=float)
        cyc = cycle_of(ts)
        keep = np.isfinite(cyc) & np.isfinite(val) & (cyc != current)
        if counter is None:
            keep &= cyc < current
        per_sensor.append((cyc[keep], val[keep]))
        every.append(cyc[keep])
    numbers = np.unique(np.concatenate(every)) if every else np.empty(0)
    values = np.full((numbers.size, len(sensors)), np.nan)
    for j, (cyc, val) in enumerate(per_sensor):
        if cyc.size == 0:
            continue
        row = np.searchsorted(numbers, cyc)
        sums = np.bincount(row, weights=val, minlength=numbers.size)
        counts = np.bincount(row, minlength=numbers.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            values[:, j] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    if counter is None and numbers.size:
        numbers = numbers - numbers[0] + 1  # the asset's cycles since its first reading
    return CycleHistory(asset, numbers, values, sensors)


def read_run_csv(path: str | object, sensors: Sequence[str] | None = None) -> CycleHistory:
    """A run-to-failure history from a CSV file: a ``cycle`` column and one column per sensor.

    The last cycle is the failure. Empty cells are missing readings. Raises `RulInputError`
    naming the file and line for a missing ``cycle`` column or a cell that is not a number.
    """
    import csv
    from pathlib import Path

    p = Path(str(path))
    with p.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise RulInputError(f"{p.name}: empty file; a run needs a header line") from None
        if "cycle" not in header:
            raise RulInputError(f"{p.name}: no 'cycle' column in the header {header}")
        names = [h for h in header if h != "cycle"]
        if sensors is not None:
            absent = [s for s in sensors if s not in names]
            if absent:
                raise RulInputError(f"{p.name}: no column for sensor(s) {', '.join(absent)}")
            names = list(sensors)
        cols = [header.index("cycle")] + [header.index(n) for n in names]
        rows: list[list[float]] = []
        for line, record in enumerate(reader, start=2):
            if not record or all(not c.strip() for c in record):
                continue
            out = []
            for c in cols:
                cell = record[c].strip() if c < len(record) else ""
                try:
                    out.append(float(cell) if cell else math.nan)
                except ValueError:
                    raise RulInputError(
                        f"{p.name} line {line}: {header[c]} = {cell!r} is not a number"
                    ) from None
            rows.append(out)
    table = np.array(rows, dtype=float).reshape(-1, len(cols))
    return CycleHistory(p.stem, table[:, 0], table[:, 1:], tuple(names))
