"""Server-side sort, filter and paging of one logged table (100k rows and more), on disk.

A step's table is read through a :class:`TableSource`: the columnar table file the writer
stored (:mod:`kohakuboard.storage.table_store`, read by row group), or, for small tables and
boards written before table files, an Arrow table built once from the stored rows (a big one
is written to a Parquet file in the viewer's scratch folder, then read like a table file). A
request costs what it shows: a page reads the row groups that hold its rows, a sort reads one
column, a filter scans the table a few row groups at a time; nothing holds the whole table in
memory. Sort orders and filter results (row indices, 8 bytes a row) are kept per table for
the last few requests, so paging through a sorted, filtered table costs one slice and the
row groups of that page.

Sort order (stable, original order among equal keys): numbers (bools as 0/1; ``desc``
reverses them), then NaN, then strings (``desc`` reverses them too), then null, media and
anything else. So missing values stay at the end in both directions. A column that holds one
kind sorts in Arrow; a mixed column (stored as JSON cells) in Python, one column at a time.

The filter keeps the rows where some cell's text contains the needle, case-insensitively:
strings, numbers as Python prints them (``2.0``, ``-0.0``, ``1e-05``, ``nan``, ``inf``),
``true``/``false``, and a media cell's caption and kind.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import shutil
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..reader import TableFileError, table_files
from .charts import jnum
from .errors import ViewerError

if TYPE_CHECKING:
    from ..storage.base import TableRow

logger = logging.getLogger(__name__)
ORDERS_KEPT = 8
BLOCK_ROW_GROUPS = 2  # row groups decoded at once (a page, a filter scan)
SCATTERED_GROUPS = 4  # a page whose rows lie in more row groups reads the random-access copy
COPY_BATCH_ROWS = 8192
_NUMBER, _NAN, _STRING, _OTHER = 0, 1, 2, 3
_SEPARATOR = "\x1f"  # between cells in a row's text, so a filter never spans two cells
_VERIFY = "; the board's other tables still open (`kobo verify` lists damaged files)"
_INT_TEXT = frozenset("0123456789-")
_FLOAT_TEXT = frozenset("0123456789.-+einfa")


class TableDamagedError(ViewerError):
    """A table file of the board cannot be read (damaged, cut short, or not a table file);
    the board's other tables and steps still open."""

    status_code = 409


@dataclass(frozen=True)
class OrderKey:
    sort: int | None  # column index
    desc: bool
    filter: str  # lower-cased; "" = none


def int64_array(values: np.ndarray) -> pa.Array:
    """Row indices as an Arrow array, built from the buffer: ``pa.array`` imports pandas
    (0.7 s) the first time, which a viewer's first table page should not wait for."""
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])


def release_memory() -> None:
    """Give the memory Arrow's allocator keeps after a big read back to the system (it keeps
    freed blocks for reuse: a scan of 100 row groups would otherwise stay in the RSS)."""
    try:
        pa.default_memory_pool().release_unused()
    except (AttributeError, NotImplementedError):  # older pyarrow: nothing to do
        pass


_warmed = threading.Event()


def warm_up() -> None:
    """Import in the background what Arrow's compute functions import on first use (pandas,
    when installed), so the first sort or filter does not wait for it."""
    if _warmed.is_set():
        return
    _warmed.set()

    def work() -> None:
        try:
            pc.array_sort_indices(int64_array(np.arange(2)))
        except Exception:  # only a warm-up: the real call reports any problem
            logger.debug("table warm-up failed", exc_info=True)

    threading.Thread(target=work, name="kobo-table-warmup", daemon=True).start()


