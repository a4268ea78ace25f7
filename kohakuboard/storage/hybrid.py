"""The ``hybrid`` backend (default).

* ``catalog.sqlite`` (WAL): metric catalog, status/config/progress, ring cursors, media
  index, tables and histograms. One SQLite transaction is the commit point.
* ``scalars/seg-*.arrow``: append-only Arrow IPC streams, one record batch per commit. The
  catalog stores how many bytes of each segment are committed; readers read only that
  prefix, so a torn tail after a crash is never seen.
* ``scalars/part-*.parquet``: compacted segments, sorted by (metric, step).
* ``media/``: content-addressed media files (shared layout, see ``media_files``).

The parts: :mod:`.hybrid_schema` (catalog schema and connection), :mod:`.hybrid_writer`,
:mod:`.hybrid_reader`; :mod:`.hybrid_checks` and :mod:`.hybrid_salvage` check and repair.
"""

from __future__ import annotations

from .hybrid_reader import HybridReader
from .hybrid_schema import CATALOG, SCALAR_DIR, SCHEMA_SQL, SEGMENT_SCHEMA, catalog_damaged, connect
from .hybrid_writer import HybridWriter

__all__ = [
    "CATALOG",
    "SCALAR_DIR",
    "SCHEMA_SQL",
    "SEGMENT_SCHEMA",
    "HybridReader",
    "HybridWriter",
    "catalog_damaged",
    "connect",
]
