"""Rebuilding a lost or damaged ``state.json`` from the data files (``kobo repair``).

Every part carries the metric's name with each row (see :mod:`.columnar`), and a part's file
name carries its id and level, so the manifest's list of parts, its metric catalog and the
progress (next step, global step) can be rebuilt from the parts that still read. The
``duckdb`` backend's ``board.duckdb`` also holds the catalog with its metric ids, the config
and the id of the last live part it absorbed; when it opens, those are kept (ids are never
reused). What cannot be rebuilt: the config of a ``parquet`` board, and the ring cursors. With
the cursors gone a ring's records cannot be told stored from unstored, so the rings are set
aside in ``damaged/`` (kept for inspection, never replayed twice).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .checks import file_crc32, first_line
from .codec import decode_json
from .columnar import FOLDERS, KINDS, METRIC_KIND, SCHEMAS
from .parts import (
    DAMAGED_FOLDER,
    STATE_FILE,
    _base,
    load_state,
    new_state,
    parse_part_name,
    quarantine,
    save_state,
)

logger = logging.getLogger(__name__)

# Placeholder catalog entry for a metric id the database does not name (a metric with no
# rows when it was built): never listed (count 0), never matched by a logged key.
_GAP = "\x00unused-{}"


def manifest_usable(board_dir: Path) -> bool:
    """Whether ``state.json`` exists and reads (else :func:`rebuild_manifest` is needed)."""
    try:
        return load_state(board_dir / STATE_FILE) is not None
    except Exception:  # noqa: BLE001 - any failure to read it means it must be rebuilt
        return False


def rebuild_manifest(board_dir: Path, folder: str, *, duckdb: bool) -> list[dict[str, Any]]:
    """Write a new ``state.json`` from the data files; return what the repair report lists
    (the old manifest and every file set aside, with the rows lost where known)."""
    report: list[dict[str, Any]] = []
    old = board_dir / STATE_FILE
    if old.exists():
        moved = quarantine(board_dir, STATE_FILE)
        report.append(_item(STATE_FILE, "damaged manifest rebuilt from the data files", moved))
    else:
        report.append(_item(STATE_FILE, "missing manifest rebuilt from the data files", None))
    state = new_state()
    names: list[tuple[str, str]] = []  # (name, kind) in catalog order
    counts: dict[tuple[str, str], list[int]] = {}  # (name, kind) -> [count, last step]
    upto = 0
    if duckdb:
        upto = _from_database(board_dir, state, names, counts, report)
    found: list[tuple[float, str, str]] = []  # (first wall time, name, kind) of live metrics
    max_step, max_gstep, next_part = -1, 0, 1
    for kind in KINDS:
        directory = _base(board_dir, folder) / FOLDERS[kind]
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("part-*.parquet")):
            pid, level = parse_part_name(path.name)
            rel = path.relative_to(board_dir).as_posix()
            if pid < 0:
                continue
            next_part = max(next_part, pid + 1)
            if pid <= upto:  # already in board.duckdb: a leftover of an interrupted absorb
                path.unlink(missing_ok=True)
                continue
            try:
                table = pq.read_table(path, page_checksum_verification=True).cast(SCHEMAS[kind])
            except (OSError, pa.ArrowException) as exc:
                moved = quarantine(board_dir, rel)
                report.append(_item(rel, f"unreadable: {first_line(exc)}", moved))
                continue
            state["parts"].append(
                {
                    "id": pid,
                    "kind": kind,
                    "file": rel,
                    "level": level,
                    "rows": table.num_rows,
                    "sorted": level > 0,  # merged parts are sorted by (metric, step)
                    "bytes": path.stat().st_size,
                    "crc32": file_crc32(path),
                }
            )
            if table.num_rows:
                max_step = max(max_step, int(pc.max(table.column("step")).as_py()))
                max_gstep = max(max_gstep, int(pc.max(table.column("global_step")).as_py()))
                if kind == "media":  # one media value is several rows (index 0, 1, ...)
                    table = table.filter(pc.equal(table.column("index"), 0))
                metric = table.column("metric").cast(pa.string())
                cols = {"m": metric, "w": table.column("wall_time"), "s": table.column("step")}
                grouped = pa.table(cols).group_by("m")
                aggs = [("w", "min"), ("s", "count"), ("s", "max")]
                for row in grouped.aggregate(aggs).to_pylist():
                    found.append((row["w_min"], row["m"], METRIC_KIND[kind]))
                    have = counts.setdefault((row["m"], METRIC_KIND[kind]), [0, -1])
                    have[0] += int(row["s_count"])
                    have[1] = max(have[1], int(row["s_max"]))
    known = set(names)
    for _, name, kind in sorted(found):
        if (name, kind) not in known:
            known.add((name, kind))
            names.append((name, kind))
    # Counts of the live parts (plus the database's); verify._recount_parts checks them.
    state["metrics"] = [[n, k, *counts.get((n, k), [0, -1])] for n, k in names]
    state["parts"].sort(key=lambda p: p["id"])
    state["next_part"] = max(next_part, upto + 1)
    state["next_step"] = max(int(state["next_step"]), max_step + 1)
    state["global_step"] = max(int(state["global_step"]), max_gstep)
    state["seq"] = 1
    for ring in sorted(board_dir.glob("ring-*.kbr")):
        moved = quarantine(board_dir, ring.name)
        why = "ring set aside: with the manifest's cursors lost, its records cannot be told stored from unstored"
        report.append(_item(ring.name, why, moved))
    save_state(board_dir / STATE_FILE, state)
    return report


def _from_database(
    board_dir: Path,
    state: dict[str, Any],
    names: list[tuple[str, str]],
    counts: dict[tuple[str, str], list[int]],
    report: list[dict[str, Any]],
) -> int:
    """Catalog, config and progress from ``board.duckdb``; the last live part it holds (0 if
    it is missing or does not open: then it is set aside and the live parts hold the board)."""
    from .duckdb_build import DB_FILE, connect_raw, read_absorbed_upto
    from .duckdb_pool import close_all

    path = board_dir / DB_FILE
    if not path.exists():
        return 0
    close_all()
    try:
        con = connect_raw(path)
        try:
            upto = read_absorbed_upto(con)
            rows = int(con.execute("SELECT count(*) FROM scalars").fetchall()[0][0])
            metrics = con.execute(
                "SELECT id, name, kind, count, last_step FROM metrics ORDER BY id"
            ).fetchall()
            config = con.execute("SELECT key, value FROM config").fetchall()
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        finally:
            con.close()
    except Exception as exc:  # noqa: BLE001 - a database that does not open is set aside
        moved = quarantine(board_dir, DB_FILE)
        report.append(_item(DB_FILE, f"unreadable: {first_line(exc)}", moved))
        return 0
    by_id = {int(i): (str(n), str(k)) for i, n, k, _, _ in metrics}
    for _, n, k, c, last in metrics:
        counts[(str(n), str(k))] = [int(c), int(last)]
    for i in range(1, max(by_id, default=0) + 1):
        names.append(by_id.get(i, (_GAP.format(i), "none")))
    state["config"] = {str(k): decode_json(v) for k, v in config}
    for key in ("next_step", "global_step"):
        if key in meta:
            state[key] = int(decode_json(meta[key]))
    size = path.stat().st_size
    state["duckdb"] = {
        "absorbed_upto": upto,
        "rows": rows,
        "runs": 1,
        "seq": -1,
        "check": {"upto": upto, "bytes": size, "crc32": file_crc32(path)},
    }
    return upto


def _item(file: str, reason: str, moved: str | None) -> dict[str, Any]:
    return {
        "file": file,
        "reason": reason,
        "rows": -1,
        "rows_lost": 0,  # not known: nothing recorded how many rows the file held
        "rows_kept": 0,
        "moved_to": moved,
    }


__all__ = ["DAMAGED_FOLDER", "manifest_usable", "rebuild_manifest"]
