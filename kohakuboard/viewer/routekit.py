"""What every route module of the viewer shares: the catalog of the app, strict JSON
responses that no cache keeps, and the checks of common query parameters (each names the
parameter and what is accepted)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from .catalog import Catalog
from .errors import BadParameterError

# Answers change while a run writes: never let a browser or proxy keep one.
NO_STORE = {"Cache-Control": "no-store"}
MAX_PAGE = 1000
MAX_FILTER = 1000


def catalog_of(request: Request) -> Catalog:
    # the team server (kohakuboard.server) picks a catalog per request: the user's project
    catalog: Catalog = getattr(request.state, "catalog", None) or request.app.state.catalog
    return catalog


def json_response(doc: dict[str, Any]) -> Response:
    """``doc`` as strict JSON (non-finite floats must already be strings)."""
    body = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    return Response(body, media_type="application/json", headers=NO_STORE)


def in_range(name: str, value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise BadParameterError(
            f"{name}={value!r} is out of range; accepted: {lo} <= {name} <= {hi}"
        )
    return value


@dataclass
class PageQuery:
    """The paging, sort and filter parameters of a table page (FastAPI reads them from the
    query string through ``Annotated[PageQuery, Depends()]``)."""

    offset: int = 0
    limit: int = 50
    sort: str | None = None
    desc: bool = False
    filter: str = ""  # the contract's parameter name

    def __post_init__(self) -> None:
        in_range("limit", self.limit, 1, MAX_PAGE)
        if self.offset < 0:
            raise BadParameterError(f"offset={self.offset!r} is negative; accepted: offset >= 0")
        if len(self.filter) > MAX_FILTER:
            raise BadParameterError(
                f"filter is {len(self.filter)} characters; accepted: at most {MAX_FILTER}"
            )

    def window(self) -> slice:
        return slice(self.offset, self.offset + self.limit)

    def echo(self) -> dict[str, Any]:
        """The parameters as the answer repeats them."""
        return {
            "offset": self.offset,
            "limit": self.limit,
            "sort": self.sort or None,
            "desc": self.desc,
            "filter": self.filter,
        }


def sort_column(columns: Sequence[str], sort: str | None, what: str) -> int | None:
    """The index of the column ``sort`` names in ``what`` (None: no sort)."""
    if not sort:
        return None
    if sort not in columns:
        raise BadParameterError(
            f"sort={sort!r}: {what} has no such column; accepted: {', '.join(map(repr, columns))}"
        )
    return list(columns).index(sort)
