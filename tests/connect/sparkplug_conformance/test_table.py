"""docs/sparkplug-conformance.md and the assertion tests stay in step: 89 ids, one test each."""

from __future__ import annotations

import re
from pathlib import Path

from tests.connect.sparkplug_conformance import test_host_assertions

DOC = Path(__file__).resolve().parents[3] / "docs" / "sparkplug-conformance.md"
ROW = re.compile(r"^\| (\d+) \| `(tck-id-[a-z0-9-]+)` \| .+ \| `(test_[a-z0-9_]+)` \| (.+) \|$")


def test_every_assertion_has_its_test_and_row():
    rows = [m.groups() for line in DOC.read_text().splitlines() if (m := ROW.match(line))]
    assert [int(n) for n, *_ in rows] == list(range(1, 90))
    assert len({i for _, i, _, _ in rows}) == 89
    tests = {n for n in dir(test_host_assertions) if n.startswith("test_")}
    for _, ident, test, result in rows:
        assert test == "test_" + ident.removeprefix("tck-id-").replace("-", "_")
        assert test in tests, f"{ident}: no {test}"
        assert result.startswith(("pass", "**not applicable**")), (ident, result)
        if result.startswith("**not applicable**"):
            assert len(result) > 60, f"{ident}: not applicable needs its reason"
    assert tests == {t for *_, t, _ in rows}
