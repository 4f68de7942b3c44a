"""The supply network: sites, items, bills of materials, supply relations and products.

One JSON document (the NETWORK.json contract) or a CSV bundle directory (``nodes.csv``,
``products.csv``, ``bom.csv``, optional ``supplies.csv`` and ``grid.csv``) becomes a validated
`Network`. Every error names the entry (``nodes[3] (id 'B')`` or ``nodes.csv line 5``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import rustworkx as rx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from indunet.errors import DataError

__all__ = [
    "BomLine",
    "Network",
    "Node",
    "Product",
    "Supply",
    "load_network",
    "parse_network",
    "read_csv_bundle",
]

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)
MAX_ERRORS = 20


class Node(BaseModel):
    """An enterprise site that makes one item."""

    model_config = _STRICT

    id: str = Field(min_length=1, max_length=200)
    produces: str = Field(min_length=1, max_length=200)
    capacity_per_week: float = Field(ge=0)
    inventory: float = Field(0.0, ge=0, description="Stock of the site's own item.")
    ttr_weeks: float = Field(ge=0, description="Time to recover after a stop.")
    region: str = ""
    industry: str = ""
    enterprise: str = Field("", description="Registry id for the regional monitor (live link).")
    plant_site: str = Field(
        "", description="Plant site of the network's own enterprise that makes this (live link)."
    )
    uplink_site: str = Field(
        "",
        description="Site of the enterprise's plant that uplinks its machine states (federation; "
        "empty: all its uplinked sites).",
    )
    energy_kwh_per_unit: float = Field(0.0, ge=0)
    direct_kg_co2_per_unit: float = Field(0.0, ge=0)


class Product(BaseModel):
    """Final demand of an item, with its margin per unit."""

    model_config = _STRICT

    item: str = Field(min_length=1, max_length=200)
    demand_per_week: float = Field(ge=0)
    margin: float = Field(ge=0)


class BomLine(BaseModel):
    """One unit of ``parent`` needs ``qty`` units of ``child``."""

    model_config = _STRICT

    parent: str = Field(min_length=1, max_length=200)
    child: str = Field(min_length=1, max_length=200)
    qty: float = Field(gt=0)


class Supply(BaseModel):
    """Site ``supplier`` ships ``item`` to ``customer`` (a site id, or a product's market)."""

    model_config = _STRICT

    supplier: str = Field(min_length=1)
    customer: str = Field(min_length=1)
    item: str = Field(min_length=1)
    share: float | None = Field(None, ge=0, le=1)
    lead_time_weeks: float = Field(0.0, ge=0)


class Network(BaseModel):
    """A validated supply network (use `parse_network` to build one)."""

    model_config = _STRICT

    horizon_weeks: float = Field(52.0, gt=0, le=10_000)
    nodes: list[Node] = Field(min_length=1)
    products: list[Product] = Field(min_length=1)
    bom: list[BomLine] = Field(default_factory=list)
    supplies: list[Supply] | None = None
    grid_factors: dict[str, float] = Field(
        default_factory=dict, description="kg CO2 per kWh of each region's grid."
    )
    warnings: list[str] = Field(default_factory=list, exclude=True)

    def makers(self) -> dict[str, list[Node]]:
        """Return the sites making each item."""
        out: dict[str, list[Node]] = {}
        for node in self.nodes:
            out.setdefault(node.produces, []).append(node)
        return out

    def recipes(self) -> dict[str, dict[str, float]]:
        """Return each item's bill of materials: child item -> quantity per unit."""
        out: dict[str, dict[str, float]] = {}
        for line in self.bom:
            out.setdefault(line.parent, {})[line.child] = line.qty
        return out


def _entry_name(section: str, index: int, raw: Any, refs: Mapping[str, str] | None) -> str:
    """Name an entry: ``nodes[3] (id 'B')`` or, for CSV bundles, ``nodes.csv line 5``."""
    if refs is not None and f"{section}[{index}]" in refs:
        return refs[f"{section}[{index}]"]
    label = ""
    if isinstance(raw, dict):
        for key in ("id", "item", "supplier"):
            if isinstance(raw.get(key), str):
                label = f" ({key} {raw[key]!r})"
                break
        if section == "bom" and isinstance(raw.get("parent"), str):
            label = f" ({raw.get('parent')!r} needs {raw.get('child')!r})"
    return f"{section}[{index}]{label}"


def _explain(exc: ValidationError, doc: Any, refs: Mapping[str, str] | None) -> list[str]:
    messages = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = "network"
        if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(doc, dict):
            section = str(loc[0])
            items = doc.get(section) if isinstance(doc.get(section), list) else []
            raw = items[loc[1]] if loc[1] < len(items) else None
            where = _entry_name(section, loc[1], raw, refs)
            loc = loc[2:]
        elif loc:
            where = f"field {loc[0]!r}"
            loc = loc[1:]
        field = ".".join(str(p) for p in loc)
        kind = err["type"]
        if kind == "missing":
            text = f"{where}: {field or 'value'} is missing"
        elif kind == "extra_forbidden":
            text = f"{where}: unknown field {field!r}"
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f", got {got!r}"
            text = f"{where}: {field + ' ' if field else ''}{err['msg'].lower()}{shown}"
        messages.append(text)
    return messages


def _cycle(bom: list[BomLine]) -> list[str] | None:
    """Return a cycle of items in the BOM (first item repeated at the end), or None."""
    graph = rx.PyDiGraph()
    index: dict[str, int] = {}
    for line in bom:
        for item in (line.parent, line.child):
            if item not in index:
                index[item] = graph.add_node(item)
        graph.add_edge(index[line.parent], index[line.child], None)
    if rx.is_directed_acyclic_graph(graph):
        return None
    for start in graph.node_indices():
        edges = rx.digraph_find_cycle(graph, start)
        if edges:
            items = [graph[a] for a, _ in edges]
            return [*items, items[0]]
    return None  # pragma: no cover - a non-DAG always has a cycle


def parse_network(doc: Any, *, refs: Mapping[str, str] | None = None) -> Network:
    """Validate a NETWORK.json document; raise `DataError` naming every offending entry."""
    if not isinstance(doc, dict):
        raise DataError("the network must be a JSON object with nodes, products and bom")
    try:
        network = Network.model_validate(doc)
    except ValidationError as exc:
        errors = _explain(exc, doc, refs)
        raise DataError(_join(errors)) from exc
    errors, warnings = _cross_check(network, refs)
    if errors:
        raise DataError(_join(errors))
    network.warnings = warnings
    return network


def _join(errors: list[str]) -> str:
    shown = errors[:MAX_ERRORS]
    more = f"; and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
    return "; ".join(shown) + more


def _cross_check(net: Network, refs: Mapping[str, str] | None) -> tuple[list[str], list[str]]:
    """Check references between sections; return (errors, warnings)."""
    errors: list[str] = []
    warnings: list[str] = []

    def name(section: str, i: int, entry: BaseModel) -> str:
        return _entry_name(section, i, entry.model_dump(), refs)

    seen: dict[str, int] = {}
    for i, node in enumerate(net.nodes):
        if node.id in seen:
            errors.append(
                f"{name('nodes', i, node)}: duplicate id, first at nodes[{seen[node.id]}]"
            )
        seen.setdefault(node.id, i)
    made = {n.produces for n in net.nodes}
    parents = {b.parent for b in net.bom}
    bom_seen: dict[tuple[str, str], int] = {}
    for i, line in enumerate(net.bom):
        key = (line.parent, line.child)
        if key in bom_seen:
            errors.append(f"{name('bom', i, line)}: duplicate line, first at bom[{bom_seen[key]}]")
        bom_seen.setdefault(key, i)
        if line.parent == line.child:
            errors.append(f"{name('bom', i, line)}: cyclic BOM, {line.parent!r} needs itself")
    cycle = _cycle([b for b in net.bom if b.parent != b.child])
    if cycle:
        errors.append("cyclic BOM: " + " needs ".join(repr(c) for c in cycle))
    for i, line in enumerate(net.bom):
        if line.child not in made:
            errors.append(f"{name('bom', i, line)}: item {line.child!r} is made by no node")
    product_seen: dict[str, int] = {}
    for i, product in enumerate(net.products):
        if product.item in product_seen:
            errors.append(
                f"{name('products', i, product)}: duplicate product, "
                f"first at products[{product_seen[product.item]}]"
            )
        product_seen.setdefault(product.item, i)
        if product.item not in made and product.item not in parents:
            errors.append(
                f"{name('products', i, product)}: demand for unknown item {product.item!r} "
                "(no node makes it and it has no BOM)"
            )
    regions = {n.region for n in net.nodes if n.energy_kwh_per_unit > 0}
    for region in sorted(regions - set(net.grid_factors)) if net.grid_factors else []:
        errors.append(f"grid_factors: no factor for region {region!r} (nodes there use energy)")
    for region, factor in net.grid_factors.items():
        if factor < 0 or not math.isfinite(factor):
            errors.append(f"grid_factors[{region!r}]: must be a finite number >= 0, got {factor}")
    if net.supplies is not None:
        errors += _check_supplies(net, seen, made, refs)
    if errors:
        return errors, warnings
    recipes = net.recipes()
    used = {b.child for b in net.bom} | {p.item for p in net.products}
    for item in sorted(made - used):
        warnings.append(f"item {item!r} is made but neither a product nor in any BOM")
    if net.supplies is not None:
        listed = {(s.customer, s.item) for s in net.supplies}
        for node in net.nodes:
            for child in recipes.get(node.produces, {}):
                if (node.id, child) not in listed:
                    warnings.append(
                        f"site {node.id!r} needs {child!r} but no supply lists it; "
                        "assuming any maker may supply it"
                    )
    return errors, warnings


def _check_supplies(
    net: Network, node_index: dict[str, int], made: set[str], refs: Mapping[str, str] | None
) -> list[str]:
    errors = []
    recipes = net.recipes()
    products = {p.item for p in net.products}
    seen: dict[tuple[str, str, str], int] = {}
    for i, supply in enumerate(net.supplies or []):
        where = _entry_name("supplies", i, supply.model_dump(), refs)
        where = f"{where} ({supply.supplier} -> {supply.customer}, item {supply.item!r})"
        key = (supply.supplier, supply.customer, supply.item)
        if key in seen:
            errors.append(f"{where}: duplicate relation, first at supplies[{seen[key]}]")
        seen.setdefault(key, i)
        if supply.supplier not in node_index:
            errors.append(f"{where}: supplier {supply.supplier!r} is not a node")
            continue
        maker = net.nodes[node_index[supply.supplier]]
        if maker.produces != supply.item:
            errors.append(f"{where}: supplier makes {maker.produces!r}, not {supply.item!r}")
        if supply.customer in node_index:
            customer_item = net.nodes[node_index[supply.customer]].produces
            needs = recipes.get(customer_item, {})
            if supply.item not in needs:
                errors.append(
                    f"{where}: customer makes {customer_item!r}, whose BOM does not use "
                    f"{supply.item!r}"
                )
        elif supply.customer in products:
            needs = {supply.customer: 1.0} if supply.customer in made else recipes[supply.customer]
            if supply.item not in needs:
                errors.append(f"{where}: product {supply.customer!r} does not use {supply.item!r}")
        else:
            errors.append(f"{where}: customer {supply.customer!r} is neither a node nor a product")
    return errors


def load_network(path: Path) -> Network:
    """Read a network from a JSON file or a CSV bundle directory."""
    if path.is_dir():
        return read_csv_bundle(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}") from exc
    try:
        return parse_network(doc)
    except DataError as exc:
        raise DataError(f"{path.name}: {exc}") from exc


_CSV_FILES = {
    "nodes": ("nodes.csv", True),
    "products": ("products.csv", True),
    "bom": ("bom.csv", False),
    "supplies": ("supplies.csv", False),
}
_NUMBERS = {
    "capacity_per_week",
    "inventory",
    "ttr_weeks",
    "energy_kwh_per_unit",
    "direct_kg_co2_per_unit",
    "demand_per_week",
    "margin",
    "qty",
    "share",
    "lead_time_weeks",
    "kg_co2_per_kwh",
}


def _read_csv(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """Yield (line number, row) with numbers parsed and empty cells left out."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DataError(f"{path.name}: cannot read it: {exc}") from exc
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise DataError(f"{path.name}: the file is empty (a header row is needed)")
        header = [h.strip() for h in header]
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path.name} line {line}: {len(row)} fields, the header has {len(header)}"
                )
            out: dict[str, Any] = {}
            for key, cell in zip(header, row, strict=True):
                cell = cell.strip()
                if cell == "":
                    continue
                if key in _NUMBERS:
                    try:
                        out[key] = float(cell)
                    except ValueError:
                        raise DataError(
                            f"{path.name} line {line}: {key} {cell!r} is not a number"
                        ) from None
                else:
                    out[key] = cell
            yield line, out


def read_csv_bundle(directory: Path, *, horizon_weeks: float = 52.0) -> Network:
    """Read ``nodes.csv``, ``products.csv``, ``bom.csv`` (+ ``supplies.csv``, ``grid.csv``)."""
    doc: dict[str, Any] = {"horizon_weeks": horizon_weeks}
    refs: dict[str, str] = {}
    for section, (filename, required) in _CSV_FILES.items():
        path = directory / filename
        if not path.exists():
            if required:
                raise DataError(f"{directory}: {filename} is missing from the CSV bundle")
            continue
        rows = []
        for line, row in _read_csv(path):
            refs[f"{section}[{len(rows)}]"] = f"{filename} line {line}"
            rows.append(row)
        doc[section] = rows
    grid = directory / "grid.csv"
    if grid.exists():
        factors: dict[str, float] = {}
        for line, row in _read_csv(grid):
            if "region" not in row or "kg_co2_per_kwh" not in row:
                raise DataError(f"grid.csv line {line}: needs region and kg_co2_per_kwh")
            factors[row["region"]] = row["kg_co2_per_kwh"]
        doc["grid_factors"] = factors
    return parse_network(doc, refs=refs)
