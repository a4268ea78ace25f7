"""Damage checks of the ``hybrid`` backend's scalar files (see :mod:`.checks`).

The ``segments`` table records, per file, the committed length (``committed_bytes``), the
row count (``rows``) and, since checksums were added, the CRC-32 of the committed bytes
(``crc32``; NULL in boards written before). A check compares the file on disk with that row.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .base import DamagedFile
from .checks import PASSED, file_crc32, first_line, readable_rows
from .hybrid_schema import SCALAR_DIR

CRC_MISMATCH = "checksum mismatch (contents changed)"


def stream_batches(data: bytes) -> tuple[list[pa.RecordBatch], str | None]:
    """The complete record batches at the start of an Arrow IPC stream, and why decoding
    stopped early (None if it reached the end)."""
    batches = []
    try:
        reader = ipc.open_stream(pa.py_buffer(data))
        for batch in reader:
            batches.append(batch)
    except (pa.ArrowInvalid, OSError) as exc:
        return batches, first_line(exc)
    return batches, None


class SegmentChecker:
    """Checks the files of one board (footers that passed are remembered per process)."""

    def __init__(self, board_dir: Path) -> None:
        self.board_dir = board_dir
        self.scalar_dir = board_dir / SCALAR_DIR

    def check(
        self,
        file: str,
        fmt: str,
        committed: int,
        rows: int,
        crc: int | None,
        *,
        full: bool = False,
    ) -> DamagedFile | None:
        rel = f"{SCALAR_DIR}/{file}"
        path = self.scalar_dir / file
        try:
            st = path.stat()
        except FileNotFoundError:
            return DamagedFile(rel, "missing", rows, rows)
        except OSError as exc:
            return DamagedFile(rel, f"unreadable: {exc.strerror or exc}", rows, rows)
        if fmt == "parquet":
            return self._check_parquet(rel, path, st, committed, rows, crc, full=full)
        if st.st_size < committed:
            return self._check_arrow(
                rel,
                path,
                committed,
                rows,
                crc,
                short=f"{st.st_size} of {committed} committed bytes",
            )
        if full:
            return self._check_arrow(rel, path, committed, rows, crc, short=None)
        return None

    def _check_parquet(
        self,
        rel: str,
        path: Path,
        st: object,
        committed: int,
        rows: int,
        crc: int | None,
        *,
        full: bool,
    ) -> DamagedFile | None:
        size = st.st_size  # type: ignore[attr-defined]
        if size != committed:
            cut = " (cut short)" if size < committed else ""
            return DamagedFile(rel, f"{size} bytes on disk, {committed} committed{cut}", rows, rows)
        key = PASSED.key(path, st)
        if key not in PASSED or full:
            try:
                pf = pq.ParquetFile(path, page_checksum_verification=True)
            except (OSError, pa.ArrowException) as exc:
                return DamagedFile(rel, f"unreadable: {first_line(exc)}", rows, rows)
            if pf.metadata.num_rows != rows:
                why = f"{pf.metadata.num_rows} rows in the file, {rows} committed"
                return DamagedFile(rel, why, rows, rows)
            if full:
                readable = readable_rows(pf)
                if readable < rows:
                    return DamagedFile(rel, "pages fail their checksums", rows, rows - readable)
                if crc is not None and file_crc32(path) != crc:
                    return DamagedFile(rel, "checksum mismatch (contents changed)", rows, -1)
            PASSED.add(key)
        return None

    def _check_arrow(
        self, rel: str, path: Path, committed: int, rows: int, crc: int | None, *, short: str | None
    ) -> DamagedFile | None:
        try:
            with open(path, "rb") as fh:
                data = fh.read(committed)
        except OSError as exc:
            return DamagedFile(rel, f"unreadable: {exc.strerror or exc}", rows, rows)
        if short is None and crc is not None and len(data) == committed:
            # Reads give nothing of a segment that fails its CRC (see read_listed).
            if zlib.crc32(data) != crc:
                return DamagedFile(rel, CRC_MISMATCH, rows, rows)
        batches, stopped = stream_batches(data)
        readable = sum(b.num_rows for b in batches)
        if short is not None:
            return DamagedFile(rel, f"cut short: {short}", rows, max(0, rows - readable))
        if readable < rows:
            why = f"only {readable} of {rows} committed rows decode ({stopped or 'stream ends'})"
            return DamagedFile(rel, why, rows, rows - readable)
        return None


def read_listed(
    path: Path, fmt: str, committed: int, rows: int, schema: pa.Schema, crc: int | None = None
) -> tuple[pa.Table, str | None]:
    """Every readable row of a listed file, and why some are missing (None if all ``rows``
    were read): the complete batches of an Arrow segment's committed prefix, a whole Parquet
    part or nothing of it. An Arrow segment whose committed bytes fail their CRC-32 (``crc``,
    when recorded) gives nothing: changed bytes may decode as other values."""
    try:
        if fmt == "parquet":
            table = pq.read_table(path, schema=schema, page_checksum_verification=True)
        else:
            with open(path, "rb") as fh:
                data = fh.read(committed)
            if crc is not None and len(data) == committed and zlib.crc32(data) != crc:
                return schema.empty_table(), CRC_MISMATCH
            batches, stopped = stream_batches(data)
            table = pa.Table.from_batches(batches, schema=schema)
            if len(data) < committed:
                return table, f"cut short: {len(data)} of {committed} committed bytes"
            if stopped is not None and table.num_rows < rows:
                return table, f"only {table.num_rows} of {rows} rows decode ({stopped})"
    except FileNotFoundError:
        return schema.empty_table(), "missing"
    except (OSError, pa.ArrowException) as exc:
        return schema.empty_table(), f"unreadable: {first_line(exc)}"
    if table.num_rows < rows:
        return table, f"only {table.num_rows} of {rows} committed rows"
    return table, None
