"""[[plant.rul]]: every configuration mistake is refused at start-up, naming the field."""

from __future__ import annotations

import pytest

from indunet.errors import ConfigError
from tests.condition import rul_plant as fleet

E = "acme"


def test_config_is_checked(settings_factory, tmp_path) -> None:
    runs = str(tmp_path)
    base = fleet.plant(tmp_path)
    bad = [
        ({"cycle_tag": "flight"}, "exactly one of cycle_s"),
        ({"machines": ["s1/hangar/l1/nope"]}, "not in \\[\\[plant.machines\\]\\]"),
        ({"horizon": 200}, "must be below cap"),
        ({"asset_class": "bad class"}, "asset_class"),
        ({"sensors": ["s2", "s2"]}, "listed twice"),
        ({"runs_dir": None}, "give the run-to-failure histories"),
        (
            {
                "runs": [
                    {
                        "machine": "s1/a/l1/m1",
                        "start": "2026-01-01T00:00:00",
                        "end": "2026-02-01T00:00:00Z",
                    }
                ]
            },
            "time zone",
        ),
        (
            {
                "runs": [
                    {
                        "machine": "s1/a/l1/m1",
                        "start": "2026-03-01T00:00:00Z",
                        "end": "2026-02-01T00:00:00Z",
                    }
                ]
            },
            "end must be after start",
        ),
    ]
    for change, message in bad:
        plant = base | {"rul": [base["rul"][0] | {"runs_dir": runs} | change]}
        with pytest.raises(ConfigError, match=message):
            settings_factory(enterprise=E, plant=plant)
    twice = base | {"rul": [base["rul"][0], base["rul"][0] | {"asset_class": "other"}]}
    with pytest.raises(ConfigError, match="already in asset class"):
        settings_factory(enterprise=E, plant=twice)
