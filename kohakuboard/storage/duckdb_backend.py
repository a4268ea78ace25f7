"""The ``duckdb`` backend: one ``board.duckdb`` database per board, readable while training.

DuckDB lets one process open a database file for writing, and a process that wants to read it
meanwhile fails with ``Could not set lock on file``. So the writer never keeps ``board.duckdb``
open, and never changes the file that readers open:

* Live data goes to a small Parquet store under ``live/`` with ``state.json`` as its commit
  point (exactly the ``parquet`` backend's format, see :mod:`.parts`). Readers in other
  processes see each commit at once, with no lock at all.
* Now and then (when the live rows reach the database's size, at least ``ABSORB_MIN_ROWS``;
  at finish; on ``compact``) the writer *absorbs* the live parts into a new database: it
  copies ``board.duckdb`` to a hidden temporary file (a plain file copy, no lock needed),
  appends the live rows there (sorted by metric and step), rewrites the small tables, closes
  it and renames it over ``board.duckdb`` (:mod:`.duckdb_build`). During training this runs
  on a background thread of the writer process, so commits (and what readers see) keep
  coming every ``commit_interval`` meanwhile. A reader that has the old file open keeps reading
  the old file; the next one opens the new one. The database records the highest live part
  id it holds (``kb_info.absorbed_upto``), so readers never count a row twice.
* After ``finish()`` every row is in ``board.duckdb``, and
  ``duckdb -readonly board.duckdb "select * from named_scalars"`` works directly.

Tables (``metric_id`` = ``metrics.id``): ``metrics``, ``scalars``, ``media``, ``tables``,
``histograms``, ``config``, ``meta``, ``cursors``, ``schemas``, ``kb_info``; views
``named_scalars``, ``named_media``, ``named_tables``, ``named_histograms`` show the metric
name instead of its id. Full description in ``docs/backends.md``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pyarrow as pa

from .base import SCALAR_SCHEMA, DamagedFile
from .checks import PASSED, file_crc32, first_line, merge
from .columnar import METRIC_KIND, SCALAR_COLUMNS, num
from .duckdb_build import (
    DB_FILE,
    Built,
    Snapshot,
    build_database,
    columns,
    connect,
    read_absorbed_upto,
)
from .duckdb_pool import pooled
from .parts import quarantine, record_damage, save_state
from .parts_reader import PartsReader
from .parts_writer import PartsWriter

logger = logging.getLogger(__name__)
T = TypeVar("T")

LIVE_FOLDER = "live"
# Live rows that start an update of board.duckdb during training (it also waits until the
# live rows reach the database's own size, so copying stays linear in the board's size).
ABSORB_MIN_ROWS = int(os.environ.get("KOHAKUBOARD_DUCKDB_ABSORB_ROWS", "4000000"))
FULL_REWRITE_RUNS = 8  # sorted runs appended to the tables before finish rewrites them as one


class DuckDBWriter(PartsWriter):
    backend = "duckdb"
    parts_folder = LIVE_FOLDER

    def __init__(self, board_dir: Path) -> None:
        super().__init__(board_dir)
        self.db_path = self.board_dir / DB_FILE
        for leftover in self.board_dir.glob(f".{DB_FILE}.*"):
            leftover.unlink(missing_ok=True)  # temporaries of a writer that died mid-absorb
        info = self.manifest.setdefault(
            "duckdb", {"absorbed_upto": 0, "rows": 0, "runs": 0, "seq": -1}
        )
        if self.db_path.exists():
            # A writer may have died between renaming a new database in and saving the manifest.
            with connect(self.db_path) as con:
                upto = read_absorbed_upto(con)
                rows = int(con.execute("SELECT count(*) FROM scalars").fetchall()[0][0])
            if upto > info["absorbed_upto"]:
                size, crc = self.db_path.stat().st_size, file_crc32(self.db_path)
                self._apply(Built(upto=upto, rows=rows, seq=-1, full=False, bytes=size, crc32=crc))

    # -- when to absorb ---------------------------------------------------------------------------
    def after_commit(self) -> None:
        self.collect(wait=False)
        if self._job is not None:
            return  # one background job at a time: live parts stay put while it runs
        st = self.manifest
        live = sum(p["rows"] for p in st["parts"])
        if (
            live >= max(ABSORB_MIN_ROWS, st["duckdb"]["rows"])
            and time.monotonic() >= self._retry_at
        ):
            snap = self._snapshot(full=False)
            self.start_job(lambda: build_database(self.board_dir, snap), self._apply)
            return
        self.compact_step()  # keep the live store to a few files meanwhile

    def finalize(self) -> None:
        self.collect(wait=True)
        info = self.manifest["duckdb"]
        stale = info["seq"] != self.manifest["seq"] or not self.db_path.exists()
        if self.manifest["parts"] or stale:
            self.absorb(full=info["runs"] + 1 > FULL_REWRITE_RUNS)

    def compact(self, *, full: bool = False) -> None:
        """``full``: rewrite ``board.duckdb`` with everything sorted; otherwise merge live parts."""
        if full:
            self.absorb(full=True)
        else:
            super().compact()

    # -- absorbing ----------------------------------------------------------------------------------
    def absorb(self, *, full: bool) -> None:
        """Build the next ``board.duckdb`` from the current one plus every live part, now."""
        self.collect(wait=True)
        self._apply(build_database(self.board_dir, self._snapshot(full=full)))

    def _snapshot(self, *, full: bool) -> Snapshot:
        st = self.manifest
        parts = list(st["parts"])
        return Snapshot(
            parts=parts,
            upto=max([p["id"] for p in parts], default=st["duckdb"]["absorbed_upto"]),
            ids=dict(self._ids),
            metrics=[list(m) for m in st["metrics"]],
            config=dict(st["config"]),
            meta={k: st[k] for k in ("status", "next_step", "global_step", "updated_at")},
            cursors=[list(c) for c in st["cursors"]],
            schemas=[list(x) for x in st["schemas"]],
            seq=st["seq"],
            full=full,
        )

    def _apply(self, built: Built) -> None:
        """Drop the live parts the new database holds (the writer's thread only)."""
        st = self.manifest
        gone = [p for p in st["parts"] if p["id"] <= built.upto]
        st["parts"] = [p for p in st["parts"] if p["id"] > built.upto]
        info = st["duckdb"]
        info.update(absorbed_upto=built.upto, rows=built.rows, seq=built.seq)
        # What the file must be; kept with the part id it holds, so that a record an older
        # kohakuboard left stale (it does not write one) is never compared with a newer file.
        info["check"] = {"upto": built.upto, "bytes": built.bytes, "crc32": built.crc32}
        info["runs"] = 1 if built.full else info["runs"] + 1
        damaged = {p["file"]: p for p in built.damaged}
        for entry in damaged.values():
            record_damage(st, entry, entry.get("reason", "unreadable"), int(entry.get("rows", -1)))
        save_state(self.state_path, st)
        for entry in gone:
            if entry["file"] in damaged:
                quarantine(self.board_dir, entry["file"])
            else:
                (self.board_dir / entry["file"]).unlink(missing_ok=True)
        self.files.forget({p["file"] for p in st["parts"]})


_COLS = ", ".join(SCALAR_COLUMNS)


def _recorded(info: dict[str, Any]) -> dict[str, Any]:
    """The length and CRC-32 recorded for the database the manifest names (empty if none)."""
    check = info.get("check") or {}
    return check if check.get("upto") == info.get("absorbed_upto") else {}


def _numpy_table(got: dict[str, Any]) -> pa.Table:
    # fetchnumpy + zero-copy Arrow is ~2x faster than DuckDB's own Arrow export.
    arrays = [num(got[f.name], f.type.to_pandas_dtype()) for f in SCALAR_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SCALAR_SCHEMA)


class DuckDBReader(PartsReader):
    """Reads ``board.duckdb`` plus whatever the live store holds beyond it.

    A ``board.duckdb`` that cannot be opened or read (damaged on disk) is reported by
    :meth:`damage` and left out: reads then return the live rows only.
    """

    parts_folder = LIVE_FOLDER

    def __init__(self, board_dir: Path) -> None:
        super().__init__(board_dir)
        self.db_path = self.board_dir / DB_FILE
        self.extra_data = (self.db_path,)
        self._ids_of: tuple[dict[str, Any], dict[tuple[str, str], int]] | None = None

    def _db_damaged(self, state: dict[str, Any], exc: BaseException) -> None:
        rows = int(state.get("duckdb", {}).get("rows", -1))
        reason = f"unreadable: {first_line(exc)}"
        self.files.damage.add(DamagedFile(DB_FILE, reason, rows, rows))

    def _from_db(self, state: dict[str, Any], query: Callable[[Any], T]) -> tuple[T | None, int]:
        """``query(connection)`` on the database (None before the first absorb, or when the
        file is damaged) and the last live part it holds."""
        expected = int(state.get("duckdb", {}).get("absorbed_upto", 0))
        if not self.db_path.exists():
            if expected:
                self.files.damage.add(DamagedFile(DB_FILE, "missing", *[self._db_rows(state)] * 2))
            return None, 0
        try:
            with pooled(self.db_path) as con:
                upto = read_absorbed_upto(con)
                if upto < expected:
                    # An older database than the manifest we read (someone else in this process
                    # holds the old one open): read again with a fresh snapshot.
                    raise FileNotFoundError(self.db_path)
                return query(con), upto
        except duckdb.Error as exc:
            if "lock" in str(exc).lower():
                raise
            self._db_damaged(state, exc)
            return None, 0

    @staticmethod
    def _db_rows(state: dict[str, Any]) -> int:
        return int(state.get("duckdb", {}).get("rows", -1))

    def damage(self, *, full: bool = False) -> list[DamagedFile]:
        found = super().damage(full=full)
        state, _ = self.snapshot()
        info = state.get("duckdb", {})
        if self.db_path.exists():
            rows = self._db_rows(state)
            size = self.db_path.stat().st_size
            want = _recorded(info).get("bytes")
            if want is not None and size != want:
                self._cached = None  # a new database may have landed: check the newest manifest
                state, _ = self.snapshot()
                info = state.get("duckdb", {})
                want = _recorded(info).get("bytes")
            if want is not None and size != want:
                reason = f"{size} bytes on disk, {want} committed"
                found.append(DamagedFile(DB_FILE, reason, rows, rows))
            elif full or PASSED.key(self.db_path, self.db_path.stat()) not in PASSED:
                opened, _ = self._from_db(state, read_absorbed_upto)
                if opened is not None and not full:
                    PASSED.add(PASSED.key(self.db_path, self.db_path.stat()))
                crc = _recorded(info).get("crc32")
                if opened is not None and full and crc is not None:
                    if file_crc32(self.db_path) != crc:
                        reason = "checksum mismatch (contents changed)"
                        found.append(DamagedFile(DB_FILE, reason, rows, -1))
        elif int(info.get("absorbed_upto", 0)):
            rows = self._db_rows(state)
            found.append(DamagedFile(DB_FILE, "missing", rows, rows))
        return merge(found, self.files.damage.items())

    def _metric_id(self, state: dict[str, Any], name: str, kind: str) -> int:
        if self._ids_of is None or self._ids_of[0] is not state:
            self._ids_of = (state, {(m[0], m[1]): i + 1 for i, m in enumerate(state["metrics"])})
        return self._ids_of[1].get((name, kind), 0)

    def scalar_tables(self, state: dict[str, Any], name: str) -> list[pa.Table]:
        mid = self._metric_id(state, name, "scalar")

        def query(con: Any) -> pa.Table:
            got = con.sql(f"SELECT {_COLS} FROM scalars WHERE metric_id = $1", params=[mid])
            return _numpy_table(got.fetchnumpy())

        table, upto = self._from_db(state, query)
        out = [] if table is None else [table]
        return out + self.read_parts(state, "scalars", name, SCALAR_COLUMNS, after=upto)

    def scalar_tables_many(
        self, state: dict[str, Any], names: list[str], *, after: int = 0
    ) -> dict[str, list[pa.Table]]:
        ids = {self._metric_id(state, n, "scalar"): n for n in names}

        def query(con: Any) -> dict[str, list[pa.Table]]:
            got = con.sql(
                f"SELECT metric_id, {_COLS} FROM scalars WHERE list_contains($1, metric_id)",
                params=[list(ids)],
            ).fetchnumpy()
            mids = np.asarray(got.pop("metric_id"))
            table = _numpy_table(got)
            order = np.argsort(mids, kind="stable")
            bounds = np.searchsorted(mids[order], [(m, m + 1) for m in ids])
            found: dict[str, list[pa.Table]] = {}
            for (lo, hi), name in zip(bounds.tolist(), ids.values(), strict=True):
                if hi > lo:
                    found[name] = [table.take(pa.array(order[lo:hi]))]
            return found

        got, upto = self._from_db(state, query)
        out = got or {}
        for name, tables in super().scalar_tables_many(state, names, after=upto).items():
            out.setdefault(name, []).extend(tables)
        return out

    def rich_tables(self, state: dict[str, Any], kind: str, name: str) -> list[pa.Table]:
        mid = self._metric_id(state, name, METRIC_KIND[kind])

        def query(con: Any) -> pa.Table:
            cols = ", ".join(f'"{n}"' for n, _ in columns(kind)[1:])
            table = con.sql(
                f"SELECT $1::VARCHAR AS metric, {cols} FROM {kind} WHERE metric_id = $2",
                params=[name, mid],
            ).to_arrow_table()
            return table.set_column(0, "metric", table.column(0).dictionary_encode())

        table, upto = self._from_db(state, query)
        out = [] if table is None else [table]
        return out + self.read_parts(state, kind, name, after=upto)
