"""The ``parquet`` backend: plain files that any tool reads without kohakuboard.

Board directory::

    board.json               identity (every backend)
    state.json               manifest + metric catalog + config + status/progress + cursors
    scalars/part-*.parquet   metric (name), step, global_step, wall_time, value
    media_index/part-*.parquet, tables/part-*.parquet, histograms/part-*.parquet
    media/                   content-addressed media files (every backend)

``pandas.read_parquet(board / "scalars")``, ``polars.read_parquet(f"{board}/scalars/*.parquet")``
or ``duckdb.sql(f"select * from '{board}/scalars/*.parquet'")`` read a finished board as is
(hidden temporaries start with a dot and are ignored by those tools). While a writer runs,
the authoritative list of parts is ``state.json["parts"]``: a compaction briefly leaves its
inputs next to its output. See ``docs/backends.md``.
"""

from __future__ import annotations

from .parts_reader import PartsReader
from .parts_writer import PartsWriter


class ParquetWriter(PartsWriter):
    backend = "parquet"
    parts_folder = ""


class ParquetReader(PartsReader):
    pass
