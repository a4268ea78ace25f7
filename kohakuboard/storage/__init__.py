"""Storage backends behind one contract (see ``base``).

``hybrid`` (default): Arrow IPC segments + SQLite catalog; ``parquet``: plain Parquet parts
+ a JSON manifest; ``duckdb``: one ``board.duckdb`` database, fed from a live Parquet store.
``docs/backends.md`` describes each layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # base imports pyarrow: the training process never needs it
    from .base import StorageReader, StorageWriter

# Backends a Board can be created with.
BACKENDS = frozenset({"hybrid", "duckdb", "parquet"})


def open_writer(board_dir: Path, backend: str) -> StorageWriter:
    if backend == "hybrid":
        from .hybrid_writer import HybridWriter  # not .hybrid: it imports the reader too

        return HybridWriter(board_dir)
    if backend == "parquet":
        from .parquet_backend import ParquetWriter

        return ParquetWriter(board_dir)
    if backend == "duckdb":
        from .duckdb_backend import DuckDBWriter

        return DuckDBWriter(board_dir)
    raise NotImplementedError(
        f"unknown storage backend {backend!r}; this kohakuboard has {sorted(BACKENDS)}"
    )


def open_reader(board_dir: Path, backend: str) -> StorageReader:
    if backend == "hybrid":
        from .hybrid_reader import HybridReader  # not .hybrid: it imports the writer too

        return HybridReader(board_dir)
    if backend == "parquet":
        from .parquet_backend import ParquetReader

        return ParquetReader(board_dir)
    if backend == "duckdb":
        from .duckdb_backend import DuckDBReader

        return DuckDBReader(board_dir)
    raise NotImplementedError(
        f"unknown storage backend {backend!r}; this kohakuboard has {sorted(BACKENDS)}"
    )