# -- where a table's cells come from ---------------------------------------------------------
class TableSource:
    """The cells of one stored table, read by column, by rows or by blocks of rows.

    ``cells_read`` counts the cells decoded so far and ``peak_cells`` the most held at once
    (tests check that a page never reads the whole table).
    """

    columns: list[str]
    num_rows: int
    nbytes: int = 0  # memory it holds (an in-memory table), for the cache budget

    def __init__(self) -> None:
        self.cells_read = 0
        self.peak_cells = 0
        self._kinds: list[str] = []

    @property
    def kinds(self) -> list[str]:
        """The stored kind of each column (see :mod:`kohakuboard.storage.table_store`)."""
        return self._kinds

    def _count(self, table: pa.Table) -> pa.Table:
        self.cells_read += table.num_rows * table.num_columns
        self.peak_cells = max(self.peak_cells, table.num_rows * table.num_columns)
        return table

    def check(self) -> None:
        """Raise :class:`TableDamagedError` if the table cannot be read (opens a file)."""

    def column(self, j: int) -> pa.ChunkedArray:
        raise NotImplementedError

    def blocks(self, columns: list[int]) -> Iterator[tuple[int, pa.Table]]:
        """(first row, those columns of the rows) of consecutive blocks covering the table."""
        raise NotImplementedError

    def _rows_at(self, sorted_rows: np.ndarray) -> Iterator[pa.Table]:
        raise NotImplementedError

    def take(self, rows: np.ndarray) -> list[list[Any]]:
        """Python rows at these indices, in that order."""
        if not len(rows):
            return []
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        got: list[list[Any]] = []
        for part in self._rows_at(rows[order]):
            got.extend(table_files.rows_of(part, self.kinds))
        out: list[list[Any]] = [[] for _ in range(len(rows))]
        for k, i in enumerate(order):
            out[i] = got[k]
        return out


class ArrowSource(TableSource):
    """A table held in memory (small tables, and the rows of records with inline rows)."""

    def __init__(self, table: pa.Table, kinds: list[str]) -> None:
        super().__init__()
        self.table = table
        self.columns = table.column_names
        self._kinds = kinds
        self.num_rows = table.num_rows
        self.nbytes = table.nbytes

    def column(self, j: int) -> pa.ChunkedArray:
        self.cells_read += self.num_rows
        return self.table.column(j)

    def blocks(self, columns: list[int]) -> Iterator[tuple[int, pa.Table]]:
        step = table_files.ROW_GROUP_ROWS * BLOCK_ROW_GROUPS
        for start in range(0, self.num_rows, step):
            yield start, self._count(self.table.slice(start, step).select(columns))

    def _rows_at(self, sorted_rows: np.ndarray) -> Iterator[pa.Table]:
        yield self._count(self.table.take(int64_array(sorted_rows)))


