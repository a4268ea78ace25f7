"""Downsampled levels of scalar series: a cache of the data, never the data itself.

A level of group size ``G`` cuts one series (in step order, as a read returns it) into
consecutive groups of ``G`` points and keeps, of each group, the rows of

- its first and its last finite value, its smallest and its largest finite value (M4: the
  first of equal extremes),
- its last row whatever its value (so the latest logged point of a series is always there),
- the first NaN, the first +Inf and the first -Inf (so non-finite values stay visible).

Every kept row is a real logged point (step, global_step, wall_time, value unchanged), in step
order, with two more columns: ``nonfinite``, how many points of its own non-finite kind its
group holds (0 on finite rows and on non-first non-finite rows: summed per kind they give the
exact counts), and ``span``, how many points its group holds (on the group's last row, 0 on
the others: summed over rows they give the points the rows stand for).

A chart of ``B`` buckets drawn from a level with at least ``B`` groups keeps every spike (the
extremes of each group are kept) and the latest point, as the same chart drawn from the full
data does; bucket edges fall on group edges, so an extreme can show in the neighbouring
bucket. Smoothing needs every point and is never computed on a level.

The ``hybrid`` backend writes levels when it compacts (``scalars/levels/``, see
``docs/storage-format.md``); :func:`reduce_series` computes the same reduction from full data for
backends without stored levels.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .arrow_lean import empty_table, int_array, to_numpy
from .base import SCALAR_SCHEMA

logger = logging.getLogger(__name__)

# Group sizes of the stored levels. 16 keeps about a quarter of the rows: a chart that asks
# for a point per 8 logged points or fewer (30 runs x 20k steps in ~1,600 points) reads it
# instead of every point; the others are 16x apart.
LEVEL_GROUPS = (16, 64, 1024, 16384)
# The groups of levels files written before group 16 (still read; a chart that would read
# group 16 from such a file reduces the part's rows instead).
OLD_LEVEL_GROUPS = ((64, 1024, 16384),)
# A part keeps level G of a metric when it holds at least this many groups of it; a metric
# with fewer points is read at full resolution from the part (it is small there).
MIN_GROUPS = 8

# A series at some resolution: the scalar columns of the kept rows, then the two counts.
VIEW_SCHEMA = SCALAR_SCHEMA.append(pa.field("nonfinite", pa.int64())).append(
    pa.field("span", pa.int64())
)
# The stored form: level (group size) and metric id in front.
LEVEL_FILE_SCHEMA = pa.schema(
    [pa.field("group", pa.int32()), pa.field("metric", pa.int32()), *VIEW_SCHEMA]
)
LEVELS_KEY = b"kohakuboard.levels"
LEVELS_VERSION = 1


@dataclass(frozen=True)
class SeriesView:
    """One scalar series at a resolution, as :meth:`kohakuboard.reader.Reader.scalars_view`
    returns it.

    ``table`` has the columns of :data:`VIEW_SCHEMA`; ``group`` is the group size it was
    reduced with (1: every point, ``table`` is the full series in the asked step range).
    """

    table: pa.Table
    group: int

    @property
    def points(self) -> int:
        """Logged points the rows stand for (the sum of ``span``)."""
        return int(np.sum(to_numpy(self.table.column("span")))) if self.table.num_rows else 0


def bool_array(mask: np.ndarray) -> pa.Array:
    """A boolean Arrow array from a numpy mask (``pa.array`` would check for pandas)."""
    bits = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(bits)])


def _first_in(hits: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Per group, the first of the sorted indices ``hits`` inside it (``n``: none)."""
    first = np.append(hits, n)[np.searchsorted(hits, starts)]
    return np.where(first < np.append(starts[1:], n), first, n)


