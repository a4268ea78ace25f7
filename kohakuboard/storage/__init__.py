"""Storage backends behind one contract (see ``base``)."""

from __future__ import annotations

from pathlib import Path

from .base import StorageReader, StorageWriter

# Backends a Board can be created with (duckdb and parquet land with their own modules).
BACKENDS = frozenset({"hybrid"})


def open_writer(board_dir: Path, backend: str) -> StorageWriter:
    if backend == "hybrid":
        from .hybrid import HybridWriter

        return HybridWriter(board_dir)
    raise NotImplementedError(f"backend {backend!r} is not available yet")


def open_reader(board_dir: Path, backend: str) -> StorageReader:
    if backend == "hybrid":
        from .hybrid import HybridReader

        return HybridReader(board_dir)
    raise NotImplementedError(f"backend {backend!r} is not available yet")
