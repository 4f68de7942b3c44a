"""Where the tests find the real public datasets: copies kept in the repo (sources, licences and
trimming in each folder's SOURCE.md; originals in ../shared/datasets)."""

from __future__ import annotations

from pathlib import Path

DATASETS = Path(__file__).resolve().parent / "fixtures" / "datasets"
