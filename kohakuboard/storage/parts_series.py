"""Tails of the parts backends (``parquet``, ``duckdb``; mixed into their reader).

A commit adds scalar parts with higher ids; a compaction replaces parts (their ids vanish)
and the ``duckdb`` backend's absorb moves them into ``board.duckdb``. So a mark is the set of
scalar part ids a read saw (and the database's ``absorbed_upto``): while those parts are all
still listed and nothing was absorbed, the rows committed since are those of the parts
listed after them. Otherwise the caller reads again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import pyarrow as pa

_ATTEMPTS = 20


@dataclass(frozen=True)
class PartsMark:
    ids: frozenset[int]
    absorbed_upto: int


def _mark(state: dict[str, Any]) -> PartsMark:
    ids = frozenset(int(p["id"]) for p in state["parts"] if p["kind"] == "scalars")
    return PartsMark(ids, int(state.get("duckdb", {}).get("absorbed_upto", 0)))


class PartsSeries:
    """Mixed into :class:`~.parts_reader.PartsReader` (uses its manifest helpers)."""

    snapshot: Any
    scalar_tables_many: Any
    _cached: Any

    def scalars_marked(self, names: list[str]) -> tuple[dict[str, pa.Table], PartsMark | None]:
        from .parts_reader import sorted_scalars

        for attempt in range(_ATTEMPTS):
            state, known = self.snapshot()
            wanted = [n for n in dict.fromkeys(names) if (n, "scalar") in known]
            try:
                pieces = self.scalar_tables_many(state, wanted) if wanted else {}
                break
            except FileNotFoundError:
                self._cached = None  # compaction replaced files: take a new snapshot
                time.sleep(0.005 * (attempt + 1))
        else:
            raise RuntimeError("could not read scalars: the files kept changing")
        return {n: sorted_scalars(pieces.get(n, [])) for n in names}, _mark(state)

    def scalars_after(
        self, names: list[str], mark: Any
    ) -> tuple[dict[str, pa.Table], PartsMark] | None:
        from .parts_reader import PartsReader, sorted_scalars

        if not isinstance(mark, PartsMark):
            return None
        state, known = self.snapshot()
        now = _mark(state)
        if now.absorbed_upto != mark.absorbed_upto or not mark.ids <= now.ids:
            return None
        wanted = [n for n in dict.fromkeys(names) if (n, "scalar") in known]
        pieces: dict[str, list[pa.Table]] = {}
        if wanted and now.ids != mark.ids:
            try:
                # only the live parts listed after the marked ones (never the database)
                reader = cast(PartsReader, self)
                pieces = PartsReader.scalar_tables_many(
                    reader, state, wanted, after=max(mark.ids, default=mark.absorbed_upto)
                )
            except FileNotFoundError:
                return None
        return {n: sorted_scalars(pieces.get(n, [])) for n in names}, now
