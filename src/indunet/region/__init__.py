"""Regional resumption monitor: enterprise registry, daily kWh readings and operating-rate roll-ups.

Import the submodules directly (``indunet.region.store``, ``.rate``, ...); this package module stays
light so that `indunet.config` can import `RegionSettings` without loading DuckDB.
"""

from indunet.region.settings import RegionSettings

__all__ = ["RegionSettings"]