def _last_in(hits: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Per group, the last of the sorted indices ``hits`` inside it (``-1``: none)."""
    last = np.append(-1, hits)[np.searchsorted(hits, np.append(starts[1:], n))]
    return np.where(last >= starts, last, -1)


def reduce_indices(value: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kept row indices of one series (sorted) and their ``nonfinite`` and ``span``."""
    if group < 1:
        raise ValueError(f"group={group!r}; accepted: group >= 1")
    return reduce_groups(value, np.arange(0, len(value), group, dtype=np.int64))


def reduce_groups(
    value: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`reduce_indices` over groups that start at ``starts`` (sorted, the first 0,
    each group running to the next start): the kept indices, ``nonfinite`` and ``span``."""
    n = len(value)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    ends = np.append(starts[1:], n)
    counts = ends - starts
    finite = np.isfinite(value)
    picks = [ends - 1]
    good = np.flatnonzero(finite)
    picks += [_first_in(good, starts, n), _last_in(good, starts, n)]
    line = np.where(finite, value, np.nan)
    for fold in (np.fmin, np.fmax):
        best = np.repeat(fold.reduceat(line, starts), counts)
        picks.append(_first_in(np.flatnonzero(line == best), starts, n))
    nonfinite = np.zeros(n, dtype=np.int64)
    if len(good) < n:
        for mask in (np.isnan(value), value == np.inf, value == -np.inf):
            hits = np.flatnonzero(mask)
            if not len(hits):
                continue
            first = _first_in(hits, starts, n)
            per_group = np.add.reduceat(mask.astype(np.int64), starts)
            has = first < n
            nonfinite[first[has]] = per_group[has]
            picks.append(first)
    kept = np.zeros(n + 1, dtype=bool)  # slot n takes the "none" picks (-1 lands there too)
    for pick in picks:
        kept[pick] = True
    idx = np.flatnonzero(kept[:n])
    span = np.zeros(n, dtype=np.int64)
    span[ends - 1] = counts
    return idx, nonfinite[idx], span[idx]


def full_view(table: pa.Table) -> pa.Table:
    """A series (:data:`SCALAR_SCHEMA`) as a view of group 1: every row stands for itself."""
    value = to_numpy(table.column("value"))
    nonfinite = (~np.isfinite(value)).astype(np.int64)
    span = np.ones(len(value), dtype=np.int64)
    return _with_counts(table, nonfinite, span)


def reduce_series(table: pa.Table, group: int) -> pa.Table:
    """Level ``group`` of one series (:data:`SCALAR_SCHEMA`, step order) as a view table."""
    if group == 1:
        return full_view(table)
    value = to_numpy(table.column("value"))
    idx, nonfinite, span = reduce_indices(value, group)
    return _with_counts(table.take(int_array(idx, pa.int64())), nonfinite, span)


def _with_counts(table: pa.Table, nonfinite: np.ndarray, span: np.ndarray) -> pa.Table:
    cols = [table.column(name) for name in SCALAR_SCHEMA.names]
    return pa.Table.from_arrays(
        [*cols, int_array(nonfinite, pa.int64()), int_array(span, pa.int64())], schema=VIEW_SCHEMA
    )


def level_rows(part: pa.Table) -> pa.Table:
    """Every stored level of a compacted part (columns ``metric`` + the scalar columns,
    sorted by metric then step) in :data:`LEVEL_FILE_SCHEMA`, sorted by (group, metric, step)."""
    metric = to_numpy(part.column("metric"))
    n = len(metric)
    if not n:
        return empty_table(LEVEL_FILE_SCHEMA)
    bounds = np.flatnonzero(np.diff(metric)) + 1
    m_starts = np.concatenate(([0], bounds)).astype(np.int64)
    lengths = np.diff(np.append(m_starts, n))
    value = to_numpy(part.column("value"))
    scalars = part.select(SCALAR_SCHEMA.names)
    pieces = []
    for group in LEVEL_GROUPS:
        big = lengths >= MIN_GROUPS * group
        if not big.any():
            continue
        # Groups restart at every metric: all metrics reduced in one pass.
        per = -(-lengths // group)
        first_group = np.cumsum(per) - per
        k = np.arange(int(per.sum()), dtype=np.int64)
        owner = np.repeat(np.arange(len(per)), per)
        starts = m_starts[owner] + group * (k - first_group[owner])
        idx, nonfinite, span = reduce_groups(value, starts)
        keep = big[np.searchsorted(m_starts, idx, side="right") - 1]
        idx, nonfinite, span = idx[keep], nonfinite[keep], span[keep]
        # numpy, not Table.take: that imports pyarrow.compute (~8 MB) into the writer; every
        # scalar column is fixed-width (int_array takes any such type)
        rows = [
            int_array(to_numpy(scalars.column(i))[idx], f.type) for i, f in enumerate(SCALAR_SCHEMA)
        ]
        head = [
            int_array(np.full(len(idx), group, dtype=np.int32), pa.int32()),
            int_array(metric[idx], pa.int32()),
        ]
        counts = [int_array(nonfinite, pa.int64()), int_array(span, pa.int64())]
        pieces.append(pa.Table.from_arrays([*head, *rows, *counts], schema=LEVEL_FILE_SCHEMA))
    if not pieces:
        return empty_table(LEVEL_FILE_SCHEMA)
    return pa.concat_tables(pieces).combine_chunks()


def level_metadata(part_file: str, part_rows: int) -> dict[bytes, bytes]:
    """What a levels file says it was built from (checked before it is used)."""
    doc = {
        "version": LEVELS_VERSION,
        "part": part_file,
        "rows": part_rows,
        "groups": list(LEVEL_GROUPS),
        "min_groups": MIN_GROUPS,
    }
    return {LEVELS_KEY: json.dumps(doc).encode()}


def check_metadata(meta: dict[bytes, bytes] | None, part_file: str, part_rows: int) -> str | None:
    """Why a levels file cannot stand for ``part_file`` (None: it can)."""
    raw = (meta or {}).get(LEVELS_KEY)
    if raw is None or len(raw) > 4096:
        return "no levels record"
    try:
        doc: Any = json.loads(raw)
    except (ValueError, UnicodeError):
        return "levels record is not JSON"
    if not isinstance(doc, dict):
        return "levels record is not an object"
    want = {
        "version": LEVELS_VERSION,
        "part": part_file,
        "rows": part_rows,
        "min_groups": MIN_GROUPS,
    }
    for key, value in want.items():
        if doc.get(key) != value:
            return f"levels record has {key}={doc.get(key)!r}, expected {value!r}"
    known = [list(LEVEL_GROUPS), *(list(g) for g in OLD_LEVEL_GROUPS)]
    if doc.get("groups") not in known:
        return f"levels record has groups={doc.get('groups')!r}, expected one of {known!r}"
    return None


def stored_groups(meta: dict[bytes, bytes] | None) -> tuple[int, ...]:
    """The group sizes a levels file holds (its metadata passed :func:`check_metadata`)."""
    return tuple(json.loads((meta or {})[LEVELS_KEY])["groups"])


# -- level files (one per compacted part) -------------------------------------------------------
LEVELS_DIR = "levels"  # a folder beside the parts; a levels file has its part's name
LEVEL_ROW_GROUP = 1 << 14  # at most this many rows a row group
MIN_ROW_GROUP = 1 << 12  # a row group ends at the first (group, metric) change past this many
MAX_LEVEL_FILE = 1 << 31


def row_group_cuts(rows: pa.Table) -> list[tuple[int, int]]:
    """Row ranges of a levels file's row groups: each ends where the (group, metric) pair
    changes once it holds :data:`MIN_ROW_GROUP` rows (or at :data:`LEVEL_ROW_GROUP`), so a
    read of one metric's level decodes about its own rows, not its neighbours' (a level of
    group 16 keeps ~5,000 rows of a 20,000-point series)."""
    n = rows.num_rows
    if n == 0:
        return []
    group = to_numpy(rows.column("group")).astype(np.int64)
    metric = to_numpy(rows.column("metric")).astype(np.int64)
    changes = np.flatnonzero((np.diff(group) != 0) | (np.diff(metric) != 0)) + 1
    cuts = []
    lo = 0
    while lo < n:
        at = int(np.searchsorted(changes, lo + MIN_ROW_GROUP, side="left"))
        hi = int(changes[at]) if at < len(changes) else n
        hi = min(hi, lo + LEVEL_ROW_GROUP, n)
        cuts.append((lo, hi))
        lo = hi
    return cuts


def write_levels(part: pa.Table, folder: Path, part_file: str) -> Path | None:
    """Write the levels of ``part`` (a compacted part: ``metric`` + scalar columns, sorted by
    metric and step) as ``folder/part_file``. Levels are a cache: a failure is logged and
    leaves no file (reads then use the part itself)."""
    rows = level_rows(part)
    target = folder / part_file
    tmp = folder / f".{part_file}.tmp"
    try:
        folder.mkdir(exist_ok=True)
        table = rows.replace_schema_metadata(level_metadata(part_file, part.num_rows))
        with pq.ParquetWriter(
            tmp,
            LEVEL_FILE_SCHEMA.with_metadata(table.schema.metadata),
            compression="zstd",
            write_page_checksum=True,
            use_dictionary=False,
            write_statistics=["group", "metric", "step"],  # what reads choose row groups by
        ) as writer:
            for lo, hi in row_group_cuts(table):
                writer.write_table(table.slice(lo, hi - lo), row_group_size=LEVEL_ROW_GROUP)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        logger.warning("no downsampled levels for %s: %s", part_file, exc)
        tmp.unlink(missing_ok=True)
        return None
    return target


def _stat_range(rg: Any, column: int) -> tuple[Any, Any] | None:
    stats = rg.column(column).statistics
    if stats is None or not stats.has_min_max:
        return None
    return stats.min, stats.max


class LevelFile:
    """A levels file opened for reads: its record and schema checked once, its row groups'
    (group, metric) ranges parsed once, so a reader that keeps it open pays for the footer
    once per part, not once per chart (:meth:`read` checks each read's rows)."""

    def __init__(self, path: Path, part_file: str, part_rows: int) -> None:
        """Raises ``ValueError`` (or an ``OSError``/Arrow error) when the file cannot stand
        for ``part_file``."""
        if path.stat().st_size > MAX_LEVEL_FILE:
            raise ValueError("levels file too large")
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        meta = pf.schema_arrow.metadata
        why = check_metadata(meta, part_file, part_rows)
        if why is not None:
            raise ValueError(why)
        if not pf.schema_arrow.remove_metadata().equals(LEVEL_FILE_SCHEMA):
            raise ValueError("levels file schema")
        self.pf = pf
        self.part_rows = part_rows
        self.groups = stored_groups(meta)
        self._boxes: dict[int, tuple[int, int, int, int] | None] = {}

    def _box(self, i: int) -> tuple[int, int, int, int] | None:
        """(group lo, group hi, metric lo, metric hi) of row group ``i`` (None: no stats)."""
        if i not in self._boxes:
            rg = self.pf.metadata.row_group(i)
            g, m = _stat_range(rg, 0), _stat_range(rg, 1)
            ok = g is not None and m is not None and all(isinstance(v, int) for v in (*g, *m))
            self._boxes[i] = (g[0], g[1], m[0], m[1]) if ok else None  # type: ignore[index]
        return self._boxes[i]

    def _candidates(self, group: int, metric: int) -> list[int]:
        """Row groups that can hold rows of (group, metric). The file is sorted by (group,
        metric): a binary search over the row groups' statistics finds the first that does
        not end before them (a few statistics read, not all); a file without statistics is
        scanned whole."""
        n = self.pf.metadata.num_row_groups
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) // 2
            box = self._box(mid)
            if box is None:
                return list(range(n))
            before = box[1] < group or (box[0] == box[1] == group and box[3] < metric)
            if before:
                lo = mid + 1
            else:
                hi = mid
        out = []
        for i in range(lo, n):
            box = self._box(i)
            if box is None:
                return list(range(n))
            if box[0] > group or (box[0] == group and box[2] > metric):
                break  # starts after (group, metric), and so does every later row group
            if box[0] <= group <= box[1] and box[2] <= metric <= box[3]:
                out.append(i)
        return out

    def read(self, group: int, metric: int, steps: tuple[int, int] | None) -> pa.Table | None:
        """See :func:`read_level`."""
        if group not in self.groups:
            return None  # an older file without this level: the caller reduces the part
        chosen = []
        for i in self._candidates(group, metric):
            if steps is not None:
                s = _stat_range(self.pf.metadata.row_group(i), 2)
                if s is not None and (s[1] < steps[0] or s[0] > steps[1]):
                    continue
            chosen.append(i)
        if not chosen:
            return empty_table(VIEW_SCHEMA)
        try:
            table = self.pf.read_row_groups(chosen)
        except (OSError, pa.ArrowException, ValueError):
            return None
        return _checked_view(table, group, metric, steps, self.part_rows)


def read_level(
    path: Path,
    part_file: str,
    part_rows: int,
    group: int,
    metric: int,
    steps: tuple[int, int] | None = None,
) -> pa.Table | None:
    """Level ``group`` of one metric from the levels file of a part, in :data:`VIEW_SCHEMA`
    (rows with ``steps[0] <= step <= steps[1]`` when given); an empty table when the part
    keeps no such level (the metric is small there: read it from the part). ``None`` when
    the file is missing, cannot be trusted (wrong part, schema, page checksums, counts) or
    was written without this level: the caller reads the part itself."""
    try:
        level = LevelFile(path, part_file, part_rows)
    except (OSError, pa.ArrowException, ValueError):
        return None
    return level.read(group, metric, steps)


def _checked_view(
    table: pa.Table, group: int, metric: int, steps: tuple[int, int] | None, part_rows: int
) -> pa.Table | None:
    keep = (to_numpy(table.column("group")) == group) & (to_numpy(table.column("metric")) == metric)
    if steps is not None:
        step = to_numpy(table.column("step"))
        keep &= (step >= steps[0]) & (step <= steps[1])
    if keep.all():
        view = table.drop_columns(["group", "metric"]).combine_chunks()
    else:
        view = table.filter(bool_array(keep)).drop_columns(["group", "metric"]).combine_chunks()
    step = to_numpy(view.column("step"))
    nonfinite = to_numpy(view.column("nonfinite"))
    span = to_numpy(view.column("span"))
    sane = (
        not np.any(step[1:] < step[:-1])
        and not np.any((nonfinite < 0) | (nonfinite > group))
        and not np.any((span < 0) | (span > group))
        and int(span.sum()) <= part_rows
    )
    return view.cast(VIEW_SCHEMA) if sane else None
