"""Meter profiles: register maps of common clip-on / DIN-rail energy meters, kept as TOML data.

A device that names ``profile = "eastron-sdm630"`` gets that meter's tags; its own ``tags``
entries with the same name replace the profile's, and new names are added.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from indunet.errors import DataError

__all__ = ["apply_profile", "load_profile", "profile_names"]


def profile_names() -> list[str]:
    """Return the names of the bundled meter profiles."""
    folder = resources.files("indunet.edge") / "profiles"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_profile(name: str) -> dict[str, Any]:
    """Return a profile as ``{"title", "source", "tags": [...]}`` with defaults applied."""
    names = profile_names()
    if name not in names:
        raise DataError(
            f"field 'profile': unknown meter profile {name!r}; known: {', '.join(names)}"
        )
    text = (resources.files("indunet.edge") / "profiles" / f"{name}.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    defaults = doc.get("defaults", {})
    tags = [{**defaults, **tag} for tag in doc.get("tags", [])]
    return {"title": doc.get("title", name), "source": doc.get("source", ""), "tags": tags}


def apply_profile(device: dict[str, Any]) -> dict[str, Any]:
    """Return the raw device section with its profile's tags merged in (own tags win)."""
    profile = load_profile(str(device["profile"]))
    own = device.get("tags") or []
    if not isinstance(own, list):
        raise DataError("field 'tags' must be an array of tables ([[devices.tags]])")
    own_names = {t.get("name") for t in own if isinstance(t, dict)}
    merged = [t for t in profile["tags"] if t["name"] not in own_names] + list(own)
    return {**device, "tags": merged}