class FileSource(TableSource):
    """A table file (Parquet, table format 1), read one row group block at a time; opened
    and checked on first use."""

    def __init__(
        self,
        base: Path,
        ref: table_files.TableRef,
        columns: list[str],
        what: str = "table",
        scratch: Callable[[], Path] | None = None,
    ) -> None:
        super().__init__()
        self.base, self.ref, self.columns, self.what = base, ref, columns, what
        self._copy = RandomAccessCopy(self, scratch)
        self.num_rows = ref.num_rows
        self.nbytes = 64 * max(len(columns), 1) * (1 + ref.num_rows // table_files.ROW_GROUP_ROWS)
        self._lock = threading.Lock()
        self._opened: tuple[Any, list[str], np.ndarray] | None = None

    def _open(self) -> tuple[Any, list[str], np.ndarray]:
        """(footer, kinds, first row of each row group and the row count)."""
        with self._lock:
            if self._opened is None:
                base, ref, columns = self.base, self.ref, self.columns
                pf, kinds = self._checked(lambda: table_files.open_table_file(base, ref, columns))
                meta = pf.metadata
                pf.close()
                sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
                starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
                self._opened = (meta, kinds, starts)
            return self._opened

    def check(self) -> None:
        self._open()

    @property
    def kinds(self) -> list[str]:
        return self._open()[1]

    @property
    def _starts(self) -> np.ndarray:
        return self._open()[2]

    def _checked(self, read: Any) -> Any:
        try:
            return read()
        except TableFileError as exc:
            raise TableDamagedError(f"{self.what}: {exc}{_VERIFY}") from None
        except FileNotFoundError:
            raise TableDamagedError(
                f"{self.what}: table file {self.ref.file} is missing{_VERIFY}"
            ) from None
        except (OSError, pa.ArrowException, ValueError) as exc:
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise TableDamagedError(
                f"{self.what}: table file {self.ref.file} cannot be read: {text}{_VERIFY}"
            ) from None

    def _read(self, groups: list[int], columns: list[str] | None = None) -> pa.Table:
        def read() -> pa.Table:
            meta = self._open()[0]
            with self._lock:
                pf = pq.ParquetFile(
                    self.base / self.ref.file, metadata=meta, page_checksum_verification=True
                )
                try:
                    table = pf.read_row_groups(groups, columns=columns)
                finally:
                    pf.close()
            expected = int(sum(self._starts[g + 1] - self._starts[g] for g in groups))
            if table.num_rows != expected:
                raise TableFileError(
                    f"table file {self.ref.file}: {table.num_rows} rows read, {expected} expected"
                )
            return table

        return self._count(self._checked(read))

    def column(self, j: int) -> pa.ChunkedArray:
        groups = list(range(len(self._starts) - 1))
        return self._read(groups, [self.columns[j]]).column(0)

    def blocks(self, columns: list[int]) -> Iterator[tuple[int, pa.Table]]:
        names = [self.columns[j] for j in columns]
        groups = list(range(len(self._starts) - 1))
        for k in range(0, len(groups), BLOCK_ROW_GROUPS):
            chunk = groups[k : k + BLOCK_ROW_GROUPS]
            yield int(self._starts[chunk[0]]), self._read(chunk, names)

    def _rows_at(self, sorted_rows: np.ndarray) -> Iterator[pa.Table]:
        group_of = np.searchsorted(self._starts, sorted_rows, side="right") - 1
        groups = np.unique(group_of).tolist()
        yield from self._parquet_rows(sorted_rows, group_of, groups)
        if len(groups) > SCATTERED_GROUPS:
            release_memory()

    def take(self, rows: np.ndarray) -> list[list[Any]]:
        rows = np.asarray(rows, dtype=np.int64)
        groups = np.unique(np.searchsorted(self._starts, rows, side="right") - 1)
        covered = int(np.sum(self._starts[groups + 1] - self._starts[groups]))
        if len(groups) > SCATTERED_GROUPS and 4 * len(rows) < covered:
            # rows spread over many row groups (a sorted or filtered page): decoding each
            # group costs ~all of it, so pages come from an uncompressed copy once it exists
            copy = self._copy.ready(start=True)
            if copy is not None:
                return self._checked(lambda: copy.take(rows))  # type: ignore[no-any-return]
        return super().take(rows)

    def _parquet_rows(
        self, sorted_rows: np.ndarray, group_of: np.ndarray, groups: list[int]
    ) -> Iterator[pa.Table]:
        for k in range(0, len(groups), BLOCK_ROW_GROUPS):
            chunk = groups[k : k + BLOCK_ROW_GROUPS]
            block = self._read(chunk)
            # row index -> position in the block of consecutive row groups read
            offsets = np.concatenate(
                [[0], np.cumsum([self._starts[g + 1] - self._starts[g] for g in chunk])]
            )
            mine = np.isin(group_of, chunk)
            where = group_of[mine]
            local = sorted_rows[mine] - self._starts[where]
            local += offsets[np.searchsorted(chunk, where)]
            yield block.take(int64_array(local))


class RandomAccessCopy:
    """An uncompressed copy of a table file in the viewer's scratch folder, made once when a
    page first needs rows scattered over many row groups (a sorted or filtered page). Numbers and bools are raw arrays (plus a validity array),
    read through ``numpy.memmap`` so a page touches only its rows' pages; text and JSON
    columns are one Arrow IPC file each. Deleted with its source, or with the viewer.
    """

    _FIXED: dict[str, np.dtype[Any]] = {
        "int": np.dtype("<i8"),
        "float": np.dtype("<f8"),
        "bool": np.dtype("u1"),
    }

    def __init__(self, source: FileSource, scratch: Callable[[], Path] | None) -> None:
        self.source = source
        self.scratch = scratch
        self._lock = threading.Lock()
        self._state = "none" if scratch is not None else "off"  # building, ready, failed
        self._folder: Path | None = None
        self._text: pa.Table | None = None

    def ready(self, *, start: bool = False) -> RandomAccessCopy | None:
        """This copy if it is made; ``start``: make it now if nobody has tried yet (one pass
        over the table: about what decoding the row groups of one scattered page costs)."""
        with self._lock:
            if self._state == "ready":
                return self
            if not start or self._state != "none":
                return None
            self._state = "building"
        self._build()
        return self.ready()

    def _build(self) -> None:
        if self.scratch is None:  # state "off": ready() never builds; a caller bypassing it
            raise RuntimeError("a random-access table copy needs the viewer's scratch folder")
        src = self.source
        tmp: Path | None = None
        try:
            kinds = src.kinds
            name = f"{Path(src.ref.file).stem[:16]}-{secrets.token_hex(4)}"
            folder = self.scratch() / name
            tmp = folder.with_name(f".{name}.tmp")
            tmp.mkdir()
            self._write(tmp, kinds)
            os.replace(tmp, folder)
            tmp = None
            weakref.finalize(src, shutil.rmtree, folder, True)
            with self._lock:
                self._folder, self._state = folder, "ready"
        except Exception as exc:  # the table still pages from its file, only slower
            logger.warning("%s: no random-access copy (%s)", src.what, exc)
            with self._lock:
                self._state = "failed"
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            release_memory()

    def _write(self, folder: Path, kinds: list[str]) -> None:
        src = self.source
        fixed = {kind: [j for j, k in enumerate(kinds) if k == kind] for kind in self._FIXED}
        files: dict[str, Any] = {}
        writers: dict[int, Any] = {}
        rows = 0
        try:
            groups = list(range(len(src._starts) - 1))
            for k in range(0, len(groups), BLOCK_ROW_GROUPS):
                block = src._read(groups[k : k + BLOCK_ROW_GROUPS])
                n = block.num_rows
                rows += n
                for kind, cols in fixed.items():
                    if not cols:
                        continue
                    # row-major: one row's numbers are adjacent, so a page touches few pages
                    data = np.empty((n, len(cols)), dtype=self._FIXED[kind])
                    valid = np.empty((n, len(cols)), dtype=np.uint8)
                    for i, j in enumerate(cols):
                        values = block.column(j)
                        filled = pc.fill_null(values, False if kind == "bool" else 0)
                        data[:, i] = filled.to_numpy(zero_copy_only=False)
                        valid[:, i] = values.is_valid().to_numpy(zero_copy_only=False)
                    for suffix, array in (("bin", data), ("valid", valid)):
                        key = f"{kind}.{suffix}"
                        if key not in files:
                            files[key] = open(folder / key, "wb")  # noqa: SIM115 - closed below
                        files[key].write(array.tobytes())
                text = [j for j, kind in enumerate(kinds) if kind not in self._FIXED]
                if text:  # text and JSON columns: one Arrow file, mapped once when read
                    part = block.select(text).rename_columns([str(j) for j in text])
                    if not writers:
                        sink = files["text.arrow"] = pa.OSFile(str(folder / "text.arrow"), "wb")
                        writers[0] = pa.ipc.new_file(sink, part.schema)
                    writers[0].write_table(part)
                del block
        finally:
            for writer in writers.values():
                writer.close()
            for file in files.values():
                file.close()
        if rows != src.num_rows:
            raise TableFileError(f"{rows} rows copied, {src.num_rows} expected")

    def take(self, rows: np.ndarray) -> list[list[Any]]:
        """Python rows at these indices, in that order (of a copy :meth:`ready` returned)."""
        folder = self._folder
        if folder is None:  # only ready() hands this copy out, once it is made
            raise RuntimeError("take() on a random-access table copy that is not made yet")
        kinds = self.source.kinds
        n = self.source.num_rows
        columns: list[list[Any]] = [[] for _ in kinds]
        for kind, dtype in self._FIXED.items():
            cols = [j for j, k in enumerate(kinds) if k == kind]
            if not cols:
                continue
            shape = (n, len(cols))
            data = np.memmap(folder / f"{kind}.bin", dtype=dtype, mode="r", shape=shape)
            valid = np.memmap(folder / f"{kind}.valid", dtype="u1", mode="r", shape=shape)
            picked, ok = np.array(data[rows]), np.array(valid[rows], dtype=bool)
            del data, valid
            if kind == "bool":
                picked = picked.astype(bool)
            for i, j in enumerate(cols):
                cells = picked[:, i].tolist()
                if not ok[:, i].all():
                    cells = [
                        c if v else None for c, v in zip(cells, ok[:, i].tolist(), strict=True)
                    ]
                columns[j] = cells
        text = [j for j, kind in enumerate(kinds) if kind not in self._FIXED]
        if text:
            with self._lock:
                if self._text is None:  # zero-copy over the mapped file
                    mapped = pa.memory_map(str(folder / "text.arrow"))
                    self._text = pa.ipc.open_file(mapped).read_all()
                table = self._text
            picked_text = table.take(int64_array(rows))
            for k, j in enumerate(text):
                columns[j] = table_files.cells_of(picked_text.column(k), kinds[j])
        self.source.cells_read += len(rows) * len(columns)
        if not columns:
            return [[] for _ in range(len(rows))]
        return [list(r) for r in zip(*columns, strict=True)]


class BrokenSource(TableSource):
    """A table record that names no readable table: every read says why."""

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why, self.columns, self.num_rows = why, [], 0

    def column(self, j: int) -> pa.ChunkedArray:
        raise TableDamagedError(self.why)

    def blocks(self, columns: list[int]) -> Iterator[tuple[int, pa.Table]]:
        raise TableDamagedError(self.why)

    def _rows_at(self, sorted_rows: np.ndarray) -> Iterator[pa.Table]:
        raise TableDamagedError(self.why)

    def check(self) -> None:
        raise TableDamagedError(self.why)


# -- one step's table ---------------------------------------------------------------------
class RowOrder:
    """Sort and filter state of a list of Python rows (the merged table of several runs,
    :mod:`kohakuboard.viewer.tablecompare`); one step's table is a :class:`PreparedTable`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._texts: list[str] | None = None
        self._orders: OrderedDict[OrderKey, np.ndarray] = OrderedDict()

    def order(self, key: OrderKey) -> np.ndarray:
        """Original indices of the rows that pass the filter, in sorted order."""
        with self._lock:
            hit = self._orders.get(key)
            if hit is not None:
                self._orders.move_to_end(key)
                return hit
            index = self._filtered(key.filter)
            if key.sort is not None and len(index):
                group, value = self._sort_key(key.sort)
                value = value[index]
                order = np.lexsort((-value if key.desc else value, group[index]))
                index = index[order]
            self._orders[key] = index
            if len(self._orders) > ORDERS_KEPT:
                self._orders.popitem(last=False)
            return index

    @property
    def rows(self) -> list[list[Any]]:
        raise NotImplementedError

    @property
    def columns(self) -> list[str]:
        raise NotImplementedError

    def _filtered(self, needle: str) -> np.ndarray:
        if not needle:
            return np.arange(len(self.rows))
        if self._texts is None:
            self._texts = self._row_texts()
        return np.array([i for i, text in enumerate(self._texts) if needle in text], dtype=np.int64)

    def _row_texts(self) -> list[str]:
        """Per row, the lower-cased text the filter searches."""
        return [row_text(row) for row in self.rows]

    def _sort_key(self, col: int) -> tuple[np.ndarray, np.ndarray]:
        hit = self._keys.get(col)
        if hit is None:
            hit = self._keys[col] = self._column_key(col)
        return hit

    def _column_key(self, col: int) -> tuple[np.ndarray, np.ndarray]:
        return sort_key([row[col] for row in self.rows])


class PreparedTable:
    """One step's table (``info``: its record, without rows) over a :class:`TableSource`,
    with the sort orders and filter results of its last few requests."""

    def __init__(self, info: TableRow, source: TableSource) -> None:
        self.info = info
        self.source = source
        self._lock = threading.Lock()
        self._orders: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()

    @property
    def columns(self) -> list[str]:
        return list(self.info.columns)

    @property
    def num_rows(self) -> int:
        return self.source.num_rows

    @property
    def nbytes(self) -> int:
        """Memory it may hold: its source and at most ORDERS_KEPT cached row orders."""
        return 512 + self.source.nbytes + 8 * self.num_rows * ORDERS_KEPT

    def rows_at(self, rows: np.ndarray) -> list[list[Any]]:
        return self.source.take(rows)

    def all_rows(self) -> list[list[Any]]:
        """Every row as Python cells (for merging several runs' tables)."""
        return self.rows_at(np.arange(self.num_rows))

    def order(self, key: OrderKey) -> np.ndarray:
        """Original indices of the rows that pass the filter, in sorted order."""
        with self._lock:
            hit = self._kept(("order", key))
            if hit is not None:
                return hit
            if key.sort is None:
                index = self._filter(key.filter)
            else:
                index = self._sorted(key.sort, key.desc)
                if key.filter:
                    index = index[np.isin(index, self._filter(key.filter), assume_unique=True)]
            return self._keep(("order", key), index)

    def _kept(self, key: tuple[Any, ...]) -> np.ndarray | None:
        hit = self._orders.get(key)
        if hit is not None:
            self._orders.move_to_end(key)
        return hit

    def _keep(self, key: tuple[Any, ...], value: np.ndarray) -> np.ndarray:
        self._orders[key] = value
        while len(self._orders) > ORDERS_KEPT:
            self._orders.popitem(last=False)
        return value

    def _sorted(self, col: int, desc: bool) -> np.ndarray:
        hit = self._kept(("sort", col, desc))
        if hit is not None:
            return hit
        values = self.source.column(col)
        if self.source.kinds[col] == "json":
            group, value = sort_key(table_files.cells_of(values, "json"))
            index = np.lexsort((-value if desc else value, group))
        else:
            # Arrow's sort is stable and puts NaN after the numbers and nulls last, both ways
            order = "descending" if desc else "ascending"
            got = pc.array_sort_indices(values, order=order, null_placement="at_end")
            index = got.to_numpy().astype(np.int64, copy=False)
        return self._keep(("sort", col, desc), index)

    def _filter(self, needle: str) -> np.ndarray:
        if not needle:
            return np.arange(self.num_rows, dtype=np.int64)
        hit = self._kept(("filter", needle))
        if hit is not None:
            return hit
        mask = np.zeros(self.num_rows, dtype=bool)
        kinds = self.source.kinds
        columns = [j for j, kind in enumerate(kinds) if could_match(kind, needle)]
        if columns:
            for start, block in self.source.blocks(columns):
                found = np.zeros(block.num_rows, dtype=bool)
                for k, j in enumerate(columns):
                    column_matches(block.column(k), kinds[j], needle, found)
                mask[start : start + block.num_rows] |= found
            release_memory()
        return self._keep(("filter", needle), np.flatnonzero(mask))


def could_match(kind: str, needle: str) -> bool:
    """Whether a cell of this kind can show ``needle`` (numbers show digits, signs, ...)."""
    if kind == "bool":
        return needle in "true" or needle in "false"
    if kind == "int":
        return set(needle) <= _INT_TEXT
    if kind == "float":
        return set(needle) <= _FLOAT_TEXT
    return True


def column_matches(values: pa.ChunkedArray, kind: str, needle: str, found: np.ndarray) -> None:
    """Set ``found`` where a cell of this column contains ``needle`` (lower-case)."""
    if kind == "bool":
        for word, flag in (("true", True), ("false", False)):
            if needle in word:
                found |= pc.fill_null(pc.equal(values, flag), False).to_numpy(zero_copy_only=False)
        return
    if kind == "json":
        cells = table_files.cells_of(values, "json")
        found |= np.fromiter((needle in cell_text(c).lower() for c in cells), bool, len(cells))
        return
    if not could_match(kind, needle):
        return
    if kind == "float":  # as Python prints it (2.0, -0.0, 1e-05): Arrow's text differs
        cells = values.to_pylist()
        found |= np.fromiter((c is not None and needle in str(c) for c in cells), bool, len(cells))
        return
    text = values if kind == "str" else pc.cast(values, pa.string())
    hits = pc.match_substring(pc.utf8_lower(text), needle)
    found |= pc.fill_null(hits, False).to_numpy(zero_copy_only=False)


def sort_key(cells: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(group, value)`` per cell: the group orders kinds of value, the value orders within
    a group (the number itself, or a string's rank among the column's strings)."""
    group = np.full(len(cells), _OTHER, dtype=np.int8)
    value = np.zeros(len(cells))
    strings: dict[int, str] = {}
    for i, cell in enumerate(cells):
        if isinstance(cell, (int, float)):  # bool is an int
            number = float(cell)
            if math.isnan(number):
                group[i] = _NAN
            else:
                group[i], value[i] = _NUMBER, number
        elif isinstance(cell, str):
            strings[i] = cell
    if strings:
        rank = {text: r for r, text in enumerate(sorted(set(strings.values())))}
        where = np.fromiter(strings, dtype=np.int64, count=len(strings))
        group[where] = _STRING
        value[where] = [rank[text] for text in strings.values()]
    return group, value


def row_text(cells: Sequence[Any]) -> str:
    """What the filter searches in a row, lower-cased (cells apart, so no match spans two)."""
    return _SEPARATOR.join(map(cell_text, cells)).lower()


def cell_text(cell: Any) -> str:
    """What the filter searches in a cell: its shown text (a media cell: caption and kind)."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, (int, float, str)):
        return str(cell)
    if isinstance(cell, dict) and isinstance(cell.get("__media__"), dict):
        media = cell["__media__"]
        return f"{media.get('caption') or ''} {media.get('kind') or ''}"
    return json.dumps(cell, default=str)


def plain(value: Any) -> Any:
    """A stored cell (or anything nested in it) as strict JSON: non-finite floats as strings."""
    if isinstance(value, float):
        return jnum(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def is_media(cell: Any) -> bool:
    return isinstance(cell, dict) and isinstance(cell.get("__media__"), dict)


# -- every step of one table key ------------------------------------------------------------
def prepare(entry: TableRow, board_dir: Path, scratch: Callable[[], Path]) -> PreparedTable:
    """One stored table record as a :class:`PreparedTable` (a table file is opened and
    checked here; inline rows become an Arrow table, written to ``scratch`` when big)."""
    warm_up()
    info = replace(entry, rows=[])
    columns = list(entry.columns)
    where = f"table {entry.name!r} at step {entry.step}"
    if table_files.is_ref(entry.rows):
        try:
            ref = table_files.ref_of(entry.rows, where)
        except TableFileError as exc:
            return PreparedTable(info, BrokenSource(f"{exc}{_VERIFY}"))
        return PreparedTable(info, FileSource(board_dir, ref, columns, where, scratch))
    table = table_files.to_arrow(columns, entry.rows)
    kinds = table_files.check_schema(table.schema, columns)
    if table.num_rows * max(len(columns), 1) <= table_files.INLINE_MAX_CELLS or not columns:
        return PreparedTable(info, ArrowSource(table, kinds))
    # a big table stored inline (a board written before table files): page it from disk
    folder = scratch()
    ref = table_files.write_arrow_file(folder, table)
    return PreparedTable(info, FileSource(folder, ref, columns, where, scratch))


@dataclass(frozen=True)
class TableSeries:
    """Every logged step of one table key, ascending by step."""

    steps: np.ndarray
    tables: list[PreparedTable]

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tables)

    @classmethod
    def of(cls, tables: Sequence[PreparedTable]) -> TableSeries:
        tables = sorted(tables, key=lambda t: t.info.step)
        return cls(np.array([t.info.step for t in tables], dtype=np.int64), list(tables))

    def at(self, step: int) -> PreparedTable | None:
        """The table logged at exactly ``step``."""
        i = int(np.searchsorted(self.steps, step))
        return self.tables[i] if i < len(self.steps) and self.steps[i] == step else None
