"""Docking before/after: time validate + cost + fair of the bench document with a given source tree.

    git archive <commit> src | tar -x -C /tmp/before
    python bench/docking_before_after.py /tmp/before/src   # the code before
    python bench/docking_before_after.py src                # this checkout

Prints one JSON line: wall and CPU seconds (CPU time is what contention from other processes
inflates least), the optimum and the lowest fill rate, so both trees are checked to agree.
The document is `bench/docking.py`'s generator at its defaults (10,000 × 10,000, 1 M lanes).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    tree = str(Path(sys.argv[1]).resolve())
    sys.path.insert(0, str(HERE))
    from docking import generate  # the bench's generator; it imports indunet from this checkout

    for name in [m for m in sys.modules if m == "indunet" or m.startswith("indunet.")]:
        del sys.modules[name]
    sys.path.insert(0, tree)
    import indunet
    from indunet.docking.problem import load_problem
    from indunet.docking.solver import solve

    doc = generate(10_000, 10_000, 100, 50, 1)
    out: dict = {"tree": tree, "module": indunet.__file__, "loadavg": os.getloadavg()}
    t, c = time.perf_counter(), time.process_time()
    problem = load_problem(doc)
    out["load_s"], out["load_cpu_s"] = time.perf_counter() - t, time.process_time() - c
    for objective in ("cost", "fair"):
        t, c = time.perf_counter(), time.process_time()
        result = solve(problem, objective)
        out[f"{objective}_s"] = time.perf_counter() - t
        out[f"{objective}_cpu_s"] = time.process_time() - c
        out[f"{objective}_total_cost"] = round(result.total_cost, 2)
        out[f"{objective}_min_fill"] = result.min_fill_rate
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
