"""What the server tests share: a board turned into upload segments, and a small client of
the sync protocol (the real one is ``kobo sync``, issue 17)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from kohakuboard.reader import open_board
from kohakuboard.storage.base import SCALAR_SCHEMA
from kohakuboard.storage.columnar import (
    SCHEMAS,
    histograms_table,
    media_table,
    tables_table,
    with_metric,
)

NAME = pa.dictionary(pa.int32(), pa.string())


def board_streams(path: Path) -> tuple[dict[str, pa.Table], dict[str, Path]]:
    """Every row of a local board per stream (the columnar layout), and its media files by
    sha256."""
    out: dict[str, list[pa.Table]] = {k: [] for k in SCHEMAS}
    media: dict[str, Path] = {}
    with open_board(path) as reader:
        for info in reader.metric_infos():
            if info.kind == "scalar":
                t = reader.scalars(info.name)
                names = pa.DictionaryArray.from_arrays(
                    pa.array([0] * t.num_rows, pa.int32()), pa.array([info.name])
                )
                out["scalars"].append(
                    pa.table([names, *t.columns], schema=with_metric(SCALAR_SCHEMA, NAME))
                )
            elif info.kind == "media":
                rows = reader.media(info.name)
                out["media"].append(media_table(rows))
                for row in rows:
                    media[Path(row.file).stem] = reader.media_path(row)
            elif info.kind == "table":
                out["tables"].append(tables_table(reader.tables(info.name)))
            elif info.kind == "histogram":
                out["histograms"].append(histograms_table(reader.histograms(info.name)))
    tables = {k: pa.concat_tables([t.cast(SCHEMAS[k]) for t in v]) for k, v in out.items() if v}
    return tables, media


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def ipc_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload_board(client: Any, headers: dict[str, str], project: str, path: Path) -> dict[str, Any]:
    """Send a whole local board (register, media, one segment per stream, meta)."""
    tables, media = board_streams(path)
    with open_board(path) as reader:
        info = reader.info()
        config = reader.config()
        progress = reader.progress()
    r = client.post(
        f"/api/sync/projects/{project}/boards",
        json={"id": info.id, "name": info.name, "created_at": info.created_at},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    have = r.json()
    for digest, file in media.items():
        r = client.put(
            f"/api/sync/boards/{info.id}/media/{digest}{file.suffix}",
            content=file.read_bytes(),
            headers=headers,
        )
        assert r.status_code == 200, r.text
    for stream, table in tables.items():
        start = have["streams"][stream]["rows"]
        part = table.slice(start)
        if part.num_rows == 0:
            continue
        body = parquet_bytes(part)
        r = client.put(
            f"/api/sync/boards/{info.id}/segments/{stream}/{start}",
            params={"rows": part.num_rows, "sha256": sha(body)},
            content=body,
            headers=headers,
        )
        assert r.status_code == 200, r.text
    r = client.patch(
        f"/api/sync/boards/{info.id}/meta",
        json={
            "status": info.status,
            "next_step": progress.next_step,
            "global_step": progress.global_step,
            "config": config,
        },
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return client.get(f"/api/sync/boards/{info.id}", headers=headers).json()
