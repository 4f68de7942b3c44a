"""Remaining useful life on NASA C-MAPSS FD001, scored like the literature.

Fits `indunet.condition.rul` on the 100 run-to-failure engines of train_FD001, predicts the RUL
of the 100 test engines at their last cycle, and scores against RUL_FD001.txt: RMSE (cycles),
the PHM08 score (sum over engines, late costs more than early) and how often the true RUL falls
inside the 5–95 % band. Printed beside published figures for the same test set.

The truth is the published RUL as is (not capped); the model's estimate is capped at 125 cycles.
Coverage is counted against the truth capped at 125, since the band, like the estimate, reads
"at least 125 left" at the cap.

Run: .venv/bin/python bench/condition_rul.py [--data DIR] [--json OUT]
Data: ../shared/datasets/nasa_cmapss_fd001/ (or $INDUNET_CMAPSS_DIR).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from indunet.condition.rul import (
    CycleHistory,
    RulModel,
    fit_rul_model,
    phm08_score,
    predict_rul_many,
    rmse,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DEFAULT_DATA = SHARED / "datasets" / "nasa_cmapss_fd001"
DATASET = "C-MAPSS FD001 test"
SENSORS = tuple(f"setting{i}" for i in (1, 2, 3)) + tuple(f"s{i}" for i in range(1, 22))

# Published RMSE (and PHM08 score where given) on the FD001 test set, same protocol (last cycle
# of each of the 100 test engines, RUL_FD001.txt as truth).
REFERENCES: list[tuple[str, str, float]] = [
    ("CNN (Sateesh Babu et al. 2016)", "rmse", 18.45),
    ("LSTM (Zheng et al. 2017)", "rmse", 16.14),
    ("Deep CNN (Li et al. 2018)", "rmse", 12.61),
    ("CNN (Sateesh Babu et al. 2016)", "phm08", 1286.7),
    ("LSTM (Zheng et al. 2017)", "phm08", 338.0),
    ("Deep CNN (Li et al. 2018)", "phm08", 273.7),
]


def data_dir() -> Path:
    return Path(os.environ.get("INDUNET_CMAPSS_DIR", DEFAULT_DATA))


def read_cmapss(path: Path) -> list[CycleHistory]:
    """One `CycleHistory` per engine of a C-MAPSS file (unit, cycle, 3 settings, 21 sensors)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        table = np.loadtxt(f)
    runs = []
    for unit in np.unique(table[:, 0]):
        rows = table[table[:, 0] == unit]
        runs.append(CycleHistory(f"engine-{int(unit)}", rows[:, 1], rows[:, 2:], SENSORS))
    return runs


def read_truth(path: Path) -> np.ndarray:
    return np.loadtxt(path, ndmin=1)


def score(model: RulModel, test: list[CycleHistory], truth: np.ndarray) -> dict[str, float]:
    estimates = predict_rul_many(model, test)
    pred = np.array([e.rul for e in estimates])
    low = np.array([e.low for e in estimates])
    high = np.array([e.high for e in estimates])
    capped = np.minimum(truth, model.cap)
    return {
        "rmse": rmse(pred, truth),
        "phm08": phm08_score(pred, truth),
        "coverage": float(np.mean((capped >= low) & (capped <= high))),
        "band_width": float(np.mean(high - low)),
    }


def run_benchmark(data: Path | None = None) -> dict[str, float]:
    """Fit on train_FD001, score test_FD001; figures and timings."""
    data = data or data_dir()
    train = read_cmapss(data / "train_FD001.txt.gz")
    test = read_cmapss(data / "test_FD001.txt.gz")
    truth = read_truth(data / "RUL_FD001.txt")
    t0 = time.perf_counter()
    model = fit_rul_model(train, seed=0)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    figures = score(model, test, truth)
    figures["fit_s"] = fit_s
    figures["predict_s"] = time.perf_counter() - t0
    figures["dropped"] = len(model.dropped)
    figures["band_low"], figures["band_high"] = model.band
    return figures


def rul_rows(figures: dict[str, float] | None = None) -> list[dict[str, object]]:
    """The table rows (method, dataset, metric, value, reference) for `bench/condition.py`."""
    figures = figures if figures is not None else run_benchmark()
    lo, hi = figures.get("band_low", 0.05), figures.get("band_high", 0.95)
    band = f"coverage of {100 * lo:g}–{100 * hi:g} % band"
    ours = "indunet RUL (LightGBM)"
    rows: list[dict[str, object]] = [
        _row(ours, "RMSE", round(figures["rmse"], 2), reference=False),
        _row(ours, "PHM08 score", round(figures["phm08"], 1), reference=False),
        _row(ours, band, round(figures["coverage"], 2), reference=False),
    ]
    for method, metric, value in REFERENCES:
        label = "RMSE" if metric == "rmse" else "PHM08 score"
        rows.append(_row(method, label, value, reference=True))
    return rows


def _row(method: str, metric: str, value: float, *, reference: bool) -> dict[str, object]:
    return {
        "method": method,
        "dataset": DATASET,
        "metric": metric,
        "value": value,
        "reference": reference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder with the FD001 files")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    figures = run_benchmark(args.data)
    if args.json is not None:
        args.json.write_text(json.dumps({"figures": figures, "rows": rul_rows(figures)}, indent=2))
    import lightgbm

    print(
        f"# C-MAPSS FD001 · {platform.node()} · Python {platform.python_version()} · "
        f"numpy {np.__version__} · lightgbm {lightgbm.__version__} · {os.cpu_count()} cores"
    )
    print(
        f"fit {figures['fit_s']:.1f} s (100 engines, 20,631 cycles), "
        f"predict {figures['predict_s']:.2f} s (100 engines); "
        f"{int(figures['dropped'])} constant columns dropped; "
        f"mean band width {figures['band_width']:.1f} cycles"
    )
    rows = rul_rows(figures)
    width = max(len(str(r["method"])) for r in rows)
    print(f"{'method':<{width}}  {'metric':<26}  {'value':>8}")
    for r in rows:
        mark = "" if r["reference"] else "  ← this run"
        print(f"{r['method']:<{width}}  {r['metric']:<26}  {r['value']:>8}{mark}")


if __name__ == "__main__":
    main()
