"""Benchmark: condition monitoring scored like the literature, beside the published figures.

* NAB: indunet's streaming detector (`indunet.condition.anomaly.stream_scores`, one parameter
  set for all 58 series; labels are read only by the scorer) scored with
  `indunet.condition.nab` in all three profiles, printed beside NAB's scoreboard
  (``results/final_results.json``). With ``--nab-results DIR`` (NAB's ``results/`` folder
  from github.com/numenta/NAB) the published detectors' own result files are re-scored in the
  same run, the proof that the scorer reproduces the board.
* Runtime: a year of 1-minute data for ``--tags`` synthetic tags scored with the batch path
  (``--workers`` processes); the streaming path is checked equal on every NAB series.
* RUL rows: if ``bench/condition_rul.py`` exists, its ``rul_rows()`` adds its rows to the same
  table (rows: dicts with ``benchmark``, ``entry``, ``metric``, ``value``, ``source``).

    .venv/bin/python bench/condition.py                       # NAB + 1,000 tags x 1 year
    .venv/bin/python bench/condition.py --tags 50 --json out.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import scipy

from indunet.condition.anomaly import StreamDetector, StreamParams, stream_scores
from indunet.condition.nab import PROFILES, load_series, load_windows, score_corpus, sweep_series

HERE = Path(__file__).resolve().parent
DEFAULT_NAB = HERE.parent.parent / "shared" / "datasets" / "nab"
SHORT = {"standard": "standard", "reward_low_FP_rate": "low FP", "reward_low_FN_rate": "low FN"}
YEAR_MIN = 365 * 24 * 60


def row(benchmark: str, entry: str, metric: str, value: float | None, source: str) -> dict:
    """One table row: a figure of an entry on a benchmark, and where it comes from."""
    return {
        "benchmark": benchmark,
        "entry": entry,
        "metric": metric,
        "value": value,
        "source": source,
    }


def print_table(rows: list[dict]) -> None:
    """Print rows grouped by benchmark and entry, one column per metric of the benchmark."""
    by_bench: dict[str, list[dict]] = {}
    for r in rows:
        by_bench.setdefault(r["benchmark"], []).append(r)
    for bench, items in by_bench.items():
        metrics = list(dict.fromkeys(r["metric"] for r in items))
        entries: dict[tuple[str, str], dict[str, float | None]] = {}
        for r in items:
            entries.setdefault((r["entry"], r["source"]), {})[r["metric"]] = r["value"]
        width = max(len(e) for e, _ in entries) + 2
        cols = {m: max(12, len(m) + 2) for m in metrics}
        print(f"\n{bench}")
        print(f"  {'entry':<{width}}" + "".join(f"{m:>{cols[m]}}" for m in metrics) + "  source")
        for (entry, source), vals in entries.items():
            cells = "".join(
                f"{vals[m]:>{cols[m]}.2f}" if vals.get(m) is not None else f"{'-':>{cols[m]}}"
                for m in metrics
            )
            print(f"  {entry:<{width}}{cells}  {source}")


# --------------------------------------------------------------------------- NAB


def nab_corpus(root: Path) -> list[tuple[str, list[str], np.ndarray, list[list[str]]]]:
    """Load the 58 NAB series with their windows (the windows go to the scorer only)."""
    windows = load_windows(root / "labels" / "combined_windows.json")
    out = []
    for rel, win in sorted(windows.items()):
        ts, values = load_series(root / "data" / rel)
        out.append((rel, ts, values, win))
    return out


def nab_rows(root: Path, results: Path | None, check_stream: bool) -> tuple[list[dict], dict]:
    """Score indunet's detector on NAB; the board's entries; optionally re-score published ones."""
    corpus = nab_corpus(root)
    t0 = time.perf_counter()
    scores = {rel: stream_scores(values)["score"] for rel, _, values, _ in corpus}
    detect_s = time.perf_counter() - t0
    sweeps = [sweep_series(rel, ts, scores[rel], win) for rel, ts, _, win in corpus]
    info: dict = {"series": len(corpus), "rows": sum(len(v) for _, _, v, _ in corpus)}
    info["detect_s"] = detect_s
    rows = []
    for profile in PROFILES:
        c = score_corpus(sweeps, profile)
        rows.append(
            row("NAB v1.1 (58 series)", "indunet stream", SHORT[profile], c.normalised, "this run")
        )
        info[profile] = {
            "score": c.normalised,
            "threshold": c.threshold,
            "raw": c.raw,
            "windows_detected": c.windows_detected,
            "windows": c.windows,
            "fp_rows": c.fp,
        }
    if check_stream:  # the streaming path gives the same scores, series by series
        t0 = time.perf_counter()
        same = True
        for rel, _, values, _ in corpus:
            det = StreamDetector(StreamParams())
            got = np.array([det.update(float(x)).score for x in values])
            same &= bool(np.array_equal(got, scores[rel]))
        info["stream_equal"] = same
        info["stream_s"] = time.perf_counter() - t0
    board = json.loads((root / "results" / "final_results.json").read_text())
    for name in sorted(board, key=lambda k: -board[k]["standard"]):
        for profile in PROFILES:
            rows.append(
                row("NAB v1.1 (58 series)", name, SHORT[profile], board[name][profile], "published")
            )
    if results is not None:
        rows += rescore_published(root, results, corpus, board, info)
    return rows, info


def rescore_published(
    root: Path, results: Path, corpus: list, board: dict, info: dict
) -> list[dict]:
    """Score the published detectors' result files with our scorer at NAB's thresholds."""
    thresholds_file = results.parent / "config" / "thresholds.json"
    thresholds = json.loads(thresholds_file.read_text()) if thresholds_file.exists() else {}
    out = []
    info["rescored"] = {}
    for det in sorted(p.name for p in results.iterdir() if p.is_dir()):
        if det not in board:
            continue
        sweeps = []
        try:
            for rel, ts, _, win in corpus:
                folder, name = rel.split("/")
                lines = (results / det / folder / f"{det}_{name}").read_text().splitlines()
                col = lines[0].split(",").index("anomaly_score")
                sc = [float(line.split(",")[col]) for line in lines[1:]]
                sweeps.append(sweep_series(rel, ts, sc, win))
        except (OSError, ValueError) as exc:
            print(f"  {det}: not re-scored ({exc})", file=sys.stderr)
            continue
        for profile in PROFILES:
            th = thresholds.get(det, {}).get(profile, {}).get("threshold")
            c = score_corpus(sweeps, profile, th)
            out.append(
                row(
                    "NAB v1.1 (58 series)",
                    f"{det} (re-scored)",
                    SHORT[profile],
                    c.normalised,
                    "our scorer",
                )
            )
            info["rescored"][f"{det}/{profile}"] = {
                "ours": c.normalised,
                "published": board[det][profile],
            }
    return out


# --------------------------------------------------------------------------- runtime


def _tag(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 50 + 10 * np.sin(2 * np.pi * t / 1440 + seed) + rng.normal(0, 1, n)
    x[rng.integers(n // 2, n)] += 30  # one spike
    return x


def _score_tags(args: tuple[int, int, int]) -> tuple[float, int]:
    first, count, n = args
    spent, alerts = 0.0, 0
    for seed in range(first, first + count):
        x = _tag(seed, n)
        t0 = time.perf_counter()
        s = stream_scores(x)["score"]
        spent += time.perf_counter() - t0
        alerts += int((s >= 0.3).sum())
    return spent, alerts


def stream_reference(tags: int, samples: int) -> dict:
    """The peer in the same run: the streaming path (sample by sample, as the alarm service
    runs it) on the first ``tags`` synthetic tags, checked equal to the batch path."""
    spent, batch_s, same = 0.0, 0.0, True
    for seed in range(tags):
        x = _tag(seed, samples)
        t0 = time.perf_counter()
        det = StreamDetector(StreamParams())
        got = np.array([det.update(v).score for v in x.tolist()])
        spent += time.perf_counter() - t0
        t0 = time.perf_counter()
        want = stream_scores(x)["score"]
        batch_s += time.perf_counter() - t0
        same &= bool(np.array_equal(got, want))
    return {
        "tags": tags,
        "stream_per_tag_ms": 1000 * spent / max(tags, 1),
        "batch_per_tag_ms": 1000 * batch_s / max(tags, 1),
        "equal": same,
    }


def runtime(tags: int, samples: int, workers: int) -> dict:
    """Score ``tags`` x ``samples`` synthetic values; wall time and scoring time."""
    chunk = max(1, tags // (workers * 4))
    jobs = [(i, min(chunk, tags - i), samples) for i in range(0, tags, chunk)]
    t0 = time.perf_counter()
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_score_tags, jobs)
    else:
        parts = [_score_tags(j) for j in jobs]
    wall = time.perf_counter() - t0
    scoring = sum(p[0] for p in parts)
    return {
        "tags": tags,
        "samples_per_tag": samples,
        "workers": workers,
        "wall_s": wall,
        "scoring_cpu_s": scoring,
        "per_tag_ms": 1000 * scoring / tags,
        "alerts": sum(p[1] for p in parts),
    }


def rul_rows() -> list[dict]:
    """Rows of ``bench/condition_rul.py`` (C-MAPSS RUL) when that file exists."""
    path = HERE / "condition_rul.py"
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location("condition_rul", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [  # its rows name method, dataset and reference: put them in this table's terms
        row(
            f"RUL on {r['dataset']}",
            str(r["method"]),
            str(r["metric"]),
            float(r["value"]),  # type: ignore[arg-type]
            "published" if r["reference"] else "this run",
        )
        for r in module.rul_rows()
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--nab", type=Path, default=DEFAULT_NAB, help="NAB corpus (data/, labels/, results/)"
    )
    ap.add_argument(
        "--nab-results", type=Path, help="NAB's results/ folder to re-score published detectors"
    )
    ap.add_argument("--tags", type=int, default=1000)
    ap.add_argument(
        "--samples", type=int, default=YEAR_MIN, help="per tag (default a year of minutes)"
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--stream-tags", type=int, default=2, help="tags also scored by the streaming path"
    )
    ap.add_argument("--skip-runtime", action="store_true")
    ap.add_argument("--skip-rul", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    started = datetime.now(UTC)
    load1 = os.getloadavg()[0]
    rows, info = nab_rows(args.nab, args.nab_results, check_stream=True)
    out: dict = {"nab": info}
    if not args.skip_rul:
        rows += rul_rows()
    if not args.skip_runtime:
        rt = runtime(args.tags, args.samples, args.workers)
        out["runtime"] = rt
        if args.stream_tags > 0:
            rt["reference"] = stream_reference(args.stream_tags, args.samples)
        rows.append(
            row(
                "runtime: 1-min samples x 1 year",
                f"{rt['tags']} tags, {rt['workers']} process(es)",
                "wall s",
                rt["wall_s"],
                "this run",
            )
        )
        rows.append(
            row(
                "runtime: 1-min samples x 1 year",
                f"{rt['tags']} tags, {rt['workers']} process(es)",
                "CPU s",
                rt["scoring_cpu_s"],
                "this run",
            )
        )
    print(
        f"indunet condition benchmark {started:%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} CPUs, load {load1:.2f} at start); Python {platform.python_version()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}"
    )
    print(
        f"NAB: {info['series']} series, {info['rows']:,} rows scored in {info['detect_s']:.2f} s "
        f"(batch); streaming path equal: {info.get('stream_equal')} "
        f"({info.get('stream_s', 0):.1f} s)"
    )
    for profile in PROFILES:
        p = info[profile]
        print(
            f"  {profile}: threshold {p['threshold']:.4f}, windows detected "
            f"{p['windows_detected']}/{p['windows']}, false-positive rows {p['fp_rows']}"
        )
    if "runtime" in out:
        rt = out["runtime"]
        print(
            f"runtime: {rt['tags']} tags x {rt['samples_per_tag']:,} samples in "
            f"{rt['wall_s']:.1f} s wall ({rt['workers']} process(es), generation included), "
            f"scoring {rt['scoring_cpu_s']:.1f} s CPU = {rt['per_tag_ms']:.0f} ms per tag-year"
        )
        ref = rt.get("reference")
        if ref:
            ratio = ref["stream_per_tag_ms"] / ref["batch_per_tag_ms"]
            print(
                f"  peer: the streaming path on {ref['tags']} of those tags: "
                f"{ref['stream_per_tag_ms']:.0f} ms per tag-year (batch "
                f"{ref['batch_per_tag_ms']:.0f} ms, {ratio:.0f}x); "
                f"same scores: {ref['equal']}"
            )
    print_table(rows)
    if args.json:
        out["rows"] = rows
        out["started"] = started.isoformat()
        out["load1_at_start"] = load1
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
