"""GET/POST /api/v1/tags: the unified namespace (list, tree, search, declare)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from indunet.api.deps import HistorianDep, SettingsDep
from indunet.api.paging import Offset, page
from indunet.model import DataType
from indunet.store import TagSpec

router = APIRouter(tags=["tags"])


class TagDeclaration(BaseModel):
    """A tag declared up front with its metadata."""

    tag: str = Field(description="site/area/line/machine/tag")
    data_type: DataType = DataType.NUMBER
    unit: str | None = Field(None, max_length=32)
    description: str | None = Field(None, max_length=1000)
    expected_interval_ms: int | None = Field(None, gt=0)
    source: str | None = Field(None, max_length=200)


class TagOut(BaseModel):
    """A tag as the namespace knows it."""

    tag: str = Field(description="site/area/line/machine/tag")
    data_type: DataType
    unit: str | None
    description: str | None
    expected_interval_ms: int | None
    source: str | None
    created_ms: int


class TagList(BaseModel):
    """Tags under a prefix, or (``tree=true``) the asset tree site → area → line → machine."""

    prefix: str
    tags: list[TagOut] | None = Field(None, description="Absent when tree=true")
    tree: dict[str, Any] | None = Field(None, description="Only when tree=true")


class Declared(BaseModel):
    """How many tags were declared or updated."""

    declared: int


@router.get("/tags", response_model=TagList, response_model_exclude_unset=True)
def list_tags(
    request: Request,
    response: Response,
    historian: HistorianDep,
    settings: SettingsDep,
    prefix: str = "",
    search: Annotated[str | None, Query(max_length=200)] = None,
    tree: bool = False,
    limit: Annotated[int, Query(gt=0, le=100_000)] = 10_000,
    enterprise: str | None = None,
    offset: Offset = 0,
) -> dict[str, Any]:
    """List tags under a prefix (optionally containing ``search``), or the asset tree.

    Paged by ``limit``/``offset``: a ``Link: rel=next`` header points to the next page.
    """
    enterprise = enterprise or settings.enterprise
    if tree:
        return {"prefix": prefix, "tree": historian.tree(enterprise, prefix)}
    found = historian.tags(enterprise, prefix, search=search, limit=offset + limit + 1)
    found = page(request, response, found, limit=limit, offset=offset)
    return {"prefix": prefix, "tags": [t.as_dict() for t in found]}


@router.post("/tags", response_model=Declared)
def declare_tags(
    body: list[TagDeclaration],
    historian: HistorianDep,
    settings: SettingsDep,
    enterprise: str | None = None,
) -> dict:
    """Declare tags (or update their metadata) before data arrives."""
    enterprise = enterprise or settings.enterprise
    specs = [
        TagSpec(d.tag, d.data_type, d.unit, d.description, d.expected_interval_ms, d.source)
        for d in body
    ]
    return {"declared": historian.declare_tags(enterprise, specs)}
