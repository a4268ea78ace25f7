"""The scalar point's columns are defined once (storage.base); every long form adds only a
``metric`` column in front, and the columns every reader returns are those of SCALAR_SCHEMA."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from kohakuboard import Board
from kohakuboard.export import LONG_SCHEMA
from kohakuboard.reader import Reader
from kohakuboard.storage.base import ROW_HEAD, SCALAR_SCHEMA
from kohakuboard.storage.columnar import SCALAR_COLUMNS, SCHEMAS
from kohakuboard.storage.hybrid import SEGMENT_SCHEMA


@pytest.mark.parametrize(
    ("schema", "metric"),
    [
        (SEGMENT_SCHEMA, pa.int32()),
        (SCHEMAS["scalars"], pa.dictionary(pa.int32(), pa.string())),
        (LONG_SCHEMA, pa.string()),
    ],
    ids=["hybrid-segment", "parts", "export"],
)
def test_long_forms_are_the_scalar_schema_behind_a_metric(
    schema: pa.Schema, metric: pa.DataType
) -> None:
    assert schema.field(0).equals(pa.field("metric", metric))
    assert pa.schema(list(schema)[1:]).equals(SCALAR_SCHEMA)
    assert SCALAR_COLUMNS == SCALAR_SCHEMA.names


@pytest.mark.parametrize("kind", ["media", "tables", "histograms"])
def test_every_record_kind_starts_with_the_row_head(kind: str) -> None:
    head = list(SCHEMAS[kind])[1 : 1 + len(ROW_HEAD)]
    assert pa.schema(head).equals(ROW_HEAD)


@pytest.mark.parametrize("backend", ["hybrid", "parquet", "duckdb"])
def test_readers_return_the_scalar_schema(base_dir: Path, backend: str) -> None:
    board = Board(name="schema", base_dir=base_dir, backend=backend)
    for i in range(3):
        board.log(loss=float(i))
    board.finish()
    with Reader(board.path) as reader:
        assert reader.scalars("loss").schema.equals(SCALAR_SCHEMA)
