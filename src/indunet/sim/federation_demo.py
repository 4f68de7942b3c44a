"""Small plant instances for `indunet demo --federation`: each uplinks to the demo's region.

Each `DemoPlant` is a plant of its own — its own DuckDB historian in ``plants/{name}`` of the
demo's data dir, a simulated plant config, and a real `PlantUplink` (store-and-forward buffer,
forwarder) logging in to the demo's embedded broker as its enterprise's uplink user, which may
publish only ``indunet/uplink/v1/{name}/#``. Its data grows by the simulator's back-fill every
``step_s`` seconds (10 s points), so its figures move while the demo runs. They run in the
demo's process (threads) to keep the demo light on a small machine; they share nothing with the
regional instance but the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from indunet.config import load_settings
from indunet.federation.uplink import PlantUplink
from indunet.sim.backfill import backfill_history, carry_on_counters
from indunet.sim.live import build_plants
from indunet.sim.plant_config import demo_plant_config
from indunet.store import open_historian

__all__ = ["DEMO_ENTERPRISES", "DEMO_REGISTRY", "DemoPlant", "register_demo_plants"]

log = logging.getLogger(__name__)

#: the federated demo's plants: enterprise id (in the region) and (sites, machines)
DEMO_ENTERPRISES = {"fed-acme": (2, 6), "fed-bolt": (1, 4), "fed-carl": (1, 3)}
#: how the region registers them (what a regional operator enters for a plant that uplinks)
DEMO_REGISTRY = {
    "fed-acme": {"name": "Acme Auto Parts", "province": "Hubei", "city": "Wuhan",
                 "industry": "C36", "size": "medium"},
    "fed-bolt": {"name": "Bolt Fasteners", "province": "Zhejiang", "city": "Ningbo",
                 "industry": "C33", "size": "small"},
    "fed-carl": {"name": "Carl Electric", "province": "Guangdong", "city": "Dongguan",
                 "industry": "C38", "size": "small"},
}  # fmt: skip


class DemoPlant:
    """One simulated plant with its own historian and an uplink to the region."""

    def __init__(
        self,
        name: str,
        data_dir: Path,
        uplink_url: str,
        *,
        sites: int,
        machines: int,
        seed: int,
        hours: float = 26.0,
        interval_s: float = 10.0,
        step_s: float = 10.0,
    ) -> None:
        self.name = name
        self.machines = build_plants(sites, machines, seed)
        self.hours = hours
        self.step_s = step_s
        self.settings = load_settings(
            data_dir=data_dir / "plants" / name,
            enterprise=name,
            plant=demo_plant_config(self.machines).model_dump(mode="json"),
            uplink={"url": uplink_url, "enterprise": name, "interval_s": interval_s,
                    "days_back": 1, "client_id": f"indunet-demo-uplink-{name}"},
        )  # fmt: skip
        self.historian = open_historian(self.settings)
        self.seed = seed
        self._grow()
        carry_on_counters(self.historian, name, self.machines)
        self.uplink = PlantUplink(self.historian, self.settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _grow(self) -> None:
        now = int(time.time() * 1000)
        backfill_history(
            self.historian, self.name, self.machines, hours=self.hours, now_ms=now, seed=self.seed
        )

    def normal_daily_kwh(self) -> float:
        """Return the plant's kWh over its last 24 simulated hours (its declared normal use)."""
        from indunet.plant.report import energy_report

        end = int(time.time() * 1000)
        doc = energy_report(
            self.uplink.store, self.historian, self.settings.plant, self.name, "",
            end - 24 * 3_600_000, end, bucket="day",
        )  # fmt: skip
        return float(doc["total"]["kwh"])

    def start(self) -> DemoPlant:
        """Start the uplink and the data's growth."""
        self.uplink.start()
        self._thread = threading.Thread(target=self._run, name=f"plant-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.step_s):
            try:
                self._grow()
            except Exception:  # the demo goes on; the next step fills the gap
                log.exception("demo plant %s: simulated data not written", self.name)

    def stop(self) -> None:
        """Stop growing and uplinking; close the historian."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.uplink.stop(timeout=2)
        self.historian.close()


def start_demo_plants(
    data_dir: Path, broker_url: str, logins: dict[str, str], seed: int = 11
) -> list[Any]:
    """Start every plant of `DEMO_ENTERPRISES` with its uplink user's login on the broker."""
    from indunet.connect.mqtt import with_credentials

    plants = []
    for i, (name, (sites, machines)) in enumerate(DEMO_ENTERPRISES.items()):
        user = f"{name}-uplink"
        url = with_credentials(broker_url, user, logins[user])
        plants.append(
            DemoPlant(name, data_dir, url, sites=sites, machines=machines, seed=seed + i).start()
        )
    return plants


def register_demo_plants(region: Any, plants: list[DemoPlant], consumer: Any = None) -> list[str]:
    """Register the demo's plants in the region's registry with their normal daily kWh.

    What a regional operator does for a plant that starts uplinking (`RegionStore.register`):
    province, city, industry, size and a declared baseline (the plant's last 24 h). Their
    uplinked days that waited (quarantined as not in the registry) are sent again.
    """
    from datetime import UTC, datetime

    rows = []
    for p in plants:
        kwh = p.normal_daily_kwh()
        rows.append({"enterprise_id": p.name, **DEMO_REGISTRY[p.name],
                     "baseline_kwh": kwh if kwh > 0 else None})  # fmt: skip
    region.register(rows, source="demo plants", effective=datetime.now(UTC).date())
    names = [p.name for p in plants]
    if consumer is not None:
        consumer.resync(names)
    return names
